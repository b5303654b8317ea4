"""Feature extractors (logmag, fbank): shapes, frame grid, and their inverses back to audio."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SR, si_sdr_db, speech_clip
from speech_dae.config import load_config
from speech_dae.errors import AudioError
from speech_dae.features import FeatureExtractor, mel_gain_to_stft_gain


def _fx(kind="logmag", **features):
    base = {"n_fft": 512, "hop_length": 128, "win_length": 512, "fbank_win_length": 256, "n_mels": 40}
    sets = [f"features.type={kind}"] + [f"features.{k}={v}" for k, v in {**base, **features}.items()]
    return FeatureExtractor(load_config(overrides=sets).features, SR)


@pytest.fixture(scope="module")
def speech():
    return speech_clip(0, 1.0)


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize("kind", ["logmag", "fbank"])
@pytest.mark.parametrize("n", [512, 1000, 16000, 16001, 16000 + 127])
def test_frame_count_and_width(kind, n, speech):
    fx = _fx(kind)
    y = np.resize(speech, n)
    f = fx(y)
    assert f.dtype == np.float32
    assert f.shape == (1 + n // fx.cfg.hop_length, fx.n_bins) == (fx.n_frames(n), fx.n_bins)
    assert fx.n_bins == (fx.cfg.n_mels if kind == "fbank" else fx.cfg.n_fft // 2 + 1)
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
@pytest.mark.parametrize("n_fft, hop, win", [(512, 128, 512), (256, 64, 256), (1024, 256, 1024),
                                             (512, 160, 400), (256, 128, 256), (512, 32, 512)])
def test_logmag_with_clean_phase_reconstructs_the_waveform(speech, n_fft, hop, win):
    fx = _fx("logmag", n_fft=n_fft, hop_length=hop, win_length=win)
    y = speech[:16000 - 37]  # not a multiple of the hop
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
    assert np.sum(out2 ** 2) > 3 * np.sum(speech ** 2)
