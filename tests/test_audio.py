"""Audio I/O (load, fold to mono, resample, validate, write) and stage 01's handling of bad inputs."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, build_corpus, noise_clip, speech_clip, tree_checksums, write_wav

from speech_dae.audio import list_audio, load_audio, validate_audio, write_audio
from speech_dae.errors import AudioError


# ---------------------------------------------------------------------- loader
def test_load_mono_pcm16_matches_soundfile(tmp_path):
    y = speech_clip(0, 0.5)
    path = write_wav(tmp_path / "a.wav", y)
    out, info = load_audio(path, sample_rate=SR)
    ref, _ = sf.read(path, dtype="float32")
    assert out.dtype == np.float32 and out.shape == (y.size,)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_allclose(out, y, atol=1 / 32768 + 1e-6)
    assert (info.orig_sample_rate, info.orig_channels, info.subtype) == (SR, 1, "PCM_16")
    assert not info.resampled and not info.folded_to_mono


def test_stereo_is_folded_to_the_mean_of_the_channels(tmp_path):
    left, right = speech_clip(0, 0.5), noise_clip(0, 0.5)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), SR, subtype="FLOAT")
    y, info = load_audio(path, sample_rate=SR)
    assert y.shape == (left.size,)
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-7)
    assert info.orig_channels == 2 and info.folded_to_mono


def test_other_sample_rates_are_resampled(tmp_path):
    sr_in = 8000
    t = np.arange(int(0.5 * sr_in)) / sr_in
    path = write_wav(tmp_path / "8k.wav", 0.5 * np.sin(2 * np.pi * 440 * t), sr=sr_in)
    y, info = load_audio(path, sample_rate=SR)
    assert info.resampled and info.orig_sample_rate == sr_in
    assert y.size == int(0.5 * SR)
    spectrum = np.abs(np.fft.rfft(y[1000:-1000] * np.hanning(y.size - 2000)))
    peak_hz = np.argmax(spectrum) * SR / (y.size - 2000)
    assert abs(peak_hz - 440) < 5


def test_unreadable_file_raises_audio_error_naming_it(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError) as err:
        load_audio(path, sample_rate=SR)
    assert "garbage.wav" in str(err.value) and "cannot read" in str(err.value)


def test_empty_wav_raises_audio_error(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(str(path), np.zeros(0, np.float32), SR)
    with pytest.raises(AudioError) as err:
        load_audio(path, sample_rate=SR)
    assert "empty.wav" in str(err.value) and "empty" in str(err.value)


def test_nan_samples_raise_audio_error(tmp_path):
    y = speech_clip(0, 0.3)
    y[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), y, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(path, sample_rate=SR)


def test_missing_file_raises_audio_error(tmp_path):
    with pytest.raises(AudioError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav", sample_rate=SR)


def test_loading_never_modifies_the_file(tmp_path):
    path = write_wav(tmp_path / "a.wav", speech_clip(1, 0.4), sr=22050)
    before = tree_checksums(tmp_path)
    load_audio(path, sample_rate=SR)
    assert tree_checksums(tmp_path) == before


# ------------------------------------------------------------------ validation
def test_validate_audio_accepts_speech_and_returns_float32():
    y = speech_clip(0, 0.5).astype(np.float64)
    out = validate_audio(y, sample_rate=SR, min_duration_s=0.25, silence_rms_db=-70, name="x")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, y, atol=1e-7)


@pytest.mark.parametrize(
    "y, kwargs, pattern",
    [
        (np.zeros(SR // 10, np.float32) + 0.1, {"min_duration_s": 0.25}, "too short"),
        (np.zeros(SR, np.float32), {"silence_rms_db": -70.0}, "silent"),
        (np.full(SR, 1e-5, np.float32), {"silence_rms_db": -70.0}, "silent"),
        (np.zeros(0, np.float32), {}, "empty"),
        (np.zeros((SR, 2), np.float32), {}, "shape"),
        (np.array([0.1, np.inf, 0.2], np.float32), {}, "NaN or Inf"),
    ],
)
def test_validate_audio_rejects_bad_signals(y, kwargs, pattern):
    with pytest.raises(AudioError, match=pattern) as err:
        validate_audio(y, sample_rate=SR, name="clip.wav", **kwargs)
    assert "clip.wav" in str(err.value)


def test_list_audio_is_recursive_sorted_and_filters_extensions(tmp_path):
    for rel in ("b.wav", "a/c.FLAC", "a/z.wav", "notes.txt", "x.mp3"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in list_audio(tmp_path)] == ["a/c.FLAC", "a/z.wav", "b.wav"]
    with pytest.raises(AudioError, match="does not exist"):
        list_audio(tmp_path / "missing")


def test_write_audio_float_round_trip_and_pcm_clipping(tmp_path):
    y = np.linspace(-1.5, 1.5, 1000).astype(np.float32)
    p = write_audio(tmp_path / "sub" / "f.wav", y, SR)
    back, sr = sf.read(p, dtype="float32")
    assert sr == SR and sf.info(str(p)).subtype == "FLOAT"
    np.testing.assert_array_equal(back, y)
    p16 = write_audio(tmp_path / "p.wav", y, SR, subtype="PCM_16")
    back16, _ = sf.read(p16, dtype="float32")
    assert back16.max() <= 1.0 and back16.min() >= -1.0
    assert [f.name for f in tmp_path.rglob("*") if f.is_file()] and not list(tmp_path.rglob(".*tmp*"))


# ------------------------------------------------------ stage 01 and bad inputs
def _bad_corpus(root):
    """Tiny corpus plus one file of every bad kind (and a good stereo one) in train/clean and test/noise."""
    corpus = build_corpus(root, n_train_clean=3, n_train_noise=2, n_test_clean=1, n_test_noise=1)
    tc = corpus / "train" / "clean"
    (tc / "unreadable.wav").write_bytes(os.urandom(3000))
    sf.write(str(tc / "empty.wav"), np.zeros(0, np.float32), SR)
    write_wav(tc / "short.wav", speech_clip(0, 0.1))  # < audio.min_duration_s
    write_wav(tc / "silent.wav", np.zeros(SR, np.float32))  # < audio.silence_rms_db
    stereo = np.stack([speech_clip(1, 1.0), speech_clip(2, 1.0)], axis=1)
    sf.write(str(tc / "stereo.wav"), stereo, SR, subtype="PCM_16")
    tn = corpus / "test" / "noise"
    (tn / "broken_noise.wav").write_bytes(os.urandom(1000))
    write_wav(tn / "tiny_noise.wav", noise_clip(0, 0.01))  # shorter than one window
    return corpus


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_stage01_skips_bad_files_lists_reasons_and_succeeds(tmp_path, tiny_cfg):
    from speech_dae.stages.extract import extract_features

    corpus = _bad_corpus(tmp_path / "corpus")
    before = tree_checksums(corpus)
    out = tmp_path / "features"
    summary = extract_features(tiny_cfg, out=out, data=corpus, progress=False)
    assert tree_checksums(corpus) == before, "stage 01 modified its inputs"
    assert (out / "params.json").is_file() and summary.counts["train"] > 0 and summary.counts["test"] > 0
    skipped = {os.path.basename(r["file"]): r["reason"] for r in _read_csv(out / "skipped.csv")}
    assert "cannot read" in skipped["unreadable.wav"]
    assert "empty" in skipped["empty.wav"]
    assert "too short" in skipped["short.wav"]
    assert "silent" in skipped["silent.wav"]
    assert "cannot read" in skipped["broken_noise.wav"]
    assert "too short" in skipped["tiny_noise.wav"]
    assert "stereo.wav" not in skipped
    assert summary.skipped == len(skipped) == 6
    rows = _read_csv(out / "manifest.csv")
    used = {os.path.basename(r["clean_file"]) for r in rows} | {os.path.basename(r["noise_file"]) for r in rows}
    assert "stereo.wav" in used, "a stereo clean file must be folded to mono and used"
    assert not used & set(skipped)
    assert all(r["split"] in ("train", "val", "test") for r in rows)


def test_stage01_stereo_mixture_is_built_from_the_mono_fold(tmp_path, tiny_cfg):
    from speech_dae.stages.extract import extract_features

    corpus = build_corpus(tmp_path / "corpus", n_train_clean=0, n_train_noise=2, n_test_clean=1, n_test_noise=1)
    left, right = speech_clip(0, 1.0), speech_clip(1, 1.0)
    (corpus / "train" / "clean").mkdir(parents=True)
    sf.write(str(corpus / "train" / "clean" / "st.wav"), np.stack([left, right], 1), SR, subtype="FLOAT")
    write_wav(corpus / "train" / "clean" / "mono.wav", speech_clip(2, 1.0))
    cfg = tiny_cfg.replace(**{"mixing.val_fraction": 0.0, "mixing.snr_db": [60]})  # almost clean mixture
    out = tmp_path / "features"
    extract_features(cfg, out=out, data=corpus, progress=False)
    row = next(r for r in _read_csv(out / "manifest.csv") if r["clean_file"].endswith("st.wav"))
    ref, _ = sf.read(out / "references" / f"{row['id']}.wav", dtype="float32")
    np.testing.assert_allclose(ref, (left + right) / 2 * float(row["gain"]), atol=1e-5)


def test_stage01_with_nothing_usable_fails_with_audio_error(tmp_path, tiny_cfg):
    from speech_dae.stages.extract import extract_features

    corpus = build_corpus(tmp_path / "corpus", n_train_clean=0)
    (corpus / "train" / "clean").mkdir(parents=True, exist_ok=True)
    (corpus / "train" / "clean" / "junk.wav").write_bytes(os.urandom(2000))
    sf.write(str(corpus / "train" / "clean" / "empty.wav"), np.zeros(0, np.float32), SR)
    before = tree_checksums(corpus)
    with pytest.raises(AudioError, match="no usable"):
        extract_features(tiny_cfg, out=tmp_path / "features", data=corpus, progress=False)
    assert not (tmp_path / "features").exists(), "a failed stage must not leave a finished-looking folder"
    assert tree_checksums(corpus) == before


def test_stage01_with_no_usable_noise_fails_with_audio_error(tmp_path, tiny_cfg):
    from speech_dae.stages.extract import extract_features

    corpus = build_corpus(tmp_path / "corpus", n_test_noise=0)
    (corpus / "test" / "noise").mkdir(parents=True, exist_ok=True)
    (corpus / "test" / "noise" / "bad.wav").write_bytes(os.urandom(500))
    with pytest.raises(AudioError, match="noise"):
        extract_features(tiny_cfg, out=tmp_path / "features", data=corpus, progress=False)


def test_stage01_noise_with_digital_silence_does_not_blacklist_clean_files(tmp_path, tiny_cfg):
    from speech_dae.stages.extract import extract_features

    corpus = build_corpus(tmp_path / "corpus", n_test_clean=2, n_test_noise=1)
    gappy = np.concatenate([np.zeros(3 * SR, np.float32), noise_clip(0, 0.2)])  # a padded recording
    write_wav(corpus / "test" / "noise" / "gappy.wav", gappy)
    out = tmp_path / "features"
    extract_features(tiny_cfg, out=out, data=corpus, progress=False)
    skipped = {os.path.basename(r["file"]) for r in _read_csv(out / "skipped.csv")}
    assert not skipped & {p.name for p in (corpus / "test" / "clean").iterdir()}
    rows = [r for r in _read_csv(out / "manifest.csv") if r["split"] == "test"]
    assert len(rows) == 2 * len(tiny_cfg.mixing.snr_db)
