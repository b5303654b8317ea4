"""Training on audio: dynamic mixing, fixed segments, the validation patches and the spectral-loss targets."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY_SETS

from speech_dae.artifacts import read_csv, read_json
from speech_dae.config import load_config
from speech_dae.errors import ConfigError
from speech_dae.features import FeatureExtractor
from speech_dae.stages.train import train
from speech_dae.training.examples import AudioPool, load_pools, mixture_sequences, uses_audio


def _sequences(built, *sets):
    """Config, dataset.json and ``mixture_sequences`` of the tiny built dataset with ``sets``."""
    cfg = load_config(overrides=[*TINY_SETS, *sets])
    info = read_json(built.dataset / "dataset.json")
    return cfg, info, mixture_sequences(built.dataset, info, cfg.training, cfg.seed)


def test_audio_pool_pads_speech_with_zeros_and_loops_noise():
    pool = AudioPool([np.arange(1, 6, dtype=np.float32), np.array([10, 20, 30], np.float32)])
    np.testing.assert_array_equal(pool.segments(np.array([0, 1]), np.array([-2, 1]), 4), [[0, 0, 1, 2], [20, 30, 0, 0]])
    np.testing.assert_array_equal(pool.segments(np.array([1]), np.array([2]), 5, wrap=True), [[30, 10, 20, 30, 10]])
    np.testing.assert_allclose(pool.power, [np.mean(np.arange(1, 6) ** 2), np.mean([100, 400, 900])])


def test_which_configs_train_on_audio():
    cfg = load_config()
    assert not uses_audio(cfg.training)
    assert uses_audio(load_config(overrides=["training.mixing=dynamic"]).training)
    assert uses_audio(load_config(overrides=["training.loss=cmse", "training.target=mask"]).training)


def test_config_rejects_bad_mixing_values():
    with pytest.raises(ConfigError, match="training.mixing='online' is unknown"):
        load_config(overrides=["training.mixing=online"])
    with pytest.raises(ConfigError, match=r"snr_range=.*low <= high"):
        load_config(overrides=["training.snr_range=[15,-5]"])
    with pytest.raises(ConfigError, match="loss_weights"):
        load_config(overrides=["training.loss=cmse+sisdr", "training.loss_weights=[1]"])


def test_dynamic_pools_read_only_the_training_split(built, monkeypatch):
    import speech_dae.training.examples as segments

    read = []
    real = segments.read_mono
    monkeypatch.setattr(segments, "read_mono", lambda p, *a: read.append(p.stem) or real(p, *a))
    info = read_json(built.dataset / "dataset.json")
    pools = load_pools(built.dataset, info, "train", dynamic=True)
    train_ids = {r["id"] for r in read_csv(built.dataset / "utterances_train.csv")}
    assert set(read) == train_ids
    manifest = [r for r in read_csv(built.features / "manifest.csv") if r["split"] == "train"]
    assert len(pools["clean"]) == len({r["clean_file"] for r in manifest})  # one reference per clean file
    assert len(pools["noise"]) == len(manifest)  # mixture - reference of every mixture


def test_dynamic_examples_hit_the_snr_and_level_ranges(built):
    """Every draw's SNR (noise part vs clean part, over the utterance power) lies in snr_range; levels vary."""
    cfg, info, (train_seq, _, _) = _sequences(
        built, "training.mixing=dynamic", "training.snr_range=[-5,15]", "training.gain_db=10"
    )
    keys = np.arange(200)
    noisy, clean = train_seq._draw(keys)
    speech, noise = train_seq.audio["clean"], train_seq.audio["noise"]
    u = np.stack([np.random.default_rng([cfg.seed, int(k)]).random(6) for k in keys])
    ci, ni = (u[:, 0] * len(speech)).astype(int), (u[:, 2] * len(noise)).astype(int)
    gain = np.sqrt(
        np.sum(clean**2, axis=1)
        / np.maximum(
            np.sum(
                speech.segments(
                    ci,
                    (u[:, 1] * np.maximum(speech.lengths[ci] - train_seq.n_samples, 1)).astype(int),
                    train_seq.n_samples,
                )
                ** 2,
                axis=1,
            ),
            1e-20,
        )
    )
    level_db = 20 * np.log10(gain[gain > 0])
    assert level_db.min() >= -10.01 and level_db.max() <= 10.01 and np.ptp(level_db) > 10
    # SNR against the whole clean utterance's power and the noise piece's power (the stage-01 rule)
    piece = (noisy - clean) / gain[:, None]
    start = (u[:, 3] * noise.lengths[ni]).astype(int)
    ref = noise.segments(ni, start, train_seq.n_samples, wrap=True)
    scale = np.sum(piece * ref, axis=1) / np.sum(ref * ref, axis=1)
    snr = 10 * np.log10(speech.power[ci] / (noise.power[ni] * scale**2))
    assert snr.min() >= -5.01 and snr.max() <= 15.01 and snr.min() < 0 and snr.max() > 10
    np.testing.assert_allclose(piece, scale[:, None] * ref, atol=1e-5)  # the noise part is the chosen piece


def test_dynamic_mixing_clips_at_the_datasets_clip_peak(built):
    """Issue 16 (5): the peak guard is ``mixing.clip_peak`` of the stage-01 mixtures, not a hard-coded 0.99."""
    cfg = load_config(overrides=[*TINY_SETS, "training.mixing=dynamic", "training.gain_db=12"])
    info = read_json(built.dataset / "dataset.json")
    info["features_params"]["mixing"]["clip_peak"] = 0.25
    train_seq, _, _ = mixture_sequences(built.dataset, info, cfg.training, cfg.seed)
    noisy, clean = train_seq._draw(np.arange(300))
    peak = np.max(np.abs(noisy), axis=1)
    assert peak.max() <= 0.25 + 1e-6
    clipped = peak > 0.25 - 1e-6
    assert 0 < clipped.sum() < peak.size  # some draws hit the guard, others are below it
    # a clipped draw scales the mixture and its target together: the noise part keeps its ratio to the clean part
    loud = np.flatnonzero(clipped)[0]
    ratio = np.linalg.norm(noisy[loud] - clean[loud]) / np.linalg.norm(clean[loud])
    again, _, _ = mixture_sequences(built.dataset, read_json(built.dataset / "dataset.json"), cfg.training, cfg.seed)
    n1, c1 = again._draw(np.array([loud]))
    np.testing.assert_allclose(np.linalg.norm(n1[0] - c1[0]) / np.linalg.norm(c1[0]), ratio, rtol=1e-4)


def test_examples_are_a_function_of_the_key_and_new_every_epoch(built):
    _, _, (train_seq, _, _) = _sequences(built, "training.mixing=dynamic")
    a, b = train_seq.examples(np.arange(8)), train_seq.examples(np.arange(8))
    np.testing.assert_array_equal(a[0], b[0])
    keys0, _ = train_seq.batch_starts(0, 0)
    keys1, _ = train_seq.batch_starts(1, 0)
    assert not np.array_equal(train_seq.examples(keys0)[0], train_seq.examples(keys1)[0])


def test_validation_patches_equal_the_whole_file_features(built):
    """Cut from audio, a validation patch holds exactly the stage-01 features of its frames (consecutive patches)."""
    cfg, info, (_, val_seq, sizes) = _sequences(built, "training.mixing=dynamic")
    rows = [r for r in read_csv(built.dataset / "utterances_val.csv")]
    context = int(info["context"])
    assert sizes["val"] == sum((1 + int(r["n_frames"]) - 1) // context for r in rows) == val_seq.table.shape[0]
    assert sizes["val_frames"] == sizes["val"] * context
    assert sizes["val_minutes"] == pytest.approx(sizes["val_frames"] * 128 / 16000 / 60, abs=0.01)
    x, y = val_seq.examples(np.arange(sizes["val"]))
    stored = np.load(built.features / "noisy" / f"{rows[0]['id']}.npy")
    norm = val_seq.norm
    np.testing.assert_allclose(norm.denorm_x(x[1]), stored[context : 2 * context], atol=1e-4)
    clean = np.load(built.features / "clean" / f"{rows[0]['id']}.npy")
    np.testing.assert_allclose(norm.denorm_y(y[0]), clean[:context], atol=1e-4)  # mapping target


def test_spectral_loss_targets_pack_the_clean_and_noisy_stft(built):
    cfg, info, (train_seq, _, _) = _sequences(built, "training.loss=cmse+sisdr", "training.target=mask")
    keys = np.arange(4)
    noisy, clean = train_seq._draw(keys)
    x, y = train_seq.examples(keys)
    assert y.shape == (*x.shape, 4) and y.dtype == np.float32
    fx = FeatureExtractor(cfg.features, 16000)
    keep = slice(train_seq.pad, train_seq.pad + train_seq.context)
    S, Y = fx.stft(clean)[:, keep], fx.stft(noisy)[:, keep]
    np.testing.assert_allclose(y[..., 0] + 1j * y[..., 1], S, atol=1e-5)
    np.testing.assert_allclose(y[..., 2] + 1j * y[..., 3], Y, atol=1e-5)
    np.testing.assert_allclose(train_seq.norm.denorm_x(x), np.log(np.abs(Y) + cfg.features.eps), atol=1e-4)


def test_spectral_loss_needs_a_mask_on_stft_features(built):
    with pytest.raises(ConfigError, match="needs training.target=mask"):
        _sequences(built, "training.loss=sisdr")


@pytest.mark.parametrize(
    "sets",
    [
        ["training.mixing=dynamic", "training.target=mask"],
        [
            "training.loss=cmse+sisdr",
            "training.loss_weights=[1.0,0.01]",
            "training.target=mask",
            "training.weight_decay=0.001",
        ],
    ],
)
def test_training_on_audio_writes_a_loadable_run_with_its_validation_size(tmp_path, built, sets):
    from speech_dae.inference import Denoiser

    cfg = load_config(
        overrides=[
            *TINY_SETS,
            "model.name=type2",
            "training.epochs=2",
            "training.steps_per_epoch=3",
            "training.tensorboard_media=false",
            *sets,
        ]
    )
    s = train(
        cfg,
        dataset=built.dataset,
        run="audio",
        models_dir=tmp_path / "models",
        logs_dir=tmp_path / "logs",
        progress=False,
    )
    info = json.loads((s.run_dir / "run.json").read_text())
    assert info["mixing"] == cfg.training.mixing and info["epochs_run"] == 2
    assert info["val_frames"] > 0 and info["val_minutes"] > 0 and "validation frames" in s.lines()[0]
    assert info["optimizer"]["name"] == ("adamw" if cfg.training.weight_decay else "adam")
    assert np.isfinite(info["history"]["loss"]).all() and np.isfinite(info["history"]["val_loss"]).all()
    # model.keras loads in a fresh interpreter that never imported speech_dae (no custom_objects, no loss)
    code = f"import keras; m = keras.saving.load_model({str(s.run_dir / 'model.keras')!r}); print(m.output_shape)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    den = Denoiser(s.run_dir)
    y = den(np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1)
    assert y.shape == (8000,) and np.isfinite(y).all()


def test_memmap_training_reports_its_validation_size_too(tmp_path, built):
    cfg = load_config(overrides=[*TINY_SETS, "model.name=type2", "training.tensorboard_media=false"])
    s = train(
        cfg, dataset=built.dataset, run="m", models_dir=tmp_path / "models", logs_dir=tmp_path / "logs", progress=False
    )
    dataset = read_json(built.dataset / "dataset.json")
    # every validation frame lies under a patch (stride 3 < context 11), so the whole split is counted
    assert s.info.val_frames == dataset["splits"]["val"]["frames"]


def test_semi_supervised_models_refuse_dynamic_mixing(built, tmp_path):
    cfg = load_config(overrides=[*TINY_SETS, "model.name=partitioned", "training.mixing=dynamic"])
    with pytest.raises(ConfigError, match="semi-supervised"):
        train(cfg, dataset=built.dataset, run="p", models_dir=tmp_path / "m", logs_dir=tmp_path / "l", progress=False)
