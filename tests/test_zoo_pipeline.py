"""Every registry model through the pipeline contract: 01 -> 02 -> 03 (mapping or mask) -> 04, tiny and in-process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import build_corpus, speech_clip

from speech_dae.errors import ConfigError
from speech_dae.models import MODEL_FEATURES, MODEL_TARGETS, model_names
from speech_dae.stages.dataset import build_dataset
from speech_dae.stages.extract import extract_features

#: (model, feature, target): every model, every feature and both targets at least once.
CASES = [
    ("type1", "logmel", "mask"),
    ("type2", "power", "mask"),
    ("type2", "logmel", "mapping"),
    ("dense_ln", "logmag", "mapping"),
    ("dense_ln", "power", "mapping"),
    ("dense_ln", "fbank", "mask"),
    ("cnn2d", "logmag", "mask"),
    ("cnn2d", "fbank", "mapping"),
    ("unet", "fbank", "mask"),
    ("unet", "logmag", "mapping"),
    ("conv1d_time", "waveform", "mapping"),
    ("shallow", "magnitude", "mask"),
    ("partitioned", "magnitude", "mapping"),
    ("curro", "logmag", "mapping"),
    ("tcn", "logmel", "mask"),
    ("erbnet", "logmag", "mask"),
]


def test_cases_cover_the_registry():
    assert {m for m, _, _ in CASES} == set(model_names())
    assert {f for _, f, _ in CASES} == {f for fs in MODEL_FEATURES.values() for f in fs}
    assert {t for _, _, t in CASES} == {t for ts in MODEL_TARGETS.values() for t in ts}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("zoo") / "corpus", n_train_clean=3, n_train_noise=2)


@pytest.fixture(scope="module")
def datasets(corpus, tiny_cfg):
    """One stage-02 folder per feature type, built on first use (with noise-only recordings for the
    semi-supervised models; the supervised ones leave those patches out)."""
    cache = {}

    def get(feature):
        if feature not in cache:
            cfg = tiny_cfg.replace(**{"features.type": feature, "features.chunk_size": 512})
            root = corpus.parent
            extract_features(
                cfg, out=root / "features" / feature, data=corpus, noise_only=corpus / "train" / "noise", progress=False
            )
            build_dataset(cfg, features=root / "features" / feature, out=root / "datasets" / feature, progress=False)
            cache[feature] = (cfg, root / "datasets" / feature)
        return cache[feature]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("model, feature, target", CASES)
def test_train_then_reconstruct_gives_audio_of_the_input_length(model, feature, target, datasets, tmp_path):
    from speech_dae.inference import Denoiser
    from speech_dae.stages.train import train

    cfg, ds = datasets(feature)
    cfg = cfg.replace(**{"model.name": model, "training.target": target})
    s = train(cfg, dataset=ds, run="r", models_dir=tmp_path, logs_dir=tmp_path / "logs", progress=False)
    info = json.loads((s.run_dir / "run.json").read_text())
    assert info["model"] == model and info["target"] == target and info["feature"] == feature
    assert np.isfinite(info["best_val_loss"])
    assert info["semi_supervised"] == (model in ("partitioned", "curro"))
    den = Denoiser(s.run_dir, patch_hop=2)
    y = speech_clip(1, 0.7)[:11111]
    out = den(y)
    assert out.shape == y.shape and out.dtype == np.float32 and np.all(np.isfinite(out)) and np.any(out != 0)
    frames = den.predict_frames(den.fx(y))
    if target == "mask":
        assert frames.min() >= 0.0 and frames.max() <= 1.0
    if feature == "waveform":
        assert frames.shape == (y.size, 1) and den.patch_hop == 256


@pytest.mark.parametrize(
    "model, feature, target, pattern",
    [
        ("conv1d_time", "fbank", "mapping", "conv1d_time works on waveform features, but .* holds fbank"),
        ("type2", "waveform", "mapping", "type2 works on .*fbank.* features, but .* holds waveform"),
        ("conv1d_time", "waveform", "mask", "conv1d_time supports --target mapping, not mask"),
    ],
)
def test_model_feature_and_target_mismatches_are_refused(model, feature, target, pattern, datasets, tmp_path):
    from speech_dae.stages.train import train

    cfg, ds = datasets(feature)
    with pytest.raises(ConfigError, match=pattern):
        train(
            cfg.replace(**{"model.name": model, "training.target": target}),
            dataset=ds,
            run="r",
            models_dir=tmp_path,
            logs_dir=tmp_path / "logs",
            progress=False,
        )
    assert not (tmp_path / "r").exists()
