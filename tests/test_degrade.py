"""speech_dae.degrade: known values of clipping and quantisation, and one clear error for each bad parameter."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from speech_dae.degrade import bandlimit, clip, clip_level_for_ratio, lowpass_sos, mu_law, quantize, telephone
from speech_dae.errors import ConfigError

N = 200_000
SINE = np.sin(2 * np.pi * 0.0123456 * np.arange(N))  # not a whole number of periods: every phase visited


def snr_db(reference: np.ndarray, degraded: np.ndarray) -> float:
    reference = np.asarray(reference, np.float64)
    return float(10 * np.log10(np.sum(reference**2) / np.sum((np.asarray(degraded, np.float64) - reference) ** 2)))


@pytest.mark.parametrize("level", [0.3, 0.5, 0.9])
def test_a_clipped_sine_clips_the_share_of_samples_arcsin_predicts(level):
    # |sin| > a for a share 1 - (2 / pi) arcsin(a) of the phase: 2/3 of the samples at a = 0.5
    out = clip(SINE, level)
    assert out.dtype == np.float32 and out.shape == SINE.shape
    assert np.abs(out).max() == pytest.approx(level, rel=1e-6)
    clipped = np.mean(np.abs(out) >= np.float32(level) * (1 - 1e-6))
    assert clipped == pytest.approx(1 - 2 / np.pi * np.arcsin(level), abs=2e-3)
    inside = np.abs(SINE) < level
    np.testing.assert_allclose(out[inside], SINE[inside], rtol=1e-6)  # below the level nothing changes


def test_clip_by_ratio_clips_that_share_of_samples_per_signal():
    y = np.stack([SINE, 0.25 * SINE[::-1]])
    out = clip(y, ratio=0.1)
    for row, src in zip(out, y, strict=True):
        t = np.abs(row).max()
        assert np.mean(np.abs(src) > t) == pytest.approx(0.1, abs=1e-3)
    assert clip_level_for_ratio(y, 0.1).shape == (2,)
    # a sine exceeds sin(pi/2 (1 - r)) for a share r of its samples
    np.testing.assert_allclose(clip_level_for_ratio(y, 0.1), np.sin(np.pi / 2 * 0.9), rtol=1e-3)


def test_soft_clipping_is_bounded_odd_and_leaves_small_samples_almost_unchanged():
    out = clip(SINE, 0.5, soft=True)
    assert np.abs(out).max() < 0.5
    np.testing.assert_allclose(clip(-SINE, 0.5, soft=True), -out, atol=1e-7)
    small = np.abs(SINE) < 0.05
    # t tanh(x / t) = x - x^3 / (3 t^2) + ...: within |x|^3 / (3 t^2) of x (plus float32 rounding)
    assert np.all(np.abs(out[small] - SINE[small]) <= np.abs(SINE[small]) ** 3 / (3 * 0.25) + 1e-7)


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_quantisation_snr_of_a_full_scale_sine_is_6_02_bits_plus_1_76_db(bits):
    step = 2.0 / 2**bits
    y = (1 - step) * SINE  # the largest sine the quantiser holds without clipping
    assert snr_db(y, quantize(y, bits)) == pytest.approx(6.02 * bits + 1.76, abs=0.3)
    # TPDF dither of +-1 step adds 2x the rounding noise's power: 10 log10(3) = 4.77 dB less
    dithered = quantize(y, bits, dither=True, rng=np.random.default_rng(0))
    assert snr_db(y, dithered) == pytest.approx(6.02 * bits + 1.76 - 4.77, abs=0.3)


def test_quantised_values_lie_on_the_grid_inside_full_scale():
    out = quantize(np.array([-1.5, -1.0, -0.26, 0.0, 0.26, 0.99, 1.5]), 2)  # step 0.5, range [-1, 0.5]
    np.testing.assert_array_equal(out, np.array([-1.0, -1.0, -0.5, 0.0, 0.5, 0.5, 0.5], np.float32))


def test_mu_law_keeps_its_snr_over_40_db_of_level_where_linear_8_bits_loses_it():
    levels = [0.0, -10.0, -20.0, -30.0, -40.0]
    mu = [snr_db(10 ** (db / 20) * 0.999 * SINE, mu_law(10 ** (db / 20) * 0.999 * SINE, 8)) for db in levels]
    linear = [snr_db(10 ** (db / 20) * 0.999 * SINE, quantize(10 ** (db / 20) * 0.999 * SINE, 8)) for db in levels]
    assert max(mu) - min(mu) < 3.0 and min(mu) > 33.0
    assert linear[0] - linear[-1] > 35.0  # about 1 dB per dB of level
    assert mu[-1] > linear[-1] + 20.0


def test_the_input_is_not_modified():
    y = SINE[:1000].copy()
    for fn in (lambda a: clip(a, 0.5), lambda a: quantize(a, 4, dither=True), lambda a: mu_law(a, 8)):
        fn(y)
        np.testing.assert_array_equal(y, SINE[:1000])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: clip(SINE, 1.0), "clip level=1.0 must be a number strictly between 0 and 1"),
        (lambda: clip(SINE, 0.0), "strictly between 0 and 1"),
        (lambda: clip(SINE, ratio=1.5), "clip ratio=1.5 must be"),
        (lambda: clip(SINE), "a level"),
        (lambda: clip(SINE, 0.5, ratio=0.1), "not both"),
        (lambda: clip(np.zeros(100), 0.5), "silent signal"),
        (lambda: quantize(SINE, 0), "bits=0 must be a whole number from 1 to 24"),
        (lambda: quantize(SINE, 8.0), "bits=8.0"),
        (lambda: mu_law(SINE, 1), "from 2 to 16"),
        (lambda: quantize(np.array([0.1, np.nan]), 8), "NaN or Inf"),
        (lambda: quantize(np.array([100, -100], np.int16), 8), "convert PCM first"),
    ],
)
def test_bad_parameters_raise_one_clear_line(call, message):
    with pytest.raises(ConfigError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)


SR = 16000


def tone(freq_hz: float, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * freq_hz * np.arange(int(seconds * sr)) / sr)


def level_db(y: np.ndarray, reference: np.ndarray) -> float:
    core = slice(2000, -2000)  # away from the filters' start and end transients
    return float(10 * np.log10(np.mean(np.asarray(y, np.float64)[core] ** 2) / np.mean(reference[core] ** 2)))


def test_bandlimit_passes_the_band_in_phase_and_stops_beyond_the_edges_by_over_100_db():
    low = tone(1000.0)
    out = bandlimit(low, SR, 4000.0)
    assert out.dtype == np.float32 and out.shape == low.shape
    assert abs(level_db(out, low)) < 0.1
    np.testing.assert_allclose(out[2000:-2000], low[2000:-2000], atol=5e-3)  # zero phase: no delay
    for f in (4000.0, 5000.0, 7000.0):  # the stop band starts at the edge: 60 dB each way, 120 in all
        assert level_db(bandlimit(tone(f), SR, 4000.0), tone(f)) < -100.0
    assert level_db(bandlimit(tone(100.0), SR, 3400.0, low_hz=300.0), tone(100.0)) < -100.0
    y = np.stack([tone(1000.0), tone(6000.0)])
    two = bandlimit(y, SR, 4000.0)
    assert two.shape == y.shape and level_db(two[1], y[1]) < -100.0


def test_telephone_keeps_the_telephone_band_and_removes_the_rest():
    assert abs(level_db(telephone(tone(1000.0), SR), tone(1000.0))) < 0.2
    assert telephone(tone(1000.0), SR).shape == (SR,)
    assert level_db(telephone(tone(100.0), SR), tone(100.0)) < -60.0
    assert level_db(telephone(tone(5000.0), SR), tone(5000.0)) < -60.0


def test_lowpass_sos_is_the_bandlimit_augmentation_filter_60_db_from_its_cutoff():
    w, h = scipy.signal.sosfreqz(lowpass_sos(4000.0, SR), worN=4096, fs=SR)
    assert np.all(20 * np.log10(np.abs(h[w >= 4000.0]) + 1e-20) <= -59.9)
    assert np.all(np.abs(20 * np.log10(np.abs(h[w <= 3000.0]))) < 0.1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bandlimit(SINE, SR, 8000.0), "Nyquist frequency (8000 Hz)"),
        (lambda: bandlimit(SINE, SR, 9000.0), "must lie between 0 and the Nyquist"),
        (lambda: bandlimit(SINE, SR, -5.0), "must lie between 0"),
        (lambda: bandlimit(SINE, SR, 3400.0, low_hz=4000.0), "low band edge 4000.0 Hz"),
        (lambda: telephone(SINE, 8000), "above 8000 Hz"),
        (lambda: bandlimit(SINE, 0, 3400.0), "sample_rate must be a positive integer number of Hz, got 0"),
        (lambda: telephone(SINE, 16000.5), "sample_rate must be a positive integer number of Hz, got 16000.5"),
        (lambda: telephone(np.zeros((2, 100)), SR), "one signal"),
    ],
)
def test_bad_band_parameters_raise_one_clear_line(call, message):
    with pytest.raises(ConfigError) as err:
        call()
    assert message in str(err.value) and "\n" not in str(err.value)
