"""Tests of speech_dae.losses (compressed magnitude / complex MSE, SI-SDR and multi-resolution STFT through the
inverse STFT, the pooled SI-SDR metric)."""

from __future__ import annotations

import keras
import librosa
import numpy as np
import pytest

from speech_dae import config as C
from speech_dae import losses as L
from speech_dae import metrics as M
from speech_dae.errors import ConfigError

N_FFT, HOP = 512, 128
N_BINS = N_FFT // 2 + 1


@pytest.fixture
def rng():
    return np.random.default_rng(20190512)


def _segment_stfts(rng, n=2, frames=16, n_fft=N_FFT, hop=HOP, noise=0.3):
    """Batch of (clean, noisy) complex STFT slices (n, frames, bins) and the clean waveforms."""
    length = (frames + 8) * hop
    clean = rng.standard_normal((n, length)).astype(np.float32) * 0.1
    noisy = clean + noise * rng.standard_normal((n, length)).astype(np.float32) * 0.1

    def spec(y):
        return np.stack([librosa.stft(v, n_fft=n_fft, hop_length=hop, center=True).T[2 : 2 + frames] for v in y])

    return spec(clean), spec(noisy), clean


def _np_istft_crop(stft, n_fft=N_FFT, hop=HOP):
    """Cropped waveform of librosa frames via the loss's inverse (numpy in, numpy out)."""
    return np.asarray(L.istft_frames(stft.real.astype(np.float32), stft.imag.astype(np.float32), n_fft, hop, "hann"))


# ---------------------------------------------------------------- inverse STFT
def test_istft_frames_reproduces_interior_and_alignment(rng):
    y = rng.standard_normal(16000).astype(np.float32)
    S = librosa.stft(y, n_fft=N_FFT, hop_length=HOP, center=True).T  # (frames, bins)
    t0, t1 = 10, 74
    out = _np_istft_crop(S[None, t0:t1])[0]
    frames = t1 - t0
    assert out.shape == ((frames + 1) * HOP - N_FFT,)
    start = t0 * HOP - N_FFT // 2 + (N_FFT - HOP)
    assert start == t0 * HOP + 128  # 128 samples after the centre of frame t0
    np.testing.assert_allclose(out, y[start : start + out.size], atol=1e-4, rtol=0)
    # one sample off is clearly wrong: the alignment is exact
    assert np.abs(out - y[start + 1 : start + 1 + out.size]).max() > 0.1
    # ends 128 samples before the centre of the last frame
    assert start + out.size == (t1 - 1) * HOP - 128


def test_istft_frames_batched_and_other_framing(rng):
    y = rng.standard_normal((3, 4000)).astype(np.float32)
    S = np.stack([librosa.stft(v, n_fft=64, hop_length=32, center=True).T for v in y])[:, 5:25]
    out = np.asarray(L.istft_frames(S.real.astype(np.float32), S.imag.astype(np.float32), 64, 32, "hann"))
    start = 5 * 32 - 32 + 32
    assert out.shape == (3, 21 * 32 - 64)
    np.testing.assert_allclose(out, y[:, start : start + out.shape[1]], atol=1e-5, rtol=0)


# ---------------------------------------------------------------- known values
def test_perfect_estimate_zero_cmse_and_huge_sisdr(rng):
    clean, _, _ = _segment_stfts(rng)
    y_true = L.pack_stft_target(clean, clean)
    mask = np.ones(clean.shape, np.float32)
    cmse = np.asarray(L.SpectralLoss(terms=("cmse",), weights=(1.0,)).call(y_true, mask))
    sisdr = np.asarray(L.SpectralLoss(terms=("sisdr",), weights=(1.0,)).call(y_true, mask))
    assert cmse.shape == sisdr.shape == (2,)
    np.testing.assert_allclose(cmse, 0.0, atol=1e-10)
    assert np.all(sisdr < -60.0)


def test_cmse_matches_numpy(rng):
    clean, noisy, _ = _segment_stfts(rng, frames=6)
    mask = rng.uniform(0.0, 1.0, clean.shape).astype(np.float32)
    y_true = L.pack_stft_target(clean, noisy)
    c = 0.3
    expect = np.mean((np.abs(mask * noisy) ** c - np.abs(clean) ** c) ** 2, axis=(1, 2))
    got = np.asarray(L.SpectralLoss(terms=["cmse"], weights=[1.0], compress=c).call(y_true, mask))
    np.testing.assert_allclose(got, expect, rtol=1e-4)
    # compress=1 is the plain magnitude MSE
    expect1 = np.mean((np.abs(mask * noisy) - np.abs(clean)) ** 2, axis=(1, 2))
    got1 = np.asarray(L.SpectralLoss(terms=["cmse"], weights=[1.0], compress=1.0).call(y_true, mask))
    np.testing.assert_allclose(got1, expect1, rtol=1e-4)


def test_cmse_hand_value():
    # one bin, clean |S| = 1, noisy |Y| = 2 (different phase), mask 0.5 -> |E| = 1 -> loss 0
    y_true = np.zeros((1, 1, N_BINS, 4), np.float32)
    y_true[..., 0] = 1.0
    y_true[..., 3] = 2.0
    mask = np.full((1, 1, N_BINS), 0.5, np.float32)
    assert float(L.compressed_mse(mask, y_true, 0.3)[0]) == pytest.approx(0.0, abs=1e-10)
    mask[:] = 1.0  # |E|^.3 - |S|^.3 = 2**.3 - 1
    assert float(L.compressed_mse(mask, y_true, 0.3)[0]) == pytest.approx((2**0.3 - 1) ** 2, rel=1e-5)


def test_sisdr_term_equals_minus_metric(rng):
    clean, noisy, _ = _segment_stfts(rng, n=3, frames=20, noise=1.0)
    mask = rng.uniform(0.2, 1.0, clean.shape).astype(np.float32)
    y_true = L.pack_stft_target(clean, noisy)
    got = np.asarray(L.SpectralLoss(terms=("sisdr",), weights=(1.0,)).call(y_true, mask))
    s = _np_istft_crop(clean)
    e = _np_istft_crop(mask * noisy)
    expect = np.array([-M.si_sdr(s[i], e[i]) for i in range(3)])
    np.testing.assert_allclose(got, expect, atol=0.01, rtol=0)
    assert np.all(np.abs(expect) < 40)  # a real, non-saturated value
    # invariant to the scale of the estimate
    got_scaled = np.asarray(L.neg_si_sdr(0.5 * mask, y_true, N_FFT, HOP))
    np.testing.assert_allclose(got_scaled, got, atol=0.01)


def test_silent_clean_pushes_to_silence(rng):
    _, noisy, _ = _segment_stfts(rng, n=1, frames=8)
    y_true = L.pack_stft_target(np.zeros_like(noisy), noisy)
    loud = float(L.neg_si_sdr(np.ones(noisy.shape, np.float32), y_true, N_FFT, HOP)[0])
    quiet = float(L.neg_si_sdr(np.full(noisy.shape, 1e-3, np.float32), y_true, N_FFT, HOP)[0])
    silent = float(L.neg_si_sdr(np.zeros(noisy.shape, np.float32), y_true, N_FFT, HOP)[0])
    assert loud > quiet > silent == pytest.approx(0.0, abs=1e-6)


def test_weights_scale_linearly_and_combine(rng):
    clean, noisy, _ = _segment_stfts(rng, frames=10)
    mask = rng.uniform(0.0, 1.0, clean.shape).astype(np.float32)
    y_true = L.pack_stft_target(clean, noisy)
    cm = np.asarray(L.SpectralLoss(terms=("cmse",), weights=(1.0,)).call(y_true, mask))
    sd = np.asarray(L.SpectralLoss(terms=("sisdr",), weights=(1.0,)).call(y_true, mask))
    cm3 = np.asarray(L.SpectralLoss(terms=("cmse",), weights=(3.0,)).call(y_true, mask))
    np.testing.assert_allclose(cm3, 3.0 * cm, rtol=1e-5)
    both = np.asarray(L.SpectralLoss(terms=("cmse", "sisdr"), weights=(100.0, 0.5)).call(y_true, mask))
    np.testing.assert_allclose(both, 100.0 * cm + 0.5 * sd, rtol=1e-4, atol=1e-4)
    # __call__ reduces with sum_over_batch_size
    reduced = float(L.SpectralLoss(terms=("cmse", "sisdr"), weights=(100.0, 0.5))(y_true, mask))
    assert reduced == pytest.approx(float(np.mean(both)), rel=1e-4)


def _np_compressed(x, c=0.3):
    """``|x|**c e^{j angle(x)}`` in numpy (the reference of the ccmse term)."""
    return np.abs(x) ** c * np.exp(1j * np.angle(x))


def test_ccmse_zero_for_the_ideal_estimate_and_matches_numpy(rng):
    clean, noisy, _ = _segment_stfts(rng, frames=6)
    # the estimate keeps the noisy phase: with noisy == clean and mask 1 it is the clean STFT
    same = L.pack_stft_target(clean, clean)
    ones = np.ones(clean.shape, np.float32)
    np.testing.assert_allclose(np.asarray(L.compressed_complex_mse(ones, same)), 0.0, atol=1e-10)
    mask = rng.uniform(0.0, 1.0, clean.shape).astype(np.float32)
    y_true = L.pack_stft_target(clean, noisy)
    for c in (0.3, 1.0):
        expect = np.mean(np.abs(_np_compressed(mask * noisy, c) - _np_compressed(clean, c)) ** 2, axis=(1, 2))
        got = np.asarray(L.SpectralLoss(terms=["ccmse"], weights=[1.0], compress=c).call(y_true, mask))
        np.testing.assert_allclose(got, expect, rtol=1e-4)
    # never below the magnitude term; equal to it where the noisy phase is the clean phase
    cm = np.asarray(L.compressed_mse(mask, y_true))
    assert np.all(np.asarray(L.compressed_complex_mse(mask, y_true)) > cm)
    in_phase = L.pack_stft_target(clean, 2.0 * clean)
    np.testing.assert_allclose(
        np.asarray(L.compressed_complex_mse(mask, in_phase)), np.asarray(L.compressed_mse(mask, in_phase)), rtol=1e-5
    )


def test_ccmse_hand_value():
    # every bin: clean S = 1, noisy Y = 2j, mask 0.5 -> E = j: |E|^.3 = |S|^.3 = 1 (cmse 0), but the compressed
    # complex values j and 1 differ by |j - 1|^2 = 2
    y_true = np.zeros((1, 1, N_BINS, 4), np.float32)
    y_true[..., 0] = 1.0
    y_true[..., 3] = 2.0
    mask = np.full((1, 1, N_BINS), 0.5, np.float32)
    assert float(L.compressed_complex_mse(mask, y_true, 0.3)[0]) == pytest.approx(2.0, rel=1e-5)
    mask[:] = 1.0  # E = 2j -> 2**.3 j; |2**.3 j - 1|^2 = 2**.6 + 1
    assert float(L.compressed_complex_mse(mask, y_true, 0.3)[0]) == pytest.approx(2**0.6 + 1, rel=1e-5)
    mask[:] = 0.0  # the floor: E_c = (1e-4)**.3 * 2**.3 j
    assert float(L.compressed_complex_mse(mask, y_true, 0.3)[0]) == pytest.approx(1 + (2e-4) ** 0.6, rel=1e-5)
    y_true[..., 3] = 0.0  # a zero noisy bin: E_c = 0, the error is |S_c|^2 = 1
    assert float(L.compressed_complex_mse(mask, y_true, 0.3)[0]) == pytest.approx(1.0, rel=1e-6)


def _np_mrstft(est, ref):
    """Parallel WaveGAN's multi-resolution STFT loss in numpy/librosa (Yamamoto et al. 2020, eqs. 4-6)."""
    total = 0.0
    for size, hop in L.MRSTFT_RESOLUTIONS:

        def mag(x, size=size, hop=hop):
            spec = librosa.stft(x, n_fft=size, hop_length=hop, window="hann", center=True, pad_mode="reflect")
            return np.sqrt(np.maximum(np.abs(spec) ** 2, 1e-7))

        r, e = mag(ref), mag(est)
        total += np.linalg.norm(r - e) / np.linalg.norm(r) + np.mean(np.abs(np.log(r) - np.log(e)))
    return total / len(L.MRSTFT_RESOLUTIONS)


def test_mrstft_zero_for_identical_signals_and_known_values(rng):
    clean, noisy, _ = _segment_stfts(rng, n=2, frames=16)
    same = L.pack_stft_target(clean, clean)
    ones = np.ones(clean.shape, np.float32)
    loss = L.SpectralLoss(terms=("mrstft",), weights=(1.0,))
    np.testing.assert_allclose(np.asarray(loss.call(same, ones)), 0.0, atol=1e-7)
    # half the clean signal: every magnitude halves, so convergence 0.5 and log term ln 2 at every resolution
    np.testing.assert_allclose(np.asarray(loss.call(same, 0.5 * ones)), 0.5 + np.log(2.0), rtol=1e-3)
    # a real estimate, against an independent numpy / librosa implementation on the same waveforms
    mask = rng.uniform(0.0, 1.0, clean.shape).astype(np.float32)
    got = np.asarray(loss.call(L.pack_stft_target(clean, noisy), mask))
    est, ref = _np_istft_crop(mask * noisy), _np_istft_crop(clean)
    expect = np.array([_np_mrstft(est[i], ref[i]) for i in range(2)])
    np.testing.assert_allclose(got, expect, rtol=1e-3)
    assert np.all(got > 0.1)


def test_sisdr_and_mrstft_share_the_waveforms(rng):
    clean, noisy, _ = _segment_stfts(rng, n=2, frames=16)
    mask = rng.uniform(0.0, 1.0, clean.shape).astype(np.float32)
    y_true = L.pack_stft_target(clean, noisy)
    est, ref = (np.asarray(w) for w in L.masked_waveforms(mask, y_true, N_FFT, HOP))
    np.testing.assert_allclose(est, _np_istft_crop(mask * noisy), atol=1e-6)
    np.testing.assert_allclose(ref, _np_istft_crop(clean), atol=1e-6)
    both = np.asarray(L.SpectralLoss(terms=("sisdr", "mrstft"), weights=(0.01, 2.0)).call(y_true, mask))
    expect = 0.01 * np.asarray(L.neg_si_sdr(mask, y_true, N_FFT, HOP)) + 2.0 * np.asarray(
        L.multi_resolution_stft(mask, y_true, N_FFT, HOP)
    )
    np.testing.assert_allclose(both, expect, rtol=1e-5)


# ---------------------------------------------------------------- the pooled SI-SDR metric
def test_pooled_si_sdr_of_one_segment_is_the_metric(rng):
    clean, noisy, _ = _segment_stfts(rng, n=1, frames=20, noise=1.0)
    mask = rng.uniform(0.2, 1.0, clean.shape).astype(np.float32)
    metric = L.PooledSISDR()
    metric.update_state(L.pack_stft_target(clean, noisy), mask)
    expect = M.si_sdr(_np_istft_crop(clean)[0], _np_istft_crop(mask * noisy)[0])
    assert abs(expect) < 40
    assert float(metric.result()) == pytest.approx(expect, abs=0.01)
    assert metric.name == "si_sdr"


def test_pooled_si_sdr_pools_energies_over_segments_and_batches(rng):
    clean, noisy, _ = _segment_stfts(rng, n=2, frames=20, noise=1.0)
    clean[1] *= 0.01  # a quiet segment: pooling weighs it by its energy, a mean of dB values would not
    noisy[1] = clean[1] + 0.5 * (noisy[1] - clean[1] / 0.01)
    mask = rng.uniform(0.2, 1.0, clean.shape).astype(np.float32)
    s = _np_istft_crop(clean).astype(np.float64)
    e = _np_istft_crop(mask * noisy).astype(np.float64)
    s -= s.mean(axis=1, keepdims=True)
    e -= e.mean(axis=1, keepdims=True)
    alpha = np.sum(e * s, axis=1) / np.sum(s * s, axis=1)
    target = np.sum((alpha[:, None] * s) ** 2, axis=1)
    error = np.sum((alpha[:, None] * s - e) ** 2, axis=1)
    pooled = 10 * np.log10(target.sum() / error.sum())
    per_segment = 10 * np.log10(target / error)
    assert abs(pooled - per_segment.mean()) > 1.0  # the two summaries differ on this pair
    y_true = L.pack_stft_target(clean, noisy)
    metric = L.PooledSISDR()
    metric.update_state(y_true, mask)
    assert float(metric.result()) == pytest.approx(pooled, abs=0.01)
    metric.reset_state()
    metric.update_state(y_true[:1], mask[:1])  # one segment per batch: the sums carry over batches
    assert float(metric.result()) == pytest.approx(per_segment[0], abs=0.01)
    metric.update_state(y_true[1:], mask[1:])
    assert float(metric.result()) == pytest.approx(pooled, abs=0.01)
    # a segment weight of 0 leaves it out
    metric.reset_state()
    metric.update_state(y_true, mask, sample_weight=np.array([1.0, 0.0], np.float32))
    assert float(metric.result()) == pytest.approx(per_segment[0], abs=0.01)


def test_pooled_si_sdr_round_trip_and_errors():
    metric = L.PooledSISDR(n_fft=256, hop_length=64, window="hamming", name="val_thing")
    again = keras.metrics.deserialize(keras.saving.serialize_keras_object(metric))
    assert isinstance(again, L.PooledSISDR) and again.get_config() == metric.get_config()
    assert (again.n_fft, again.hop_length, again.window, again.name) == (256, 64, "hamming", "val_thing")
    with pytest.raises(ConfigError, match=r"hop_length \(600\) must not exceed n_fft \(512\)"):
        L.PooledSISDR(hop_length=600)
    with pytest.raises(ConfigError, match=r"window must be one of"):
        L.PooledSISDR(window="blackman")
    with pytest.raises(ConfigError, match=r"n_fft must be a positive integer"):
        L.PooledSISDR(n_fft=0)


# ---------------------------------------------------------------- gradients
@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="GradientTape needs the TF backend")
@pytest.mark.parametrize("kind", ["zeros", "ones", "random", "zero_bins"])
@pytest.mark.parametrize("terms", [("cmse", "sisdr"), ("ccmse",), ("mrstft",)])
def test_gradients_finite(rng, kind, terms):
    import tensorflow as tf

    clean, noisy, _ = _segment_stfts(rng, frames=12)
    if kind == "zero_bins":
        clean[:, :, ::3] = 0
        noisy[:, :, ::2] = 0
        clean[1] = 0  # one fully silent clean segment
    y_true = tf.constant(L.pack_stft_target(clean, noisy))
    mask_np = {
        "zeros": np.zeros(clean.shape),
        "ones": np.ones(clean.shape),
        "random": rng.uniform(0, 1, clean.shape),
        "zero_bins": rng.uniform(0, 1, clean.shape) * (rng.uniform(size=clean.shape) > 0.3),
    }[kind]
    mask = tf.Variable(mask_np.astype(np.float32))
    loss = L.SpectralLoss(terms=terms, weights=(1.0,) * len(terms))
    with tf.GradientTape() as tape:
        value = loss(y_true, mask)
    grad = tape.gradient(value, mask).numpy()
    assert np.isfinite(float(value))
    assert np.all(np.isfinite(grad))
    if kind == "random":
        assert np.abs(grad).max() > 0


# ---------------------------------------------------------------- serialisation
def test_config_round_trip():
    loss = L.SpectralLoss(
        terms=("sisdr", "cmse"),
        weights=(0.1, 2.0),
        n_fft=256,
        hop_length=64,
        window="hamming",
        compress=0.5,
        name="my_loss",
    )
    blob = keras.saving.serialize_keras_object(loss)
    again = keras.losses.deserialize(blob)
    assert isinstance(again, L.SpectralLoss)
    assert again.get_config() == loss.get_config()
    assert again.terms == ("sisdr", "cmse") and again.weights == (0.1, 2.0)
    assert (again.n_fft, again.hop_length, again.window, again.compress, again.name) == (
        256,
        64,
        "hamming",
        0.5,
        "my_loss",
    )
    assert keras.losses.get(blob).get_config() == loss.get_config()


def test_model_save_load_without_custom_objects(tmp_path, rng):
    n_fft, hop, frames = 64, 16, 12
    bins = n_fft // 2 + 1
    clean = rng.standard_normal((4, frames, bins)) + 1j * rng.standard_normal((4, frames, bins))
    noisy = clean + 0.5 * (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape))
    x = np.abs(noisy).astype(np.float32)
    y = L.pack_stft_target(clean, noisy)
    model = keras.Sequential([keras.Input((frames, bins)), keras.layers.Dense(bins, activation="sigmoid")])
    loss = L.SpectralLoss(weights=(1.0, 0.01), n_fft=n_fft, hop_length=hop)
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    before = model.evaluate(x, y, verbose=0)
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.loss, L.SpectralLoss)
    assert loaded.loss.get_config() == loss.get_config()
    assert np.isfinite(before)
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(before, rel=1e-5)


# ---------------------------------------------------------------- errors
def test_constructor_errors():
    with pytest.raises(ConfigError, match=r"unknown spectral loss term 'mse'.*'cmse', 'sisdr', 'ccmse', 'mrstft'"):
        L.SpectralLoss(terms=("mse",), weights=(1.0,))
    with pytest.raises(ConfigError, match=r"got 1 loss weights \[1.0\] for 2 terms"):
        L.SpectralLoss(weights=(1.0,))
    with pytest.raises(ConfigError, match=r"finite and >= 0"):
        L.SpectralLoss(weights=(1.0, -0.5))
    for bad in (0.0, 1.5, -0.3, "x"):
        with pytest.raises(ConfigError, match=r"compress must be in \(0, 1\]"):
            L.SpectralLoss(compress=bad)
    with pytest.raises(ConfigError, match=r"hop_length \(600\) must not exceed n_fft \(512\)"):
        L.SpectralLoss(hop_length=600)
    with pytest.raises(ConfigError, match=r"window must be one of"):
        L.SpectralLoss(window="blackman")


def test_call_shape_errors():
    loss = L.SpectralLoss()
    with pytest.raises(ConfigError, match=r"expects y_pred \(batch, frames, 257\)"):
        loss.call(np.zeros((1, 8, 129, 4), np.float32), np.zeros((1, 8, 129), np.float32))
    with pytest.raises(ConfigError, match=r"sisdr term needs more than 3 frames"):
        loss.call(np.zeros((1, 3, 257, 4), np.float32), np.zeros((1, 3, 257), np.float32))
    mr = L.SpectralLoss(terms=("cmse", "mrstft"), weights=(1.0, 1.0))
    with pytest.raises(ConfigError, match=r"mrstft term needs a waveform of at least 1024 samples.*at least 11 frames"):
        mr.call(np.zeros((1, 10, 257, 4), np.float32), np.zeros((1, 10, 257), np.float32))
    assert np.asarray(mr.call(np.zeros((1, 11, 257, 4), np.float32), np.ones((1, 11, 257), np.float32))).shape == (1,)
    ccmse = L.SpectralLoss(terms=("ccmse",), weights=(1.0,))  # no waveform: any number of frames
    assert np.asarray(ccmse.call(np.zeros((2, 1, 257, 4), np.float32), np.ones((2, 1, 257), np.float32))).shape == (2,)


def test_parse_loss():
    assert C.parse_loss("cmse+sisdr") == (("cmse", "sisdr"), (1.0, 1.0))
    assert C.parse_loss(" CMSE + sisdr ", [2, 0.5]) == (("cmse", "sisdr"), (2.0, 0.5))
    assert C.parse_loss("sisdr") == (("sisdr",), (1.0,))
    assert C.parse_loss("mse") == (("mse",), (1.0,))
    assert C.parse_loss("mae") == (("mae",), (1.0,))
    assert C.parse_loss("ccmse+mrstft", [1, 0.1]) == (("ccmse", "mrstft"), (1.0, 0.1))
    assert C.is_spectral("ccmse") and C.is_spectral("mrstft+cmse")
    assert C.is_spectral("cmse+sisdr") and C.is_spectral("sisdr")
    assert not C.is_spectral("mse") and not C.is_spectral("mae")
    assert C.POINTWISE_LOSSES == ("mse", "mae") and C.SPECTRAL_LOSSES == ("cmse", "sisdr", "ccmse", "mrstft")


@pytest.mark.parametrize(
    "spec, weights, message",
    [
        (
            "mse+sisdr",
            None,
            r"^mse cannot be combined with the spectral terms \['cmse', 'sisdr', 'ccmse', 'mrstft'\]: use cmse",
        ),
        ("cmse+mae", None, r"^mae cannot be combined with the spectral terms"),
        ("mse+mae", None, r"point-wise losses \['mse', 'mae'\] cannot be combined"),
        (
            "cmse+snr",
            None,
            r"unknown loss term 'snr' in 'cmse\+snr'; valid: 'mse', 'mae', 'cmse', 'sisdr', 'ccmse', 'mrstft'",
        ),
        ("cmse+", None, r"unknown loss term ''"),
        ("", None, r"non-empty string"),
        ("cmse+cmse", None, r"\['cmse'\] repeated"),
        ("cmse+sisdr", [1.0], r"got 1 loss weights \[1.0\] for 2 terms \['cmse', 'sisdr'\]"),
        ("cmse", [-1.0], r"finite and >= 0"),
        ("cmse", ["a"], r"list of numbers"),
        ("cmse+sisdr", [0, 0], r"all loss weights are 0"),
    ],
)
def test_parse_loss_errors(spec, weights, message):
    with pytest.raises(ConfigError, match=message):
        C.parse_loss(spec, weights)


def test_pack_stft_target(rng):
    clean = rng.standard_normal((2, 5, 7)) + 1j * rng.standard_normal((2, 5, 7))
    noisy = rng.standard_normal((2, 5, 7)) + 1j * rng.standard_normal((2, 5, 7))
    packed = L.pack_stft_target(clean, noisy)
    assert packed.shape == (2, 5, 7, 4) and packed.dtype == np.float32
    np.testing.assert_allclose(packed[..., 0] + 1j * packed[..., 1], clean, rtol=1e-6)
    np.testing.assert_allclose(packed[..., 2] + 1j * packed[..., 3], noisy, rtol=1e-6)
    with pytest.raises(ConfigError, match=r"same shape"):
        L.pack_stft_target(clean, noisy[:, :4])
