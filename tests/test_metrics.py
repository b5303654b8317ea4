"""Tests of speech_dae.metrics (waveform-domain metrics against a clean reference)."""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from speech_dae import metrics as M
from speech_dae.errors import AudioError, ConfigError

SR = 16000
SPEECH_RELPATH = Path("train") / "clean" / "en_US_f_Allison__demo-congrats.wav"
SPEECH_CANDIDATES = (
    Path(__file__).parents[1] / "data_sample" / SPEECH_RELPATH,
    Path("/work/shared/data_sample") / SPEECH_RELPATH,
)


@pytest.fixture(scope="module")
def speech():
    """(waveform float64, sample_rate) of a real speech recording, or skip."""
    import soundfile as sf

    for path in SPEECH_CANDIDATES:
        if path.is_file():
            y, sr = sf.read(path, dtype="float64")
            return (y if y.ndim == 1 else y.mean(axis=1)), sr
    pytest.skip(f"speech sample not found in any of {[str(p) for p in SPEECH_CANDIDATES]}")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ---------------------------------------------------------------- SNR family
def test_snr_known_value(rng):
    s = rng.standard_normal(8000)
    n = rng.standard_normal(8000)
    n *= np.sqrt(np.sum(s**2) / np.sum(n**2)) / 10.0  # noise energy = signal energy / 100
    assert M.snr(s, s + n) == pytest.approx(20.0, abs=1e-9)


def test_snr_perfect_estimate_is_inf():
    s = np.sin(np.linspace(0, 20, 1000))
    assert M.snr(s, s) == math.inf


def _orthogonal_noise(s, rng, power):
    """Zero-mean noise exactly orthogonal to zero-mean s, with mean power ``power``."""
    n = rng.standard_normal(s.size)
    n -= n.mean()
    n -= (n @ s) / (s @ s) * s
    return n * np.sqrt(power / np.mean(n**2))


@pytest.mark.parametrize("a, target_db", [(1.0, 10.0), (0.3, 0.0), (2.5, -5.0)])
def test_si_sdr_matches_closed_form(rng, a, target_db):
    s = rng.standard_normal(16000)
    s -= s.mean()
    ps = np.mean(s**2)
    pn = a**2 * ps / 10 ** (target_db / 10)
    n = _orthogonal_noise(s, rng, pn)
    expected = 10 * np.log10(a**2 * ps / pn)
    assert expected == pytest.approx(target_db)
    assert M.si_sdr(s, a * s + n) == pytest.approx(expected, abs=0.1)
    assert M.si_sdr(s, a * s + n) == pytest.approx(expected, abs=1e-6)  # exact by construction


def test_si_sdr_on_speech_closed_form(speech, rng):
    y, _ = speech
    s = y - y.mean()
    n = _orthogonal_noise(s, rng, np.mean(s**2) / 10.0)  # Pn = Ps / 10
    assert M.si_sdr(s, 0.5 * s + n) == pytest.approx(10 * np.log10(0.25 * 10.0), abs=0.1)


def test_si_sdr_scale_and_offset_invariant(rng):
    s = rng.standard_normal(4000)
    est = s + 0.3 * rng.standard_normal(4000)
    base = M.si_sdr(s, est)
    for gain in (0.01, 0.5, 3.0, 1000.0):
        assert M.si_sdr(s, gain * est) == pytest.approx(base, abs=1e-9)
    assert M.si_sdr(s, est + 0.2) == pytest.approx(base, abs=1e-9)  # zero-mean first
    # plain SNR is not scale invariant
    assert M.snr(s, 0.5 * est) != pytest.approx(M.snr(s, est), abs=0.1)


def test_si_sdr_constant_reference_is_nan():
    assert math.isnan(M.si_sdr(np.ones(100), np.arange(100.0)))


def test_segmental_snr_known_value_and_clipping(rng):
    frame = 512  # 32 ms at 16 kHz
    s = rng.standard_normal(frame * 20)
    n = rng.standard_normal(s.size)
    # scale noise frame by frame so every frame has exactly 5 dB SNR
    sf_ = s.reshape(20, frame)
    nf = n.reshape(20, frame)
    nf *= np.sqrt((sf_**2).sum(1) / (nf**2).sum(1) / 10**0.5)[:, None]
    assert M.segmental_snr(s, s + nf.ravel(), sample_rate=SR) == pytest.approx(5.0, abs=1e-9)
    # perfect estimate: every frame clipped at max_db; silent reference clipped at min_db
    assert M.segmental_snr(s, s, sample_rate=SR) == pytest.approx(35.0)
    assert M.segmental_snr(np.zeros(4096), n[:4096], sample_rate=SR) == pytest.approx(-10.0)
    assert M.segmental_snr(s, s, sample_rate=SR, max_db=20.0) == pytest.approx(20.0)


def test_segmental_snr_bad_config(rng):
    s = rng.standard_normal(1000)
    with pytest.raises(ConfigError, match="frame_ms"):
        M.segmental_snr(s, s, sample_rate=SR, frame_ms=0)
    with pytest.raises(ConfigError, match="min_db"):
        M.segmental_snr(s, s, sample_rate=SR, min_db=40.0, max_db=35.0)
    with pytest.raises(ConfigError, match="sample_rate"):
        M.segmental_snr(s, s, sample_rate=-16000)


# ---------------------------------------------------------------- simple errors
def test_mse_mae_rmse_known_values():
    ref = np.array([0.0, 1.0, 2.0, 3.0])
    est = np.array([1.0, 1.0, 0.0, 3.0])  # errors -1, 0, 2, 0
    assert M.mse(ref, est) == pytest.approx(5.0 / 4.0)
    assert M.mae(ref, est) == pytest.approx(3.0 / 4.0)
    assert M.rmse(ref, est) == pytest.approx(np.sqrt(5.0 / 4.0))


def test_pearson(rng):
    x = rng.standard_normal(1000)
    assert M.pearson(x, -x) == pytest.approx(-1.0)
    assert M.pearson(x, 3 * x + 1) == pytest.approx(1.0)
    with np.errstate(all="raise"):  # constant input: nan, no warning or crash
        assert math.isnan(M.pearson(np.ones(10), x[:10]))


def test_feature_mse():
    a = np.zeros((3, 4))
    b = np.full((3, 4), 2.0)
    assert M.feature_mse(a, b) == pytest.approx(4.0)
    with pytest.raises(AudioError, match=r"\(3, 4\).*\(4, 3\)"):
        M.feature_mse(a, b.T)
    with pytest.raises(AudioError, match="NaN"):
        M.feature_mse(a, np.full((3, 4), np.nan))


# ---------------------------------------------------------------- align / validation
def test_align_crops_to_shorter(caplog):
    with caplog.at_level(logging.DEBUG, logger="speech_dae.metrics"):
        r, e = M.align(np.arange(10, dtype=np.float32), np.arange(7))
    assert r.dtype == np.float64 and e.dtype == np.float64
    assert r.shape == e.shape == (7,)
    np.testing.assert_array_equal(r, np.arange(7.0))
    assert "cropping" in caplog.text
    # metrics see the cropped signals
    assert M.mse(np.ones(10), np.ones(7)) == 0.0


def test_align_squeezes_and_limits_mismatch():
    r, e = M.align(np.ones((1, 5)), np.ones((5, 1)))
    assert r.shape == e.shape == (5,)
    with pytest.raises(AudioError, match="max_mismatch"):
        M.align(np.ones(100), np.ones(90), max_mismatch=5)


@pytest.mark.parametrize(
    "ref, est, pattern",
    [
        (np.array([0.0, np.nan, 1.0, np.nan]), np.zeros(4), r"reference contains 2 NaN"),
        (np.zeros(4), np.array([0.0, np.inf, 1.0, 0.0]), r"estimate contains 0 NaN and 1 Inf"),
        (np.array([]), np.zeros(4), r"reference is empty"),
        (np.zeros((2, 4)), np.zeros(4), r"1-D.*\(2, 4\)"),
    ],
)
def test_bad_input_raises_audio_error(ref, est, pattern):
    with pytest.raises(AudioError, match=pattern):
        M.align(ref, est)
    with pytest.raises(AudioError, match=pattern):
        M.snr(ref, est)
    with pytest.raises(AudioError, match=pattern):
        M.score(ref, est, sample_rate=SR, metrics=["mse"])


# ---------------------------------------------------------------- PESQ / STOI
def test_stoi_identical_is_one(speech):
    y, sr = speech
    assert M.stoi(y, y, sample_rate=sr) > 0.99
    assert M.estoi(y, y, sample_rate=sr) > 0.99


def test_stoi_drops_with_noise(speech, rng):
    y, sr = speech
    noisy = y + np.std(y) * rng.standard_normal(y.size)
    assert M.stoi(y, noisy, sample_rate=sr) < 0.9


def test_stoi_silence_and_too_short_is_nan(caplog):
    with caplog.at_level(logging.WARNING, logger="speech_dae.metrics"):
        assert math.isnan(M.stoi(np.zeros(SR), np.zeros(SR), sample_rate=SR))
        x = np.random.default_rng(0).standard_normal(1000)
        assert math.isnan(M.stoi(x, x, sample_rate=SR))
    assert "NaN" in caplog.text


def test_stoi_passes_on_pystoi_warnings_other_than_too_few_frames(speech, monkeypatch):
    """Issue 16 (8): only pystoi's too-few-frames warning is turned into NaN; any other warning is not hidden."""
    import pystoi

    def fake_stoi(ref, est, fs, extended=False):
        warnings.warn("resampling changed the signal energy", RuntimeWarning, stacklevel=1)
        return 0.75

    monkeypatch.setattr(pystoi, "stoi", fake_stoi)
    y, sr = speech
    with pytest.warns(RuntimeWarning, match="resampling changed the signal energy"):
        assert M.stoi(y, y, sample_rate=sr) == 0.75


def test_pesq_of_speech_against_itself(speech):
    y, sr = speech
    assert M.pesq_wb(y, y, sample_rate=sr) > 4.5


def test_pesq_of_a_degraded_pair_is_the_same_at_48_and_16_khz(speech, rng):
    """Issue 16 (9): the 48 kHz path resamples to 16 kHz; a degraded pair must score as it does at 16 kHz."""
    import soxr

    y, sr = speech
    noisy = y + 0.05 * np.std(y) * rng.standard_normal(y.size)
    at16 = M.pesq_wb(y, noisy, sample_rate=sr)
    at48 = M.pesq_wb(soxr.resample(y, sr, 48000), soxr.resample(noisy, sr, 48000), sample_rate=48000)
    assert 1.2 < at16 < 3.5  # really degraded, not a ceiling score
    assert at48 == pytest.approx(at16, abs=0.05)


def test_wide_band_pesq_refuses_narrow_band_audio_and_pesq_nb_scores_it(speech, rng):
    """Issue 16 (7): 8 kHz audio is not upsampled and scored wide-band; narrow-band PESQ scores it."""
    import soxr

    y, sr = speech
    y8 = soxr.resample(y, sr, 8000)
    noisy8 = y8 + 0.2 * np.std(y8) * rng.standard_normal(y8.size)
    with pytest.raises(ConfigError, match=r"wide-band PESQ .* 8000 Hz .* Use the narrow-band metric pesq_nb"):
        M.pesq_wb(y8, noisy8, sample_rate=8000)
    with pytest.raises(ConfigError, match="pesq_nb"):
        M.score(y8, noisy8, sample_rate=8000, metrics=["pesq"])
    clean_score = M.pesq_nb(y8, y8, sample_rate=8000)
    noisy_score = M.pesq_nb(y8, noisy8, sample_rate=8000)
    assert clean_score > 4.0 and 1.0 < noisy_score < clean_score - 1.0
    assert M.score(y8, noisy8, sample_rate=8000, metrics=["pesq_nb"])["pesq_nb"] == pytest.approx(noisy_score)
    # at 16 kHz, pesq_nb runs on the signals resampled to 8 kHz: the same pair, the same score
    assert M.pesq_nb(y, y + (soxr.resample(noisy8 - y8, 8000, sr)[: y.size]), sample_rate=sr) == pytest.approx(
        noisy_score, abs=0.15
    )


def test_pesq_silent_reference_and_short_are_nan(caplog, rng):
    with caplog.at_level(logging.WARNING, logger="speech_dae.metrics"):
        assert math.isnan(M.pesq_wb(np.zeros(SR), np.zeros(SR), sample_rate=SR))
        short = 0.1 * rng.standard_normal(1000)  # < 0.25 s
        assert math.isnan(M.pesq_wb(short, short, sample_rate=SR))
    assert caplog.text.count("NaN") >= 2


def test_a_silent_estimate_scores_the_floor_not_nan(speech):
    """Issue 16 (1): a system that outputs silence gets the worst value, so it is averaged over every file."""
    y, sr = speech
    silent = np.zeros_like(y)
    got = M.score(y, silent, sample_rate=sr, metrics=["si_sdr", "pesq", "stoi", "estoi", "pearson", "snr"])
    assert got == {"si_sdr": -50.0, "pesq": 1.0, "stoi": 0.0, "estoi": 0.0, "pearson": 0.0, "snr": 0.0}
    assert got["si_sdr"] == M.SCORE_FLOORS["si_sdr"] and got["pesq"] == M.SCORE_FLOORS["pesq"]
    # SI-SDR is clipped at the floor: an estimate orthogonal to the reference is no worse than silence
    rng = np.random.default_rng(0)
    other = rng.standard_normal(y.size)
    other -= np.dot(other, y - y.mean()) / np.dot(y - y.mean(), y - y.mean()) * (y - y.mean())
    assert M.si_sdr(y, other) == -50.0
    # a silent *reference* is still undefined (stage 05 skips such files before scoring)
    assert math.isnan(M.si_sdr(np.zeros(100), np.ones(100)))


# ---------------------------------------------------------------- score
def test_score_all_metrics(speech, rng):
    y, sr = speech
    noisy = y + 0.3 * np.std(y) * rng.standard_normal(y.size)
    result = M.score(y, noisy[:-100], sample_rate=sr)  # lengths differ: aligned
    assert tuple(result) == M.METRICS
    assert set(M.HIGHER_IS_BETTER) == set(M.METRICS) | set(M.EXTRA_METRICS)
    assert all(isinstance(v, float) and math.isfinite(v) for v in result.values())
    assert result["snr"] == pytest.approx(M.snr(y[:-100], noisy[:-100]))
    assert 1.0 < result["pesq"] < 4.5
    assert 0.0 < result["stoi"] < 1.0
    assert result["rmse"] == pytest.approx(np.sqrt(result["mse"]))


def test_score_subset_and_failures_become_nan():
    result = M.score(np.zeros(SR), np.zeros(SR), sample_rate=SR, metrics=["pesq", "mse", "pesq"])
    assert list(result) == ["pesq", "mse"]
    assert math.isnan(result["pesq"]) and result["mse"] == 0.0
    assert M.score(np.ones(5), np.ones(5), sample_rate=SR, metrics="mae") == {"mae": 0.0}


def test_score_unknown_metric_lists_valid_names():
    with pytest.raises(ConfigError, match=r"^unknown metric sdr; choose from snr, segsnr, si_sdr, pesq, "):
        M.score(np.ones(5), np.ones(5), sample_rate=SR, metrics=["snr", "sdr"])
    with pytest.raises(ConfigError, match=r"unknown metric \(none given\)"):
        M.score(np.ones(5), np.ones(5), sample_rate=SR, metrics=[])
    assert list(M.score(np.ones(5), np.ones(5), sample_rate=SR, metrics="mae, mse,mae")) == ["mae", "mse"]
    with pytest.raises(ConfigError, match="sample_rate"):
        M.score(np.ones(5), np.ones(5), sample_rate=0)


def test_score_turns_a_raising_metric_into_nan(monkeypatch, caplog):
    def boom(ref, est):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(M, "_snr", boom)
    with caplog.at_level(logging.WARNING, logger="speech_dae.metrics"):
        result = M.score(np.ones(50), np.ones(50), sample_rate=SR, metrics=["snr", "mae"])
    assert math.isnan(result["snr"]) and result["mae"] == 0.0
    assert "simulated failure" in caplog.text
