"""Feature extractors (fbank, logmag, logmel, power, waveform): shapes, frame grid, inverses, masks."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SR, noise_clip, si_sdr_db, speech_clip

from speech_dae.config import load_config
from speech_dae.errors import AudioError, ConfigError
from speech_dae.features import FeatureExtractor, mel_gain_to_stft_gain


def _fx(kind="logmag", **features):
    base = {"n_fft": 512, "hop_length": 128, "win_length": 512, "fbank_win_length": 256, "n_mels": 40}
    sets = [f"features.type={kind}"] + [f"features.{k}={v}" for k, v in {**base, **features}.items()]
    return FeatureExtractor(load_config(overrides=sets).features, SR)


@pytest.fixture(scope="module")
def speech():
    return speech_clip(0, 1.0)


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("kind", ["logmag", "fbank", "logmel", "power", "magnitude"])
@pytest.mark.parametrize("n", [512, 1000, 16000, 16001, 16000 + 127])
def test_frame_count_and_width(kind, n, speech):
    fx = _fx(kind)
    y = np.resize(speech, n)
    f = fx(y)
    assert f.dtype == np.float32
    assert f.shape == (1 + n // fx.cfg.hop_length, fx.n_bins) == (fx.n_frames(n), fx.n_bins)
    assert fx.n_bins == (fx.cfg.n_mels if kind in ("fbank", "logmel") else fx.cfg.n_fft // 2 + 1)
    assert np.all(np.isfinite(f))


def test_logmag_is_log_magnitude_of_the_centred_stft(speech):
    fx = _fx("logmag")
    import librosa

    S = librosa.stft(speech, n_fft=512, hop_length=128, win_length=512, window="hann", center=True)
    np.testing.assert_allclose(fx(speech), np.log(np.abs(S.T) + fx.cfg.eps), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["logmag", "fbank"])
def test_frames_are_centred_on_t_times_hop(kind):
    """A click at sample 40 * hop lands in frame 40's window: frames far from it see (almost) nothing."""
    fx = _fx(kind, preemphasis=0.0)
    hop = fx.cfg.hop_length
    y = np.zeros(100 * hop, np.float32)
    y[40 * hop] = 1.0
    energy = np.exp(fx(y)).sum(axis=1)
    # fbank frames use a rectangular window, so frames 40 and 41 both hold the click
    assert int(np.argmax(energy)) in ((40, 41) if kind == "fbank" else (40,))
    half_window = (fx.cfg.fbank_win_length if kind == "fbank" else fx.cfg.win_length) // 2
    far = [t for t in range(energy.size) if abs(t * hop - 40 * hop) > half_window + 1]
    assert energy[far].max() < 1e-3 * energy.max()


def test_too_short_or_2d_input_raises_audio_error():
    fx = _fx("logmag")
    with pytest.raises(AudioError, match="shorter than one analysis window"):
        fx(np.ones(100, np.float32))
    with pytest.raises(AudioError):
        fx(np.ones((1000, 2), np.float32))


# ------------------------------------------------------------ logmag inverse
@pytest.mark.parametrize(
    "n_fft, hop, win",
    [(512, 128, 512), (256, 64, 256), (1024, 256, 1024), (512, 160, 400), (256, 128, 256), (512, 32, 512)],
)
def test_logmag_with_clean_phase_reconstructs_the_waveform(speech, n_fft, hop, win):
    fx = _fx("logmag", n_fft=n_fft, hop_length=hop, win_length=win)
    y = speech[: 16000 - 37]  # not a multiple of the hop
    out = fx.to_audio(fx(y), y)
    assert out.shape == y.shape and out.dtype == np.float32
    assert si_sdr_db(y, out) > 40


def test_logmag_inverse_uses_the_given_magnitude(speech):
    fx = _fx("logmag")
    half = fx.to_audio(fx(speech) + np.log(0.5), speech)  # |S| + eps scaled by 0.5 ~ |S| / 2
    np.testing.assert_allclose(half, 0.5 * speech, atol=2e-3)
    assert si_sdr_db(speech, half) > 35


def test_to_audio_rejects_features_of_the_wrong_shape(speech):
    fx = _fx("logmag")
    with pytest.raises(AudioError, match="shape"):
        fx.to_audio(fx(speech)[:-1], speech)


# ------------------------------------------------------------- fbank inverse
@pytest.mark.parametrize("n_mels", [24, 40, 64])
def test_mel_gain_of_ones_is_ones(n_mels):
    fx = _fx("fbank", n_mels=n_mels)
    w = fx.mel_weights
    assert w.shape == (n_mels, fx.cfg.n_fft // 2 + 1)
    g = mel_gain_to_stft_gain(np.ones((7, n_mels)), w)
    assert g.shape == (7, fx.cfg.n_fft // 2 + 1)
    np.testing.assert_allclose(g, 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(mel_gain_to_stft_gain(np.full((3, n_mels), 0.25), w), 0.25, atol=1e-12)


def test_mel_gain_spreads_each_band_to_the_bins_it_covers():
    fx = _fx("fbank", n_mels=40)
    w = fx.mel_weights
    gains = np.zeros((1, 40))
    gains[0, 20] = 1.0
    g = mel_gain_to_stft_gain(gains, w)[0]
    assert np.all((g > 0) == (w[20] > 0)), "only bins covered by band 20 get its gain"
    assert np.all(g <= 1.0 + 1e-12) and g.max() > 0.5


@pytest.mark.parametrize("hop", [128, 64])
def test_fbank_inverse_of_unit_gain_returns_the_input(speech, hop):
    fx = _fx("fbank", hop_length=hop)
    y = speech[:12345]
    out = fx.to_audio(fx(y), y)
    assert out.shape == y.shape
    assert np.max(np.abs(out - y)) < 1e-5


def test_fbank_half_power_gain_halves_the_output_energy(speech):
    fx = _fx("fbank")
    f = fx(speech)
    eps = fx.cfg.eps
    half = np.log(0.5 * (np.exp(f.astype(np.float64)) - eps) + eps).astype(np.float32)
    out = fx.to_audio(half, speech, noisy_features=f)
    ratio = np.sum(out.astype(np.float64) ** 2) / np.sum(speech.astype(np.float64) ** 2)
    assert ratio == pytest.approx(0.5, rel=0.02)
    np.testing.assert_allclose(out, np.sqrt(0.5) * speech, atol=2e-3)


def test_fbank_inverse_never_amplifies_by_default(speech):
    fx = _fx("fbank")
    f = fx(speech)
    louder = f + np.log(4.0)
    out = fx.to_audio(louder, speech, noisy_features=f)
    assert np.max(np.abs(out - speech)) < 1e-5  # max_gain=1 caps the gain at 1
    out2 = fx.to_audio(louder, speech, noisy_features=f, max_gain=4.0)
    assert np.sum(out2**2) > 3 * np.sum(speech**2)


# ------------------------------------------------------------ logmel, power
def _stft(y, n_fft=512, hop=128, win=512):
    import librosa

    return librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, window="hann", center=True).T


def test_logmel_is_log_of_librosa_mel_power_on_the_stft_grid(speech):
    import librosa

    fx = _fx("logmel", n_mels=40)
    w = librosa.filters.mel(sr=SR, n_fft=512, n_mels=40)
    assert fx.mel_weights.shape == (40, 257)
    np.testing.assert_allclose(fx.mel_weights, w, rtol=1e-5, atol=1e-9)
    expected = np.log(np.abs(_stft(speech)) ** 2 @ w.T + fx.cfg.eps)
    np.testing.assert_allclose(fx(speech), expected, rtol=1e-4, atol=1e-4)


def test_power_is_squared_stft_magnitude(speech):
    fx = _fx("power")
    f = fx(speech)
    assert np.all(f >= 0)
    np.testing.assert_allclose(f, np.abs(_stft(speech)) ** 2, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("kind, floor_db", [("power", 40), ("magnitude", 40), ("logmel", 40)])
def test_logmel_and_power_with_clean_phase_reconstruct_the_waveform(speech, kind, floor_db):
    fx = _fx(kind)
    y = speech[: 16000 - 37]
    out = fx.to_audio(fx(y), y)
    assert out.shape == y.shape and out.dtype == np.float32
    assert si_sdr_db(y, out) > floor_db


def test_logmel_half_power_gain_scales_by_sqrt_half(speech):
    fx = _fx("logmel")
    f = fx(speech)
    eps = fx.cfg.eps
    half = np.log(0.5 * (np.exp(f.astype(np.float64)) - eps) + eps).astype(np.float32)
    np.testing.assert_allclose(fx.to_audio(half, speech, noisy_features=f), np.sqrt(0.5) * speech, atol=2e-3)


def test_magnitude_is_the_stft_magnitude_and_inverts_linearly(speech):
    fx = _fx("magnitude")
    f = fx(speech)
    np.testing.assert_allclose(f, np.abs(_stft(speech)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(fx.to_audio(0.5 * f, speech), 0.5 * speech, atol=1e-4)
    np.testing.assert_allclose(fx.to_audio(-f, speech), 0.0, atol=1e-6)  # negative magnitude is clipped to 0
    assert "magnitude: |STFT|" in fx.describe()


def test_power_inverse_uses_the_given_magnitude_and_max_gain(speech):
    fx = _fx("power")
    f = fx(speech)
    np.testing.assert_allclose(fx.to_audio(0.25 * f, speech), 0.5 * speech, atol=1e-4)
    np.testing.assert_allclose(fx.to_audio(4.0 * f, speech), speech, atol=1e-5)  # max_gain=1 by default
    louder = fx.to_audio(4.0 * f, speech, max_gain=None)
    np.testing.assert_allclose(louder, 2.0 * speech, atol=1e-4)
    assert np.all(np.isfinite(fx.to_audio(-f, speech)))  # negative "power" is clipped to 0
    assert np.max(np.abs(fx.to_audio(-f, speech))) < 1e-6


# ------------------------------------------------------------------ waveform
@pytest.mark.parametrize("n", [1000, 16000, 16001])
def test_waveform_features_are_the_samples(speech, n):
    fx = _fx("waveform")
    y = np.resize(speech, n)
    f = fx(y)
    assert f.shape == (n, 1) == (fx.n_frames(n), fx.n_bins) and f.dtype == np.float32
    out = fx.to_audio(f, y)
    assert out.dtype == np.float32 and np.array_equal(out, y)
    assert np.array_equal(fx.to_audio(f[:-10], y)[:-10], y[:-10]) and np.all(fx.to_audio(f[:-10], y)[-10:] == 0)
    assert np.array_equal(fx.to_audio(np.concatenate([f, f]), y), y)  # longer output is cropped
    assert "chunk_size 2048" in fx.describe()


def test_waveform_rejects_bad_shapes():
    fx = _fx("waveform")
    with pytest.raises(AudioError):
        fx(np.ones((100, 2), np.float32))
    with pytest.raises(AudioError):
        fx.to_audio(np.ones((100, 2), np.float32), np.ones(100, np.float32))


# ---------------------------------------------------------------------- masks
@pytest.fixture(scope="module")
def noisy_and_clean():
    clean = speech_clip(1, 1.0)
    noise = noise_clip(0, 1.0)[: clean.size]
    noise = noise * np.sqrt(np.sum(clean**2) / np.sum(noise**2))  # 0 dB
    return (clean + noise).astype(np.float32), clean


@pytest.mark.parametrize("kind", ["fbank", "logmag", "logmel", "power", "magnitude"])
def test_mask_target_and_apply_mask_invert_each_other(kind, noisy_and_clean):
    fx = _fx(kind)
    noisy, clean = noisy_and_clean
    X, S = fx(noisy), fx(clean)
    m = fx.mask_target(X, S)
    assert m.shape == X.shape and m.dtype == np.float32
    assert m.min() >= 0 and m.max() <= 1 and 0.05 < m.mean() < 0.95
    A = fx.apply_mask(X, m)
    assert A.shape == X.shape and A.dtype == np.float32
    below = m < 1  # clean magnitude below the noisy one: the mask recovers the clean features
    assert below.mean() > 0.2
    scale = np.abs(S[below]).max() if kind in ("power", "magnitude") else 1.0
    np.testing.assert_allclose(A[below], S[below], rtol=1e-5, atol=1e-5 * scale)
    assert np.all(A <= X + 1e-6 * np.abs(X).max())  # a mask never amplifies
    # identity: a signal against itself
    np.testing.assert_array_equal(fx.mask_target(X, X), 1.0)
    np.testing.assert_array_equal(fx.apply_mask(X, np.ones_like(X)), X)
    # out-of-range masks are clipped to [0, 1]
    np.testing.assert_array_equal(fx.apply_mask(X, np.full_like(X, 3.0)), X)
    zero = fx.apply_mask(X, np.zeros_like(X))
    assert np.all(np.isfinite(zero)) and np.all(zero <= X)


@pytest.mark.parametrize("kind", ["fbank", "logmag", "logmel", "power", "magnitude"])
def test_masks_work_on_batches_of_patches(kind, noisy_and_clean):
    fx = _fx(kind)
    noisy, clean = noisy_and_clean
    X, S = fx(noisy), fx(clean)
    starts = [0, 20, 50]
    Xp = np.stack([X[s : s + 11] for s in starts])
    Sp = np.stack([S[s : s + 11] for s in starts])
    m = fx.mask_target(Xp, Sp)
    assert m.shape == (3, 11, fx.n_bins)
    np.testing.assert_array_equal(m[1], fx.mask_target(X[20:31], S[20:31]))
    np.testing.assert_array_equal(fx.apply_mask(Xp, m)[2], fx.apply_mask(X[50:61], m[2]))
    with pytest.raises(AudioError, match="same shape"):
        fx.mask_target(Xp, Sp[:2])


def test_oracle_mask_improves_the_noisy_signal(noisy_and_clean):
    fx = _fx("logmag")
    noisy, clean = noisy_and_clean
    X = fx(noisy)
    out = fx.to_audio(fx.apply_mask(X, fx.mask_target(X, fx(clean))), noisy)
    assert si_sdr_db(clean, out) > si_sdr_db(clean, noisy) + 5


def test_waveform_masks_raise_config_error():
    fx = _fx("waveform")
    x = np.zeros((10, 1), np.float32)
    with pytest.raises(ConfigError, match="spectral feature"):
        fx.mask_target(x, x)
    with pytest.raises(ConfigError, match="spectral feature"):
        fx.apply_mask(x, x)
