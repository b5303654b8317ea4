"""Tests of speech_dae.baselines (classical enhancement baselines)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from speech_dae import baselines as B
from speech_dae.errors import AudioError, ConfigError
from speech_dae.metrics import snr

SR = 16000
SPEECH_RELPATH = Path("train") / "clean" / "en_US_f_Allison__demo-congrats.wav"
SPEECH_CANDIDATES = (
    Path(__file__).parents[1] / "data_sample" / SPEECH_RELPATH,
    Path("/work/shared/data_sample") / SPEECH_RELPATH,
)
#: Smallest SNR gain (dB) each baseline must reach on speech + white noise at 0 dB. White noise is the
#: case these methods are built for: Wiener-type suppressors gain 8-12 dB there (Loizou 2013, ch. 6-7);
#: noisereduce with its default settings (no noise clip) gates speech with the noise and gains little.
MIN_GAIN_DB = {
    "spectral_subtraction": 6.0,
    "wiener": 8.0,
    "noisereduce_stationary": 1.0,
    "noisereduce_nonstationary": 1.0,
}


@pytest.fixture(scope="module")
def speech():
    """(waveform float64, sample_rate) of a real speech recording, or skip."""
    import soundfile as sf

    for path in SPEECH_CANDIDATES:
        if path.is_file():
            y, sr = sf.read(path, dtype="float64")
            return (y if y.ndim == 1 else y.mean(axis=1)), sr
    pytest.skip(f"speech sample not found in any of {[str(p) for p in SPEECH_CANDIDATES]}")


@pytest.fixture(scope="module")
def noisy_0db(speech):
    """(clean float64, noisy float32 at exactly 0 dB SNR with white noise, sample_rate)."""
    clean, sr = speech
    noise = np.random.default_rng(0).standard_normal(clean.size)
    noise *= np.sqrt(np.sum(clean**2) / np.sum(noise**2))
    noisy = (clean + noise).astype(np.float32)
    assert snr(clean, noisy) == pytest.approx(0.0, abs=1e-3)
    return clean, noisy, sr


def test_registry_keys():
    assert set(B.BASELINES) == set(MIN_GAIN_DB)


@pytest.mark.parametrize("name", sorted(MIN_GAIN_DB))
def test_baseline_improves_snr_at_0db(name, noisy_0db):
    clean, noisy, sr = noisy_0db
    out = B.run_baseline(name, noisy, sample_rate=sr)
    assert out.dtype == np.float32
    assert out.shape == noisy.shape
    assert np.all(np.isfinite(out))
    gain = snr(clean, out) - snr(clean, noisy)
    print(f"{name}: SNR improvement at 0 dB = {gain:+.2f} dB")
    assert gain > MIN_GAIN_DB[name]


@pytest.mark.parametrize("name", sorted(MIN_GAIN_DB))
@pytest.mark.parametrize("n", [1, 10, 700, 3001])
def test_baseline_odd_lengths(name, n):
    y = (0.1 * np.random.default_rng(n).standard_normal(n)).astype(np.float64)
    out = B.run_baseline(name, y, sample_rate=SR)
    assert out.dtype == np.float32 and out.shape == (n,) and np.all(np.isfinite(out))


@pytest.mark.parametrize("name", sorted(MIN_GAIN_DB))
def test_baseline_silence_gives_silence(name):
    out = B.run_baseline(name, np.zeros(4000, dtype=np.float32), sample_rate=SR)
    assert out.dtype == np.float32 and out.shape == (4000,)
    np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("name", sorted(MIN_GAIN_DB))
@pytest.mark.parametrize(
    "y, pattern",
    [
        (np.array([0.0, np.nan, 0.5]), r"1 NaN"),
        (np.array([0.0, np.inf, 0.5]), r"1 Inf"),
        (np.array([], dtype=np.float32), r"empty"),
        (np.zeros((2, 100)), r"1-D.*\(2, 100\)"),
        (np.zeros(100, dtype=np.int16), r"floating-point.*int16"),
    ],
)
def test_bad_input_raises_audio_error(name, y, pattern):
    with pytest.raises(AudioError, match=pattern):
        B.run_baseline(name, y, sample_rate=SR)


def test_unknown_baseline_lists_valid_names():
    with pytest.raises(ConfigError, match=r"'mmse'.*valid names.*spectral_subtraction.*wiener"):
        B.run_baseline("mmse", np.zeros(10), sample_rate=SR)


def test_bad_options_raise_config_error():
    y = np.zeros(1000)
    with pytest.raises(ConfigError, match="hop_length"):
        B.spectral_subtraction(y, sample_rate=SR, n_fft=256, hop_length=256)
    with pytest.raises(ConfigError, match="alpha"):
        B.wiener_dd(y, sample_rate=SR, alpha=1.5)
    with pytest.raises(ConfigError, match="noise_percentile"):
        B.wiener_dd(np.ones(1000), sample_rate=SR, noise_percentile=0)
    with pytest.raises(ConfigError, match="sample_rate"):
        B.noisereduce_stationary(y, sample_rate=0)
    with pytest.raises(ConfigError, match="does not accept"):
        B.run_baseline("wiener", y, sample_rate=SR, over_subtraction=3.0)


def test_estimate_noise_psd_is_unbiased_for_white_noise():
    import librosa

    sigma2 = 0.01
    noise = np.sqrt(sigma2) * np.random.default_rng(3).standard_normal(5 * SR)
    power = np.abs(librosa.stft(noise, n_fft=512, hop_length=128)) ** 2
    expected = sigma2 * np.sum(np.hanning(513)[:512] ** 2)  # E|STFT|^2 of white noise, Hann window
    est = B.estimate_noise_psd(power, percentile=10.0)[5:-5, 0]  # skip DC/Nyquist (real-valued bins)
    assert est.shape == (257 - 10,)
    assert np.median(est) == pytest.approx(expected, rel=0.05)
    # leading digital silence is ignored
    padded = np.concatenate([np.zeros(2 * SR), noise])
    power_p = np.abs(librosa.stft(padded, n_fft=512, hop_length=128)) ** 2
    assert np.median(B.estimate_noise_psd(power_p)[5:-5, 0]) == pytest.approx(expected, rel=0.1)


@pytest.mark.parametrize("alpha, xi_min_db", [(0.98, -25.0), (0.9, -25.0), (0.5, -25.0), (0.98, -15.0)])
def test_wiener_dd_steady_state_attenuation_of_stationary_noise(alpha, xi_min_db):
    """Issue 16 (9): pins the decision-directed recursion by its steady state on noise alone.

    On white noise the a posteriori SNR gamma = |Y|^2 / lambda of each bin is Exp(1)-distributed. The
    previous frame's term alpha G^2 gamma is then below 1e-4, so the a priori SNR settles at
    xi = max((1 - alpha) max(gamma - 1, 0), xi_min), and the power gain is E[G^2 gamma], G = xi / (1 + xi),
    integrated here over the exponential density. Overlap-add of frames with independent gains raises the
    output power by up to 3 dB at strong attenuation, hence the asymmetric tolerance.
    """
    from scipy.integrate import quad

    xi_min = 10 ** (xi_min_db / 10)

    def gain(g):
        xi = max((1 - alpha) * max(g - 1.0, 0.0), xi_min)
        return xi / (1 + xi)

    predicted = 10 * np.log10(quad(lambda g: gain(g) ** 2 * g * np.exp(-g), 0, 60, limit=200, points=[1])[0])
    x = 0.1 * np.random.default_rng(0).standard_normal(SR * 20).astype(np.float32)
    y = B.wiener_dd(x, sample_rate=SR, alpha=alpha, xi_min_db=xi_min_db)
    measured = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean(x.astype(np.float64) ** 2))
    print(f"alpha {alpha}, xi_min {xi_min_db} dB: predicted {predicted:.2f} dB, measured {measured:.2f} dB")
    assert predicted - 0.5 <= measured <= predicted + 3.0
