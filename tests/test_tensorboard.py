"""TensorBoard summaries of stage 03 (libdse style): scalars, audio and spectrogram images every epoch."""

from __future__ import annotations

import math

import pytest
from conftest import TINY_SETS

_SCALARS = ("Loss/train", "Loss/val", "Ratio/val_to_train", "SNR/val", "GradNorm/encoder", "GradNorm/decoder")


def _events(log_dir):
    """``{tag: [(step, value or tensor)]}`` of every event file directly in ``log_dir``."""
    import tensorflow as tf

    out = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, tf.make_ndarray(v.tensor)))
    return out


@pytest.mark.parametrize("model", ["type2"])
def test_two_epochs_write_every_scalar_audio_and_image_once_per_epoch(tmp_path, built, model):
    import numpy as np

    from speech_dae.config import load_config
    from speech_dae.stages.train import train

    cfg = load_config(
        overrides=TINY_SETS
        + ["training.epochs=2", "training.patience=10", "training.tensorboard_utterances=2", f"model.name={model}"]
    )
    summary = train(
        cfg,
        dataset=built.dataset,
        run="tb",
        models_dir=tmp_path / "models",
        logs_dir=tmp_path / "model_logs",
        progress=False,
    )
    events = _events(tmp_path / "model_logs" / "tb")
    for tag in _SCALARS:
        assert [s for s, _ in events.get(tag, [])] == [0, 1], f"{tag}: {sorted(events)}"
        assert all(math.isfinite(float(v)) for _, v in events[tag])
    hist = summary.info.history
    np.testing.assert_allclose([float(v) for _, v in events["Loss/train"]], hist["loss"], rtol=1e-6)
    np.testing.assert_allclose([float(v) for _, v in events["Loss/val"]], hist["val_loss"], rtol=1e-6)
    np.testing.assert_allclose(
        [float(v) for _, v in events["Ratio/val_to_train"]],
        np.array(hist["val_loss"]) / np.array(hist["loss"]),
        rtol=1e-5,
    )
    assert all(float(v) > 0 for tag in ("GradNorm/encoder", "GradNorm/decoder") for _, v in events[tag])
    audio = sorted(t for t in events if t.startswith("Audio/"))
    images = sorted(t for t in events if t.startswith("Spectrogram/"))
    assert len(audio) == len(images) == 2
    for tag in audio + images:
        assert [s for s, _ in events[tag]] == [0, 1]
    # an image summary holds width, height and the encoded PNG
    width, height, png = events[images[0]][0][1]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int(height) == 3 * 257 and int(width) > 10


def test_media_switch_off_writes_only_the_stock_curves(tmp_path, built):
    from speech_dae.config import load_config
    from speech_dae.stages.train import train

    cfg = load_config(overrides=TINY_SETS + ["training.tensorboard_media=false"])
    train(
        cfg,
        dataset=built.dataset,
        run="tb",
        models_dir=tmp_path / "models",
        logs_dir=tmp_path / "model_logs",
        progress=False,
    )
    assert _events(tmp_path / "model_logs" / "tb") == {}
    assert (tmp_path / "model_logs" / "tb" / "train").is_dir()  # Keras's own TensorBoard callback


def test_bad_utterance_count_is_a_config_error():
    from speech_dae.config import load_config
    from speech_dae.errors import ConfigError

    with pytest.raises(ConfigError, match="tensorboard_utterances"):
        load_config(overrides=["training.tensorboard_utterances=0"])
    with pytest.raises(ConfigError, match="tensorboard_media"):
        load_config(overrides=["training.tensorboard_media=3"])


@pytest.mark.parametrize("model", ["partitioned", "curro"])
def test_semi_supervised_models_log_gradient_norms_without_clean_references(tmp_path, tiny_cfg, model):
    """Thesis models train on noisy + noise-only recordings: GradNorm/ and Loss/ are written, SNR/val
    is not (no clean reference to score against)."""
    from conftest import build_corpus

    from speech_dae.stages.dataset import build_dataset
    from speech_dae.stages.extract import extract_features
    from speech_dae.stages.train import train

    corpus = build_corpus(tmp_path / "corpus", n_train_clean=4, n_train_noise=2)
    cfg = tiny_cfg.replace(
        **{
            "features.type": "magnitude",
            "dataset.context": 1,
            "dataset.stride": 1,
            "training.epochs": 2,
            "model.name": model,
        }
    )
    extract_features(cfg, out=tmp_path / "mixed", data=corpus, progress=False)
    extract_features(
        cfg,
        out=tmp_path / "features",
        noisy=tmp_path / "mixed" / "mixtures",
        noise_only=corpus / "train" / "noise",
        progress=False,
    )
    build_dataset(cfg, features=tmp_path / "features", out=tmp_path / "dataset", progress=False)
    train(
        cfg,
        dataset=tmp_path / "dataset",
        run="semi",
        models_dir=tmp_path / "models",
        logs_dir=tmp_path / "model_logs",
        progress=False,
    )
    events = _events(tmp_path / "model_logs" / "semi")
    for tag in ("Loss/train", "Loss/val", "GradNorm/encoder", "GradNorm/decoder"):
        assert [s for s, _ in events[tag]] == [0, 1] and all(math.isfinite(float(v)) for _, v in events[tag])
    assert "SNR/val" not in events and not any(t.startswith("Audio/") for t in events)
