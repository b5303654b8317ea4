"""Keras callbacks of stage 03: time budget, learning-rate schedule, epoch timer, backup and restore over a kill,
TensorBoard extras.

Each factory takes the ``keras`` module (imported by the caller, so this module
imports no framework at import time) and returns a callback instance.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..artifacts import write_json
from ..audio import read_mono
from ..config import LR_SCHEDULES, Config
from ..folders import referenced_pairs
from ..framing import Normaliser
from ..inference import Denoiser
from ..metrics import si_sdr
from ..plots import spectrograms_db
from ..runinfo import RunInfo

__all__ = [
    "time_budget",
    "lr_factor",
    "lr_schedule",
    "epoch_timer",
    "backup_and_restore",
    "validation_clips",
    "spectrogram_image",
    "tensorboard_scalars",
]

log = logging.getLogger(__name__)


def time_budget(keras, minutes: float):
    """A callback that stops training after the batch that crosses ``minutes`` of wall-clock time.

    Keras still runs the epoch's validation, so ``EarlyStopping`` and
    ``ModelCheckpoint`` see the partial epoch and the best weights are kept.
    """

    class TimeBudget(keras.callbacks.Callback):
        reached = False
        spent = 0.0  # seconds used before a kill (set by the resumed run's BackupAndRestore)

        def on_train_begin(self, logs=None):
            self.t0 = time.perf_counter()

        def elapsed(self) -> float:
            return self.spent + time.perf_counter() - self.t0

        def on_train_batch_end(self, batch, logs=None):
            if self.elapsed() >= 60.0 * minutes:
                self.reached = self.model.stop_training = True

    return TimeBudget()


#: Start of the one-cycle schedule as a share of the peak learning rate (``div_factor = 25`` of
#: Smith & Topin 2019 and ``torch.optim.lr_scheduler.OneCycleLR``).
ONECYCLE_START = 1.0 / 25.0


def _cosine(start: float, end: float, fraction: float) -> float:
    """Half-cosine from ``start`` (fraction 0) to ``end`` (fraction 1)."""
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * fraction))


def lr_factor(schedule: str, progress: float, *, warmup: float = 0.0, lr_min: float = 0.0) -> float:
    """The learning rate at a point of training, as a share of ``training.learning_rate``.

    - ``constant``: a linear warm-up from 0 over the first ``warmup`` of the
      budget (Goyal et al., "Accurate, large minibatch SGD: training ImageNet
      in 1 hour", 2017), then 1.
    - ``cosine``: the same linear warm-up, then a half cosine from 1 down to
      ``lr_min`` at the end of the budget (Loshchilov & Hutter, "SGDR:
      stochastic gradient descent with warm restarts", ICLR 2017, one cycle
      without restarts).
    - ``onecycle``: a half cosine from ``1/25`` up to 1 over the first
      ``warmup`` of the budget, then a half cosine down to ``lr_min`` (Smith &
      Topin, "Super-convergence: very fast training of neural networks using
      large learning rates", 2019, with cosine annealing as
      ``torch.optim.lr_scheduler.OneCycleLR``; they rise over 30 %).

    Parameters
    ----------
    schedule : {"constant", "cosine", "onecycle"}
        ``training.lr_schedule``.
    progress : float
        Share of the training budget used, clipped to ``[0, 1]``.
    warmup : float
        Share of the budget of the rise, in ``[0, 1)``.
    lr_min : float
        Final learning rate as a share of the peak, in ``[0, 1]`` (unused by ``constant``).

    Returns
    -------
    float
        Share of the peak learning rate, in ``[0, 1]``.

    Raises
    ------
    ValueError
        For an unknown schedule.
    """
    p = min(max(float(progress), 0.0), 1.0)
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose {', '.join(LR_SCHEDULES)}")
    if schedule == "onecycle":
        if p < warmup:
            return _cosine(ONECYCLE_START, 1.0, p / warmup)
        return _cosine(1.0, lr_min, (p - warmup) / (1.0 - warmup))
    if p < warmup:
        return p / warmup
    if schedule == "constant":
        return 1.0
    return _cosine(1.0, lr_min, (p - warmup) / (1.0 - warmup))


def lr_schedule(
    keras,
    schedule: str,
    learning_rate: float,
    *,
    warmup: float = 0.0,
    lr_min: float = 0.0,
    clock: Callable[[], float] | None = None,
    budget_s: float | None = None,
):
    """A callback that sets ``optimizer.learning_rate`` before every training batch (:func:`lr_factor`).

    Progress through training is the larger of the share of the time budget
    used, ``clock() / budget_s`` (when both are given), and the share of the
    steps, ``(epoch * steps + batch) / (epochs * steps)`` from the ``fit``
    parameters, so the schedule ends with whichever budget ends training.
    ``clock`` returns the training seconds spent so far, e.g. the ``elapsed``
    method of :func:`time_budget` (which counts the seconds of a run before a
    kill, so a resumed run continues its schedule); tests inject their own.
    At the end of every epoch the learning rate of the last batch is written
    to the epoch logs as ``learning_rate`` (the key Keras's own
    ``LearningRateScheduler`` uses), so it reaches the history and the CSV log
    of the callbacks that follow this one.

    Parameters
    ----------
    keras : module
        The ``keras`` module.
    schedule : {"constant", "cosine", "onecycle"}
        ``training.lr_schedule``.
    learning_rate : float
        The peak learning rate (``training.learning_rate``).
    warmup, lr_min : float
        Shares of the budget and of ``learning_rate``, as for :func:`lr_factor`.
    clock : callable, optional
        ``clock() -> float`` seconds of training so far.
    budget_s : float, optional
        The time budget in seconds (``60 * training.max_minutes``).

    Returns
    -------
    keras.callbacks.Callback
        With ``progress(batch) -> float`` and ``learning_rate`` (the last value set, float).
    """
    lr_factor(schedule, 0.0, warmup=warmup, lr_min=lr_min)  # a bad schedule name fails here, not mid-fit
    timed = clock is not None and budget_s is not None and budget_s > 0

    class LearningRateSchedule(keras.callbacks.Callback):
        epoch = 0
        learning_rate = float("nan")

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def progress(self, batch: int) -> float:
            steps = int(self.params.get("steps") or 0)
            by_steps = (self.epoch * steps + batch) / (self.params["epochs"] * steps) if steps else 0.0
            return min(max(by_steps, clock() / budget_s if timed else 0.0), 1.0)

        def on_train_batch_begin(self, batch, logs=None):
            self.learning_rate = learning_rate * lr_factor(schedule, self.progress(batch), warmup=warmup, lr_min=lr_min)
            self.model.optimizer.learning_rate = self.learning_rate

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["learning_rate"] = self.learning_rate

    return LearningRateSchedule()


def epoch_timer(keras):
    """A callback that records the wall-clock seconds of every epoch (training and validation) in ``seconds``."""

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(round(time.perf_counter() - self.t0, 3))

    return EpochTimer()


def backup_and_restore(keras, backup_dir: Path, *, epochs: int, early, timer, budget, ema: bool = False):
    """``keras.callbacks.BackupAndRestore`` that also carries the run's own state over a kill.

    Every epoch end writes, each file atomically, ``epoch<N>.weights.h5`` (model
    and optimizer variables, ``Model.save_weights``), ``best<E>.npz`` (the
    ``EarlyStopping`` best weights, when they change) and last ``state.json``:
    the epoch count ``N``, the full history, the ``EarlyStopping`` counters,
    the epoch timings and the seconds spent (for ``training.max_minutes``).
    Files of older epochs are then removed, so a kill at any moment leaves one
    consistent backup. A new run reads it (:attr:`initial_epoch`) before the
    input pipeline is built, so that pipeline starts with epoch ``N``'s
    shuffle; ``on_train_begin`` restores the weights, optimizer and counters
    (``early`` must come before this callback in the list). The caller
    deletes ``backup_dir`` when the run is committed.

    ``ema``: the optimizer keeps an exponential moving average of the weights
    (``use_ema=True``) and ``keras.callbacks.SwapEMAWeights(swap_on_epoch=True)``
    comes before this callback, so at the end of an epoch the model holds the
    averaged weights and the optimizer the raw ones: that is what the backup
    saves (both sets, with the rest of the optimizer state), and ``state.json``
    says so (``ema_swapped``). ``restore`` swaps them back (a one-off
    ``SwapEMAWeights``), so the resumed run trains on from the raw weights with
    the average it had, as the uninterrupted run does after the swap at the
    start of its next epoch.
    """

    class BackupAndRestore(keras.callbacks.BackupAndRestore):
        def __init__(self):
            super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
            self.state = self._read_state()
            self.history = {k: list(v) for k, v in self.state["history"].items()} if self.state else {}

        @staticmethod
        def _read_state():
            try:
                state = json.loads((backup_dir / "state.json").read_text(encoding="utf-8"))
                n, best = int(state["epoch"]), state["best"]
                if (backup_dir / f"epoch{n}.weights.h5").is_file() and (best is None or (backup_dir / best).is_file()):
                    return state
            except (OSError, ValueError, KeyError, TypeError):
                pass
            if backup_dir.exists():  # nothing usable (killed before the first epoch ended): start afresh
                shutil.rmtree(backup_dir)
            return None

        @property
        def initial_epoch(self) -> int:
            """Epochs completed before the kill (0 for a fresh run)."""
            return int(self.state["epoch"]) if self.state else 0

        @property
        def finished(self) -> bool:
            """The killed run had stopped training (last epoch, early stopping or time budget) before it was saved."""
            return bool(self.state and self.state["finished"])

        def restore(self, model) -> None:
            """Weights, optimizer and the counters of ``early`` / ``timer`` / ``budget`` from the backup."""
            n = self.initial_epoch
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(str(backup_dir / f"epoch{n}.weights.h5"))
            if self.state.get("ema_swapped"):  # the average was in the model, the raw weights in the optimizer
                swap = keras.callbacks.SwapEMAWeights()  # a fresh one believes the raw weights are in the model,
                swap.set_model(model)  # so its swap before an evaluation puts them back there
                swap.on_test_begin()
            e = self.state["early"]
            early.wait, early.best, early.best_epoch, early.stopped_epoch = (
                e["wait"],
                e["best"],
                e["best_epoch"],
                e["stopped_epoch"],
            )
            if self.state["best"] is not None:
                with np.load(backup_dir / self.state["best"]) as z:
                    early.best_weights = [z[f"w{i}"] for i in range(len(z.files))]
            timer.seconds = list(self.state["epoch_seconds"])
            if budget is not None:
                budget.spent = float(self.state["train_seconds"])
                budget.reached = bool(self.state["budget_reached"])

        def on_train_begin(self, logs=None):
            if self.state:
                self.restore(self.model)

        def on_epoch_end(self, epoch, logs=None):
            n = epoch + 1
            for k, v in (logs or {}).items():
                self.history.setdefault(k, []).append(float(v))
            backup_dir.mkdir(parents=True, exist_ok=True)
            tmp = backup_dir / "tmp.weights.h5"
            self.model.save_weights(str(tmp), overwrite=True)
            os.replace(tmp, backup_dir / f"epoch{n}.weights.h5")
            best = None
            if early.best_weights is not None:
                best = f"best{early.best_epoch}.npz"
                if not (backup_dir / best).is_file():
                    with open(backup_dir / "tmp.npz", "wb") as fh:
                        np.savez(fh, **{f"w{i}": w for i, w in enumerate(early.best_weights)})
                    os.replace(backup_dir / "tmp.npz", backup_dir / best)
            spent = budget.elapsed() if budget is not None else float(sum(timer.seconds))
            write_json(
                backup_dir / "state.json",
                {
                    "epoch": n,
                    "history": self.history,
                    "best": best,
                    "early": {
                        "wait": early.wait,
                        "best": None if early.best is None else float(early.best),
                        "best_epoch": early.best_epoch,
                        "stopped_epoch": early.stopped_epoch,
                    },
                    "epoch_seconds": timer.seconds,
                    "train_seconds": spent,
                    "budget_reached": bool(budget is not None and budget.reached),
                    "resumed_at_epochs": self.resumed_at_epochs,
                    "finished": bool(self.model.stop_training) or n >= epochs,
                    "ema_swapped": ema,
                },
            )
            for p in backup_dir.iterdir():
                if p.name not in (f"epoch{n}.weights.h5", best, "state.json"):
                    p.unlink(missing_ok=True)

        @property
        def resumed_at_epochs(self) -> list[int]:
            """Every epoch count this run was resumed at (empty for an uninterrupted run)."""
            if not self.state:
                return []
            return list(self.state.get("resumed_at_epochs", [])) + [self.initial_epoch]

    return BackupAndRestore()


def validation_clips(dataset: Path, info: dict, n: int, max_s: float = 4.0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The first ``n`` validation utterances with a clean reference: ``(id, noisy, clean)`` float32 waveforms.

    Read from the stage-01 folder the dataset was built from (``mixtures/``, ``references/``), at most
    ``max_s`` seconds each; empty when that folder is gone.
    """
    sr = int(info["features_params"]["sample_rate"])
    out = []
    for uid, mix, ref in referenced_pairs(dataset, info, "val"):
        if not (mix.is_file() and ref.is_file()):
            continue
        out.append((uid, read_mono(mix, int(max_s * sr)), read_mono(ref, int(max_s * sr))))
        if len(out) == n:
            break
    if not out:
        log.info(
            "no validation utterance with a clean reference under %s: TensorBoard gets no SNR/val, audio or "
            "spectrograms",
            info.get("source", ""),
        )
    return out


def spectrogram_image(signals: list[np.ndarray], n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Log-magnitude spectrograms of ``signals`` stacked top to bottom, low frequencies down: uint8 RGB
    ``(n_signals * (n_fft // 2 + 1), n_frames, 3)`` (magma colour map, 80 dB range below the peak of all
    signals, magnitudes floored at 1e-5 like :func:`librosa.amplitude_to_db`; ``n_frames`` of the shortest)."""
    from matplotlib import colormaps

    specs, vmax = spectrograms_db(signals, n_fft=n_fft, hop_length=hop)
    width = min(s.shape[1] for s in specs)
    floor = -100.0  # 20 * log10(1e-5)
    db = np.maximum(np.maximum(np.concatenate([s[::-1, :width] for s in specs]), floor) - max(vmax, floor), -80.0)
    return (colormaps["magma"]((db + 80.0) / 80.0)[..., :3] * 255).astype(np.uint8)


def tensorboard_scalars(
    keras, log_dir: Path, *, model, fit_model, batch, clips, dataset: Path, info: dict, cfg: Config
):
    """A callback writing libdse-style TensorBoard summaries to ``log_dir`` at the end of every epoch.

    Scalars: ``Loss/train``, ``Loss/val``, ``Ratio/val_to_train`` (from the epoch logs), ``SNR/val``
    (mean SI-SDR improvement in dB of the denoised over the noisy waveform on ``clips``, through the
    stage-04 inference path: :class:`speech_dae.inference.Denoiser` on the in-memory model), and
    ``GradNorm/encoder`` / ``GradNorm/decoder`` (global gradient norm of the first / second half of the
    trainable variables on the fixed training ``batch``, ``tf.GradientTape``, inference mode so no
    random state is used). Media: ``Audio/<id>`` (denoised waveform) and ``Spectrogram/<id>`` (noisy,
    denoised, clean from top to bottom) for every clip. The step is the epoch index (as Keras's own
    ``TensorBoard`` callback). TensorFlow backend only: ``None`` (and a debug log) on the others.
    """
    if keras.backend.backend() != "tensorflow":
        log.debug(
            "TensorBoard scalars and media need the TensorFlow backend; %s writes the stock curves only",
            keras.backend.backend(),
        )
        return None
    import tensorflow as tf

    params = info["features_params"]
    sr = int(params["sample_rate"])
    # the stage-04 inference path, on the model being trained (no run folder yet)
    run_info = RunInfo(
        model=cfg.model.name,
        feature=info["feature"],
        sample_rate=sr,
        features=params["features"],
        context=int(info["context"]),
        n_bins=int(info["n_bins"]),
        target=cfg.training.target,
        patch_hop=cfg.reconstruct.patch_hop,
    )
    den = Denoiser.from_model(
        model,
        run_info,
        Normaliser.load(dataset / "norm.npz"),
        patch_hop=cfg.reconstruct.patch_hop,
        batch_size=cfg.reconstruct.batch_size,
        max_gain=cfg.reconstruct.max_gain,
    )

    class TensorBoardScalars(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writer = tf.summary.create_file_writer(str(log_dir))

        def grad_norms(self) -> tuple[float, float]:
            x, y = batch
            variables = fit_model.trainable_variables
            with tf.GradientTape() as tape:
                loss = fit_model.compute_loss(x=x, y=y, y_pred=fit_model(x, training=False), training=False)
            grads = tape.gradient(loss, variables)
            half = max(1, len(variables) // 2)
            return tuple(
                float(tf.linalg.global_norm([g for g in part if g is not None]))
                for part in (grads[:half], grads[half:])
            )

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            scalars = {}
            if "loss" in logs:
                scalars["Loss/train"] = float(logs["loss"])
            if "val_loss" in logs:
                scalars["Loss/val"] = float(logs["val_loss"])
            if "loss" in logs and "val_loss" in logs and float(logs["loss"]) != 0:
                scalars["Ratio/val_to_train"] = float(logs["val_loss"]) / float(logs["loss"])
            scalars["GradNorm/encoder"], scalars["GradNorm/decoder"] = self.grad_norms()
            denoised = [den(noisy) for _, noisy, _ in clips]
            if clips:
                scalars["SNR/val"] = float(
                    np.mean([si_sdr(clean, d) - si_sdr(clean, noisy) for (_, noisy, clean), d in zip(clips, denoised)])
                )
            with self.writer.as_default(step=epoch):
                for tag, value in scalars.items():
                    tf.summary.scalar(tag, value)
                for (uid, noisy, clean), d in zip(clips, denoised):
                    peak = max(float(np.max(np.abs(d))), 1e-9)
                    tf.summary.audio(
                        f"Audio/{uid}",
                        (d / max(peak, 1.0))[None, :, None],
                        sr,
                        max_outputs=1,
                        description="denoised (validation)",
                    )
                    tf.summary.image(
                        f"Spectrogram/{uid}",
                        spectrogram_image([noisy, d, clean])[None],
                        max_outputs=1,
                        description="noisy / denoised / clean (top to bottom)",
                    )
            self.writer.flush()

        def on_train_end(self, logs=None):
            self.writer.close()

    return TensorBoardScalars()
