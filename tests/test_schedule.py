"""Stage 03's learning-rate schedules, weight averaging (EMA) and the pooled SI-SDR in a run.

The schedule values are checked at known points of the budget; the callback with an injected clock (time
budget) and with step counts; tiny fits for every schedule. EMA: the weights that are validated, kept by
early stopping and saved in model.keras are the moving average of the raw training weights (recomputed
here from the raw weights after every batch), and a run killed and resumed from its backup ends where an
uninterrupted one does.
"""

from __future__ import annotations

import csv
import math

import keras
import numpy as np
import pytest
from conftest import TINY_SETS

from speech_dae.artifacts import read_json
from speech_dae.config import load_config
from speech_dae.errors import ConfigError
from speech_dae.losses import PooledSISDR, SpectralLoss
from speech_dae.stages.train import train
from speech_dae.training.callbacks import backup_and_restore, epoch_timer, lr_factor, lr_schedule
from speech_dae.training.examples import mixture_sequences


# ---------------------------------------------------------------- schedule values
def test_constant_schedule_with_and_without_warmup():
    assert [lr_factor("constant", p) for p in (0.0, 0.3, 1.0)] == [1.0, 1.0, 1.0]
    # Goyal et al. 2017: a linear rise from 0 over the warm-up, then the rate
    assert lr_factor("constant", 0.0, warmup=0.1) == 0.0
    assert lr_factor("constant", 0.05, warmup=0.1) == pytest.approx(0.5)
    assert lr_factor("constant", 0.1, warmup=0.1) == 1.0
    assert lr_factor("constant", 0.9, warmup=0.1, lr_min=0.5) == 1.0  # lr_min only ends the decaying schedules


def test_cosine_schedule_known_points():
    warm, low = 0.1, 0.01
    assert lr_factor("cosine", 0.0, warmup=warm, lr_min=low) == 0.0  # warm-up start
    assert lr_factor("cosine", 0.05, warmup=warm, lr_min=low) == pytest.approx(0.5)
    assert lr_factor("cosine", warm, warmup=warm, lr_min=low) == pytest.approx(1.0)  # warm-up end: the peak
    # half way through the cosine: (lr + lr_min) / 2; a quarter: (1 + cos(pi / 4)) / 2 of the way down
    assert lr_factor("cosine", warm + 0.45, warmup=warm, lr_min=low) == pytest.approx((1 + low) / 2)
    quarter = low + (1 - low) * (1 + math.sqrt(0.5)) / 2
    assert lr_factor("cosine", warm + 0.225, warmup=warm, lr_min=low) == pytest.approx(quarter)
    assert lr_factor("cosine", 1.0, warmup=warm, lr_min=low) == pytest.approx(low)  # the end
    assert lr_factor("cosine", 1.7, warmup=warm, lr_min=low) == pytest.approx(low)  # past the budget: stays
    assert lr_factor("cosine", 0.0) == 1.0 and lr_factor("cosine", 0.5) == pytest.approx(0.5)  # no warm-up
    after = [lr_factor("cosine", p, warmup=warm, lr_min=low) for p in np.linspace(warm, 1, 50)]
    assert np.all(np.diff(after) < 0)


def test_onecycle_schedule_known_points():
    # Smith & Topin 2019: from lr / 25 up to lr over 30 % (a half cosine), then a half cosine down to lr_min
    assert lr_factor("onecycle", 0.0, warmup=0.3) == pytest.approx(1 / 25)
    assert lr_factor("onecycle", 0.15, warmup=0.3) == pytest.approx((1 / 25 + 1) / 2)
    assert lr_factor("onecycle", 0.3, warmup=0.3) == pytest.approx(1.0)
    assert lr_factor("onecycle", 0.65, warmup=0.3) == pytest.approx(0.5)
    assert lr_factor("onecycle", 0.65, warmup=0.3, lr_min=0.1) == pytest.approx(0.55)
    assert lr_factor("onecycle", 1.0, warmup=0.3, lr_min=0.1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"unknown learning-rate schedule 'step'; choose constant, cosine, onecycle"):
        lr_factor("step", 0.5)


def test_config_keys_are_validated_with_clear_errors():
    t = load_config(overrides=TINY_SETS).training
    assert (t.lr_schedule, t.warmup, t.lr_min, t.ema, t.warmup_fraction) == ("constant", None, 0.0, 0.0, 0.0)
    assert load_config(overrides=["training.lr_schedule=onecycle"]).training.warmup_fraction == 0.3
    assert load_config(overrides=["training.lr_schedule=cosine"]).training.warmup_fraction == 0.0
    t = load_config(overrides=["training.lr_schedule=onecycle", "training.warmup=0.1"]).training
    assert t.warmup_fraction == 0.1
    for override, message in [
        ("training.lr_schedule=step", r"training.lr_schedule='step' is unknown; choose constant, cosine, onecycle"),
        ("training.warmup=1.0", r"training.warmup=1.0 must be a share of the training budget in \[0, 1\)"),
        ("training.warmup=-0.1", r"training.warmup=-0.1 must be"),
        ("training.lr_min=1.5", r"training.lr_min=1.5 must be the final learning rate as a share"),
        ("training.ema=1.0", r"training.ema=1.0 must be 0 \(no weight averaging\) or an EMA momentum in \(0, 1\)"),
        ("training.ema=-0.5", r"training.ema=-0.5 must be 0"),
        ("training.ema=true", r"training.ema=True must be 0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(overrides=[override])


# ---------------------------------------------------------------- the callback
def _tiny_model(lr=0.01, **optimizer):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr, **optimizer), loss="mse")
    return model


def test_time_based_progress_follows_the_injected_clock():
    now = {"s": 0.0}
    model = _tiny_model(lr=0.01)
    cb = lr_schedule(keras, "cosine", 0.01, warmup=0.1, lr_min=0.0, clock=lambda: now["s"], budget_s=600.0)
    cb.set_model(model)
    cb.set_params({"epochs": 1000, "steps": 10})  # the step count would be far behind the clock
    cb.on_epoch_begin(0)
    for seconds, factor in [(0.0, 0.0), (30.0, 0.5), (60.0, 1.0), (330.0, 0.5), (600.0, 0.0), (660.0, 0.0)]:
        now["s"] = seconds
        cb.on_train_batch_begin(0)
        assert cb.progress(0) == pytest.approx(min(seconds / 600.0, 1.0))
        assert float(model.optimizer.learning_rate) == pytest.approx(0.01 * factor, abs=1e-9)
    logs = {"loss": 1.0}
    cb.on_epoch_end(0, logs)
    assert logs["learning_rate"] == pytest.approx(0.0, abs=1e-12)


def test_step_based_progress_and_the_larger_of_the_two():
    model = _tiny_model()
    cb = lr_schedule(keras, "constant", 1e-3, warmup=0.5)  # no clock: steps only
    cb.set_model(model)
    cb.set_params({"epochs": 4, "steps": 5})
    cb.on_epoch_begin(1)
    cb.on_train_batch_begin(0)
    assert cb.progress(0) == pytest.approx(5 / 20)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3 * 0.5)
    timed = lr_schedule(keras, "constant", 1e-3, warmup=0.5, clock=lambda: 30.0, budget_s=60.0)
    timed.set_model(model)
    timed.set_params({"epochs": 4, "steps": 5})
    timed.on_epoch_begin(0)
    assert timed.progress(1) == pytest.approx(0.5)  # half the time, 1 step of 20
    timed.on_epoch_begin(3)
    assert timed.progress(4) == pytest.approx(19 / 20)  # the steps run out first


@pytest.mark.parametrize(
    "schedule, warmup, lr_min",
    [("constant", 0.25, 0.0), ("cosine", 0.1, 0.01), ("cosine", 0.0, 0.0), ("onecycle", 0.3, 0.0)],
)
def test_every_schedule_drives_a_fit_and_logs_its_rate(tmp_path, schedule, warmup, lr_min):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    y = x @ rng.standard_normal((4, 1)).astype(np.float32)
    model = _tiny_model(lr=0.02)
    cb = lr_schedule(keras, schedule, 0.02, warmup=warmup, lr_min=lr_min)
    csv_path = tmp_path / "log.csv"
    history = model.fit(
        x, y, batch_size=8, epochs=4, shuffle=False, verbose=0, callbacks=[cb, keras.callbacks.CSVLogger(csv_path)]
    )
    # the rate of the last batch of every epoch: step 5 k + 4 of 20
    expect = [0.02 * lr_factor(schedule, (5 * k + 4) / 20, warmup=warmup, lr_min=lr_min) for k in range(4)]
    np.testing.assert_allclose(history.history["learning_rate"], expect, rtol=1e-6)
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    np.testing.assert_allclose([float(r["learning_rate"]) for r in rows], expect, rtol=1e-5)
    assert float(model.optimizer.learning_rate) == pytest.approx(expect[-1], rel=1e-6)
    assert np.isfinite(history.history["loss"]).all()


# ---------------------------------------------------------------- EMA: validated, kept, saved
class _Recorder(keras.callbacks.Callback):
    """The raw trainable weights after every batch and the model's weights at every epoch end (after the
    callbacks before this one)."""

    def __init__(self):
        super().__init__()
        self.raw, self.at_epoch_end, self.val_loss = [], [], []

    def on_train_batch_end(self, batch, logs=None):
        self.raw.append([np.array(w) for w in self.model.trainable_weights])

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end.append([np.array(w) for w in self.model.trainable_weights])
        self.val_loss.append(float(logs["val_loss"]))


def _ema(raw: list, momentum: float) -> list:
    """Keras's moving average after every step: the first step's weights, then m * avg + (1 - m) * w."""
    avg, out = None, []
    for ws in raw:
        avg = (
            [w.astype(np.float64) for w in ws]
            if avg is None
            else [momentum * a + (1 - momentum) * w for a, w in zip(avg, ws)]
        )
        out.append(avg)
    return out


def _close(a: list, b: list, atol=1e-5) -> bool:
    return all(np.allclose(x, y, atol=atol, rtol=1e-4) for x, y in zip(a, b))


def test_ema_weights_are_validated_kept_and_saved_with_a_schedule_and_the_new_losses(tmp_path, built):
    momentum, epochs = 0.8, 3
    cfg = load_config(
        overrides=[
            *TINY_SETS,
            "model.name=type2",
            f"training.epochs={epochs}",
            "training.steps_per_epoch=4",
            "training.batch_size=16",
            "training.tensorboard_media=false",
            "training.target=mask",
            "training.loss=ccmse+mrstft+sisdr",
            "training.loss_weights=[1.0,0.5,0.01]",
            "training.learning_rate=0.01",
            "training.lr_schedule=cosine",
            "training.warmup=0.1",
            "training.lr_min=0.01",
            f"training.ema={momentum}",
            "training.patience=10",
        ]
    )
    rec = _Recorder()
    s = train(
        cfg,
        dataset=built.dataset,
        run="ema",
        models_dir=tmp_path / "models",
        logs_dir=tmp_path / "logs",
        progress=False,
        extra_callbacks=[rec],
    )
    info = read_json(s.run_dir / "run.json")
    assert info["optimizer"] == {
        "name": "adam",
        "learning_rate": 0.01,
        "lr_schedule": "cosine",
        "warmup": 0.1,
        "lr_min": 0.01,
        "ema": momentum,
    }
    h = info["history"]
    steps = len(rec.raw) // epochs  # the tiny corpus may hold fewer than 4 batches
    assert steps >= 2 and len(rec.raw) == steps * epochs
    assert {"loss", "val_loss", "si_sdr", "val_si_sdr", "learning_rate"} <= set(h)
    last = [(steps * k + steps - 1) / (steps * epochs) for k in range(epochs)]
    np.testing.assert_allclose(
        h["learning_rate"], [0.01 * lr_factor("cosine", p, warmup=0.1, lr_min=0.01) for p in last], rtol=1e-6
    )
    with open(tmp_path / "logs" / "ema.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    np.testing.assert_allclose([float(r["val_si_sdr"]) for r in rows], h["val_si_sdr"], rtol=1e-5)
    best = info["best_epoch"]
    assert f"val_si_sdr {h['val_si_sdr'][best - 1]:.2f} dB" in s.lines()[0]

    # at every epoch end (the schedule, early stopping and the backup run before the recorder) the model holds
    # the moving average of the raw weights, measurably away from the raw weights
    ema = _ema(rec.raw, momentum)
    for k in range(epochs):
        end = steps * (k + 1) - 1
        assert _close(rec.at_epoch_end[k], ema[end])
        assert max(np.abs(r - e).max() for r, e in zip(rec.raw[end], ema[end])) > 1e-3
    # model.keras holds the best epoch's average
    saved = keras.saving.load_model(s.run_dir / "model.keras")
    best_end = steps * best - 1
    assert _close([np.array(w) for w in saved.trainable_weights], ema[best_end])

    # val_loss and val_si_sdr were computed on the averaged weights: the saved model scores them again on the
    # validation mixtures, and the raw weights of the same epoch score differently
    _, val_seq, _ = mixture_sequences(built.dataset, read_json(built.dataset / "dataset.json"), cfg.training, cfg.seed)
    framing = {"n_fft": 512, "hop_length": 128, "window": "hann"}
    saved.compile(
        loss=SpectralLoss(terms=("ccmse", "mrstft", "sisdr"), weights=(1.0, 0.5, 0.01), **framing),
        metrics=[PooledSISDR(**framing)],
    )
    val_ds, n_val = val_seq.dataset(1, repeat=True), val_seq.steps(1)
    scores = saved.evaluate(val_ds, steps=n_val, return_dict=True, verbose=0)
    assert scores["loss"] == pytest.approx(h["val_loss"][best - 1], rel=1e-4, abs=1e-5)
    assert scores["si_sdr"] == pytest.approx(h["val_si_sdr"][best - 1], abs=0.01)
    for w, raw in zip(saved.trainable_weights, rec.raw[best_end]):
        w.assign(raw)
    raw_loss = saved.evaluate(val_ds, steps=n_val, return_dict=True, verbose=0)["loss"]
    assert abs(raw_loss - h["val_loss"][best - 1]) > 1e-4


def test_a_run_without_the_new_options_logs_as_before_plus_val_si_sdr(tmp_path, built):
    cfg = load_config(overrides=[*TINY_SETS, "model.name=type2", "training.tensorboard_media=false"])
    s = train(cfg, dataset=built.dataset, run="m", models_dir=tmp_path / "m", logs_dir=tmp_path / "l", progress=False)
    assert set(s.info.history) == {"loss", "val_loss"}  # mse: no SI-SDR, constant rate: no learning_rate column
    assert s.info.optimizer == {"name": "adam", "learning_rate": 1e-3, "lr_schedule": "constant", "ema": 0.0}
    assert "val_si_sdr" not in s.lines()[0]


# ---------------------------------------------------------------- EMA over a kill
class _Kill(Exception):
    pass


def _ema_fit(backup_dir, *, kill_after: int | None = None, epochs: int = 3):
    """A tiny fit with the trainer's callback order (EMA swap, early stopping, timer, backup); ``kill_after``
    raises at the end of that epoch, after the backup is written."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = np.tanh(x @ rng.standard_normal((4, 1)).astype(np.float32))
    xv, yv = x[:8] + 0.1, y[:8]
    model = _tiny_model(lr=0.05, use_ema=True, ema_momentum=0.7)
    early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)
    timer = epoch_timer(keras)
    backup = backup_and_restore(keras, backup_dir, epochs=epochs, early=early, timer=timer, budget=None, ema=True)

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if kill_after is not None and epoch + 1 == kill_after:
                raise _Kill

    callbacks = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True), early, timer, backup, Kill()]
    try:
        model.fit(
            x,
            y,
            batch_size=8,
            epochs=epochs,
            initial_epoch=backup.initial_epoch,
            validation_data=(xv, yv),
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        )
    except _Kill:
        return None, backup
    return model, backup


def test_a_killed_ema_run_resumes_to_the_uninterrupted_result(tmp_path):
    whole, whole_backup = _ema_fit(tmp_path / "a")
    assert _ema_fit(tmp_path / "b", kill_after=2)[0] is None
    state = read_json(tmp_path / "b" / "state.json")
    assert state["epoch"] == 2 and state["ema_swapped"] is True
    resumed, backup = _ema_fit(tmp_path / "b")
    assert backup.initial_epoch == 2
    np.testing.assert_allclose(backup.history["val_loss"], whole_backup.history["val_loss"], rtol=1e-5)
    for a, b in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
