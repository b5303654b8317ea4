"""The thesis networks: mReLU, the partitioned loss and latent zeroing, the Curro branches, and training
from noisy + noise-only recordings (no clean speech) through 01 -> 02 -> 03 -> 04."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from conftest import build_corpus, speech_clip  # noqa: E402

from speech_dae.errors import ConfigError  # noqa: E402
from speech_dae.models import build_model  # noqa: E402
from speech_dae.models.thesis import MRELU_EPSILON, identity_loss, mrelu, semi_supervised_trainer  # noqa: E402
from speech_dae.stages.dataset import build_dataset  # noqa: E402
from speech_dae.stages.extract import extract_features  # noqa: E402

EPS = MRELU_EPSILON


def _np(t):
    return np.asarray(keras.ops.convert_to_numpy(t))


# ---------------------------------------------------------------------- mReLU
@pytest.mark.parametrize(
    "x, expected",
    [
        (2.0, 2.0),
        (EPS, EPS),
        (0.5, 0.5),
        (0.0, EPS / (1 + EPS)),  # -eps / (0 - 1 - eps)
        (-1.0, EPS / (2 + EPS)),
        (-9.0, EPS / (10 + EPS)),
    ],
)
def test_mrelu_values(x, expected):
    assert _np(mrelu(keras.ops.convert_to_tensor(np.float32(x)))) == pytest.approx(expected, rel=1e-5)


def test_mrelu_gradient_at_known_points():
    import tensorflow as tf

    x = tf.Variable(np.array([-3.0, 0.0, EPS / 2, 1.0 + EPS, 4.0], np.float32))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(mrelu(x))
    g = tape.gradient(y, x).numpy()
    expected = [EPS / (4 + EPS) ** 2, EPS / (1 + EPS) ** 2, EPS / (1 + EPS / 2) ** 2, 1.0, 1.0]
    np.testing.assert_allclose(g, expected, rtol=1e-4)
    assert np.all(np.isfinite(g))  # the unused branch's pole at 1 + eps never leaks


def test_mrelu_is_continuous_and_positive():
    x = np.linspace(-50, 3, 10001).astype(np.float32)
    y = _np(mrelu(keras.ops.convert_to_tensor(x)))
    assert np.all(y > 0) and np.all(np.diff(y) >= 0)  # monotone, never zero: no dead units
    below, above = _np(mrelu(keras.ops.convert_to_tensor(np.float32([EPS * (1 - 1e-3), EPS]))))
    assert abs(above - below) < 1e-8


# --------------------------------------------------------------- partitioned
@pytest.fixture(scope="module")
def partitioned():
    keras.utils.set_random_seed(3)
    return build_model("partitioned", (1, 6), units=8, background=0.25, penalty=0.75, batch_norm=False)


def _dense(model, name, x):
    w = model.get_layer(name).get_weights()
    return x @ w[0] + (w[1] if len(w) > 1 else 0.0)


def _mrelu_np(x):
    return np.where(x >= EPS, x, -EPS / (np.minimum(x, EPS) - 1 - EPS))


def test_partitioned_loss_on_a_toy_batch_equals_a_hand_computation(partitioned):
    m = partitioned
    trainer = semi_supervised_trainer(m, "partitioned", penalty=0.75)
    trainer.compile(loss={"recon": "mse", "penalty": identity_loss})
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 1, 6)).astype(np.float32)
    y = np.array([[0.0], [1.0], [0.0], [1.0]], np.float32)
    got = trainer.evaluate([x, y], {"recon": x, "penalty": np.zeros(4, np.float32)}, verbose=0, return_dict=True)

    flat = x.reshape(4, 6).astype(np.float64)
    h_s = _mrelu_np(_dense(m, "latent_signal", flat))
    h_b = _mrelu_np(_dense(m, "latent_background", flat))
    assert h_s.shape == (4, 6) and h_b.shape == (4, 2)  # 25 % of 8 units are background
    x_hat = _dense(m, "decode_signal", h_s) + _dense(m, "decode_background", h_b)
    recon = np.mean((flat - x_hat) ** 2)
    c = np.r_[np.ones(6), np.zeros(2)]  # the signal mask C over the whole code
    f = np.c_[h_s, h_b]
    penalty = np.mean(0.75 * y[:, 0] / c.mean() * np.mean((c * f) ** 2, axis=1))
    assert got["loss"] == pytest.approx(recon + penalty, rel=1e-5)
    assert got["penalty_loss"] == pytest.approx(penalty, rel=1e-5)
    assert penalty > 0


def test_zeroing_the_background_latents_changes_only_the_background_part(partitioned):
    m = partitioned
    trainer = semi_supervised_trainer(m, "partitioned")
    x = np.random.default_rng(1).normal(size=(5, 1, 6)).astype(np.float32)
    labels = np.zeros((5, 1), np.float32)
    full = np.asarray(trainer([x, labels], training=False)["recon"]).reshape(5, 6)
    inference = np.asarray(m(x, training=False)).reshape(5, 6)
    flat = x.reshape(5, 6).astype(np.float64)
    background_part = _dense(m, "decode_background", _mrelu_np(_dense(m, "latent_background", flat)))
    np.testing.assert_allclose(full - inference, background_part, atol=1e-5)
    signal_part = _dense(m, "decode_signal", _mrelu_np(_dense(m, "latent_signal", flat)))
    np.testing.assert_allclose(inference, signal_part, atol=1e-5)


@pytest.mark.parametrize(
    "hp, pattern",
    [
        ({"background": 0.0}, "background"),
        ({"background": 1.0}, "background"),
        ({"units": 2, "background": 0.1}, "background"),
        ({"penalty": -1.0}, "penalty"),
    ],
)
def test_partitioned_rejects_bad_hyper_parameters(hp, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_model("partitioned", (1, 6), **{"units": 8, **hp})


# --------------------------------------------------------------------- Curro
def test_curro_reconstructs_noise_only_examples_with_the_noise_branch_alone():
    keras.utils.set_random_seed(4)
    m = build_model("curro", (1, 5), units=[8, 6], decoder_units=[4], batch_norm=False)
    trainer = semi_supervised_trainer(m, "curro")
    x = np.random.default_rng(2).normal(size=(3, 1, 5)).astype(np.float32)

    def branch(half):
        flat = x.reshape(3, 5).astype(np.float64)
        h = _mrelu_np(_dense(m, "encode0", flat))
        return _dense(m, "decode_out", _mrelu_np(_dense(m, "decode0", _mrelu_np(_dense(m, f"latent_{half}", h)))))

    s, n = branch("signal"), branch("noise")
    rec = {
        lab: np.asarray(trainer([x, np.full((3, 1), lab, np.float32)], training=False)["recon"]).reshape(3, 5)
        for lab in (0.0, 1.0)
    }
    np.testing.assert_allclose(rec[0.0], s + n, atol=1e-5)  # noisy speech: the sum
    np.testing.assert_allclose(rec[1.0], n, atol=1e-5)  # noise only: the noise branch
    np.testing.assert_allclose(np.asarray(m(x)).reshape(3, 5), s, atol=1e-5)  # inference: the signal branch
    half = build_model("curro", (1, 5), units=[8, 6], decoder_units=[4], batch_norm=False, alpha=0.5)
    half.set_weights(m.get_weights())
    np.testing.assert_allclose(np.asarray(half(x)).reshape(3, 5), s + 0.5 * n, atol=1e-5)


def test_curro_code_must_split_in_halves_and_trainer_needs_a_semi_supervised_model():
    with pytest.raises(ConfigError, match="even"):
        build_model("curro", (1, 5), units=[8, 7])
    with pytest.raises(ConfigError, match="semi-supervised"):
        semi_supervised_trainer(build_model("shallow", (1, 5), units=4), "shallow")


# ------------------------------------------------- no clean speech: 01 -> 04
@pytest.fixture(scope="module")
def noisy_only(tmp_path_factory, tiny_cfg):
    """Noisy recordings (mixtures written by a first stage-01 run) + noise-only recordings, no clean folder."""
    root = tmp_path_factory.mktemp("noclean")
    corpus = build_corpus(root / "corpus", n_train_clean=4, n_train_noise=2)
    cfg = tiny_cfg.replace(**{"features.type": "magnitude", "dataset.context": 1, "dataset.stride": 1})
    extract_features(cfg, out=root / "mixed", data=corpus, progress=False)
    noisy_dir = root / "mixed" / "mixtures"
    extract_features(cfg, out=root / "features", noisy=noisy_dir, noise_only=corpus / "train" / "noise", progress=False)
    build_dataset(cfg, features=root / "features", out=root / "dataset", progress=False)
    return root, cfg


def test_noisy_plus_noise_only_layout_writes_labels_and_no_references(noisy_only):
    import csv
    import json

    root, _ = noisy_only
    rows = list(csv.DictReader(open(root / "features" / "manifest.csv")))
    kinds = {r["kind"] for r in rows}
    assert kinds == {"noisy", "noise_only"} and {r["split"] for r in rows} <= {"train", "val"}
    assert not any((root / "features" / "references").glob("*.wav"))
    info = json.loads((root / "dataset" / "dataset.json").read_text())
    assert info["clean_targets"] is False
    labels = np.load(root / "dataset" / "labels_train.npy")
    assert labels.shape == np.load(root / "dataset" / "windows_train.npy").shape
    assert set(np.unique(labels)) == {0.0, 1.0} and labels.sum() == info["splits"]["train"]["noise_only_patches"]


@pytest.mark.parametrize("model", ["partitioned", "curro"])
def test_semi_supervised_models_train_without_clean_speech_and_denoise(noisy_only, model, tmp_path):
    from speech_dae.inference import Denoiser
    from speech_dae.stages.train import train

    root, cfg = noisy_only
    s = train(
        cfg.replace(**{"model.name": model}),
        dataset=root / "dataset",
        run=model,
        models_dir=tmp_path,
        logs_dir=tmp_path / "logs",
        progress=False,
    )
    assert s.info.semi_supervised and np.isfinite(s.info.best_val_loss)
    y = speech_clip(2, 0.5)
    out = Denoiser(s.run_dir)(y)
    assert out.shape == y.shape and np.all(np.isfinite(out))


def test_supervised_model_on_a_dataset_without_clean_references_is_refused(noisy_only, tmp_path):
    from speech_dae.stages.train import train

    root, cfg = noisy_only
    with pytest.raises(ConfigError, match="no clean references.*partitioned, curro.*not type2"):
        train(
            cfg.replace(**{"model.name": "type2"}),
            dataset=root / "dataset",
            run="r",
            models_dir=tmp_path,
            logs_dir=tmp_path / "logs",
            progress=False,
        )


def test_semi_supervised_model_without_noise_only_patches_is_refused(built, tmp_path):
    from speech_dae.stages.train import train

    with pytest.raises(ConfigError, match="--noise-only"):
        train(
            built.cfg.replace(**{"model.name": "curro"}),
            dataset=built.dataset,
            run="r",
            models_dir=tmp_path,
            logs_dir=tmp_path / "logs",
            progress=False,
        )


def test_noisy_without_clean_or_noise_only_explains_both_options(tmp_path, tiny_cfg):
    (tmp_path / "noisy").mkdir()
    with pytest.raises(ConfigError, match="--clean.*--noise-only"):
        extract_features(tiny_cfg, out=tmp_path / "f", noisy=tmp_path / "noisy", progress=False)


def test_labelled_batches_hold_the_fixed_noise_only_share():
    from speech_dae.training.batches import LabelledPatchSequence

    x = np.arange(200, dtype=np.float32).reshape(100, 2)
    windows = np.arange(100)
    labels = (windows >= 80).astype(np.float32)  # 20 noise-only windows
    seq = LabelledPatchSequence(
        x, windows, labels, context=1, batch_size=8, noise_only_fraction=0.25, shuffle=True, seed=0, penalty_output=True
    )
    assert len(seq) == 14  # ceil(80 speech windows / 6 per batch)
    (xb, yb), targets = seq[0]
    assert xb.shape == (8, 1, 2) and yb.shape == (8, 1) and yb[:, 0].tolist() == [0] * 6 + [1] * 2
    np.testing.assert_array_equal(targets["recon"], xb)  # the input is the target
    np.testing.assert_array_equal(targets["penalty"], 0.0)
    starts = xb[:, 0, 0] / 2
    assert np.all(starts[:6] < 80) and np.all(starts[6:] >= 80)
    (xl, yl), _ = seq[len(seq) - 1]  # the last batch: the 2 speech windows left + 2 noise-only
    assert xl.shape[0] == 4 and yl[:, 0].tolist() == [0, 0, 1, 1]
