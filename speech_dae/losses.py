"""Training losses closer to what is heard and scored: compressed spectra, SI-SDR, multi-resolution STFT.

The point-wise ``mse``/``mae`` losses compare network outputs with targets
value by value. The losses here instead judge the *enhanced signal* that a
magnitude mask produces on the noisy STFT, in ways that follow what the
evaluation measures:

- ``cmse``: mean squared error between power-law compressed magnitudes,
  ``(|E|**c - |S|**c)**2`` with ``c = 0.3``. The compression (close to the
  loudness law of hearing) stops loud low-frequency bins from dominating the
  loss. Source: S. Braun and I. Tashev, "A consolidated view of loss
  functions for supervised deep learning-based speech enhancement", TSP 2021
  (they find ``c = 0.3`` best).
- ``ccmse``: the compressed *complex* MSE of the same paper,
  ``|(|E|**c e^{j phi_E}) - (|S|**c e^{j phi_S})|**2``: the compressed
  magnitudes with their phases, so a phase error costs too (with the phase
  of the noisy STFT kept by the mask, it penalises the bins whose noisy phase
  is far from the clean one). GTCRN and DeepFilterNet train with it next to
  the magnitude term. It is never below ``cmse`` and equals it where the
  phases agree.
- ``sisdr``: negative scale-invariant SDR, in dB, between the waveforms of the
  estimate and of the clean speech, both brought back to the time domain by
  the same inverse STFT (:func:`istft_frames`). Source: J. Le Roux, S. Wisdom,
  H. Erdogan and J. R. Hershey, "SDR - half-baked or well done?", ICASSP 2019.
  The definition matches :func:`speech_dae.metrics.si_sdr` (both signals made
  zero-mean first), so the term is exactly minus the evaluation metric on the
  waveform interior, up to the ``eps`` regularisation below.
- ``mrstft``: the multi-resolution STFT loss of Parallel WaveGAN (R. Yamamoto,
  E. Song and J.-M. Kim, ICASSP 2020): spectral convergence plus mean absolute
  log-magnitude difference, averaged over three STFTs of the same two
  waveforms (:data:`MRSTFT_RESOLUTIONS`), so no single time-frequency
  trade-off is favoured.

:class:`PooledSISDR` is the matching validation metric: the SI-SDR of all the
segments of an epoch pooled by energy, in dB (``si_sdr`` / ``val_si_sdr`` in
the training history), comparable across losses.

Data contract
-------------
``y_pred``: float32 ``(batch, frames, n_bins)``, a magnitude gain (mask),
nominally in ``[0, 1]``, applied to the noisy STFT; ``n_bins = n_fft//2 + 1``.

``y_true``: float32 ``(batch, frames, n_bins, 4)``, channels ``[clean real,
clean imag, noisy real, noisy imag]`` of the linear STFT in the
``librosa.stft`` convention (rfft of Hann-windowed frames of ``n_fft``
samples every ``hop_length`` samples), the frames being consecutive frames of
one segment, e.g. ``librosa.stft(y, center=True).T[t0:t0 + frames]``. Build it
with :func:`pack_stft_target`.

The estimate is ``E = mask * Y`` (the noisy phase is kept).

Selection in the config: :func:`speech_dae.config.parse_loss` turns
``training.loss`` (``"cmse+sisdr"``, any of ``cmse``, ``ccmse``, ``sisdr``,
``mrstft`` joined by ``+``) and ``training.loss_weights`` into
``(terms, weights)``; stage 03 builds :class:`SpectralLoss` from them.

Only ``keras.ops`` is used in the losses and the metric, so they run under the TensorFlow, JAX
and torch backends.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from .config import SPECTRAL_LOSSES, check_loss_weights
from .errors import ConfigError

__all__ = [
    "WINDOWS",
    "SISDR_EPS",
    "MASK_FLOOR",
    "MRSTFT_RESOLUTIONS",
    "MRSTFT_FLOOR",
    "pack_stft_target",
    "istft_frames",
    "masked_waveforms",
    "compressed_mse",
    "compressed_complex_mse",
    "neg_si_sdr",
    "si_sdr_energies",
    "multi_resolution_stft",
    "SpectralLoss",
    "PooledSISDR",
]

#: Window names accepted by :class:`SpectralLoss` / :func:`istft_frames` (those ``keras.ops.istft`` knows).
WINDOWS: tuple = ("hann", "hamming")

#: Energy regulariser of the SI-SDR ratio (waveform units squared). It bounds
#: the SI-SDR of a perfect estimate at ``10 log10(||s||**2 / SISDR_EPS)`` dB
#: (about +94 dB for a 0.5 s segment of speech at -25 dBFS) and makes silent
#: segments well defined (see :func:`neg_si_sdr`).
SISDR_EPS: float = 1e-8

#: Smallest mask value the compressed magnitude sees (-80 dB). ``m**0.3`` has
#: an infinite slope at ``m = 0``; the floor keeps the gradient finite (at most
#: ``0.3 * MASK_FLOOR**-0.7`` ~ 190 times ``|Y|**c``). Below the floor the cmse
#: term gives no gradient to the mask; a -80 dB gain is inaudible anyway.
MASK_FLOOR: float = 1e-4

#: ``(fft size, hop)`` of the ``mrstft`` term's STFTs, in samples, Hann windows of the FFT size: the
#: resolutions of Yamamoto et al. (2020) halved (they use 512 / 1024 / 2048 at 24 kHz), hops of a quarter.
#: A 64-frame training segment (hop 128) gives a 7,808-sample waveform: 31 frames at the largest size.
MRSTFT_RESOLUTIONS: tuple = ((256, 64), (512, 128), (1024, 256))

#: Floor of the squared STFT magnitude in the ``mrstft`` term (as Parallel WaveGAN's implementation):
#: keeps ``log|X|`` and its gradient finite in silent bins (-70 dB re 1).
MRSTFT_FLOOR: float = 1e-7


# --------------------------------------------------------------------------
# numpy side: the training target
# --------------------------------------------------------------------------
def pack_stft_target(clean_stft, noisy_stft) -> np.ndarray:
    """Pack clean and noisy complex STFTs into the 4-channel target of :class:`SpectralLoss`.

    Parameters
    ----------
    clean_stft : np.ndarray [shape=(..., frames, n_bins)], complex
        STFT of the clean speech, time on the second-last axis (i.e.
        ``librosa.stft(y).T``, or a batch of such slices).
    noisy_stft : np.ndarray [shape=(..., frames, n_bins)], complex
        STFT of the noisy mixture, same shape and framing.

    Returns
    -------
    np.ndarray [shape=(..., frames, n_bins, 4)], float32
        Channels ``[clean real, clean imag, noisy real, noisy imag]``.

    Raises
    ------
    ConfigError
        If the shapes differ or an array has fewer than 2 axes.
    """
    clean = np.asarray(clean_stft)
    noisy = np.asarray(noisy_stft)
    if clean.shape != noisy.shape or clean.ndim < 2:
        raise ConfigError(
            f"clean and noisy STFTs must have the same shape (..., frames, n_bins), got "
            f"{clean.shape} and {noisy.shape}; compute both with the same n_fft/hop_length."
        )
    return np.stack([clean.real, clean.imag, noisy.real, noisy.imag], axis=-1).astype(np.float32)


# --------------------------------------------------------------------------
# keras.ops side
# --------------------------------------------------------------------------
def istft_frames(real, imag, n_fft: int, hop_length: int, window: str = "hann"):
    """Inverse STFT of consecutive frames, cropped to the fully overlapped interior.

    Runs ``keras.ops.istft(..., center=False)`` (weighted overlap-add, divided
    by the summed squared window, so that it inverts ``librosa.stft`` exactly
    where enough frames overlap) and drops the first and last
    ``n_fft - hop_length`` samples, where fewer frames overlap than in the
    steady state and the window normalisation is incomplete.

    Alignment: if the frames are ``librosa.stft(y, n_fft, hop_length,
    center=True)`` frames ``t0 .. t0 + frames - 1``, output sample ``k``
    equals ``y[t0 * hop_length - n_fft // 2 + (n_fft - hop_length) + k]``,
    for ``0 <= k < (frames + 1) * hop_length - n_fft``. For even ``n_fft``
    the output thus starts ``n_fft // 2 - hop_length`` samples after the
    centre of the first frame and stops (exclusive) the same distance before
    the centre of the last frame (128 samples each for 512/128).

    Parameters
    ----------
    real, imag : tensor [shape=(batch, frames, n_fft // 2 + 1)], float32
        Real and imaginary parts of the STFT frames (time, then frequency).
    n_fft : int
        Frame length = FFT length, in samples.
    hop_length : int
        Frame step, in samples (``<= n_fft``).
    window : {"hann", "hamming"}
        Analysis window (periodic), as used by the forward STFT.

    Returns
    -------
    tensor [shape=(batch, (frames + 1) * hop_length - n_fft)], float32
        Waveform samples, same units as the signal the STFT was taken of.
        Needs ``frames > n_fft / hop_length - 1``.
    """
    x = ops.istft(
        (ops.cast(real, "float32"), ops.cast(imag, "float32")),
        sequence_length=n_fft,
        sequence_stride=hop_length,
        fft_length=n_fft,
        window=window,
        center=False,
    )
    crop = n_fft - hop_length
    if crop == 0:
        return x
    return x[..., crop:-crop]


def compressed_mse(mask, y_true, compress: float = 0.3):
    """Compressed-magnitude MSE of a masked estimate, per example.

    ``mean_{frames, bins} (|E|**c - |S|**c)**2`` with ``E = mask * Y``,
    computed as ``max(mask, MASK_FLOOR)**c * |Y|**c`` so that the gradient
    with respect to the mask stays finite at ``mask = 0`` and at bins of zero
    magnitude. The target side (``y_true``) is treated as a constant.

    Parameters
    ----------
    mask : tensor [shape=(batch, frames, n_bins)], float32, >= 0
        Magnitude gain on the noisy STFT.
    y_true : tensor [shape=(batch, frames, n_bins, 4)], float32
        ``[clean re, clean im, noisy re, noisy im]`` (see :func:`pack_stft_target`).
    compress : float
        Exponent ``c`` in ``(0, 1]``; 0.3 after Braun & Tashev (2021).

    Returns
    -------
    tensor [shape=(batch,)], float32
        Loss in (STFT magnitude units)**(2c).
    """
    y_true = ops.stop_gradient(ops.cast(y_true, "float32"))
    mask = ops.cast(mask, "float32")
    half = 0.5 * compress
    # power(x, c/2) of the squared magnitude = |X|**c, exactly 0 for a 0 bin;
    # no gradient flows into y_true, so the infinite slope at 0 never matters.
    clean_c = ops.power(ops.square(y_true[..., 0]) + ops.square(y_true[..., 1]), half)
    noisy_c = ops.power(ops.square(y_true[..., 2]) + ops.square(y_true[..., 3]), half)
    est_c = ops.power(ops.maximum(mask, MASK_FLOOR), compress) * noisy_c
    return ops.mean(ops.square(est_c - clean_c), axis=(1, 2))


def _compressed_phasor(re, im, compress: float):
    """``|X|**c * X / |X|`` as (real, imag): the compressed magnitude with the phase of ``X``, 0 for a 0 bin."""
    power = ops.square(re) + ops.square(im)
    inv_mag = 1.0 / ops.sqrt(ops.maximum(power, 1e-30))  # X / |X| is (0, 0) for a 0 bin: re = im = 0 there
    mag_c = ops.power(power, 0.5 * compress)
    return mag_c * re * inv_mag, mag_c * im * inv_mag


def compressed_complex_mse(mask, y_true, compress: float = 0.3):
    """Compressed complex MSE of a masked estimate, per example.

    ``mean_{frames, bins} |E_c - S_c|**2`` with ``X_c = |X|**c e^{j phi_X}``,
    ``E = mask * Y`` (so ``phi_E`` is the noisy phase) and ``S`` the clean
    STFT: the complex term of Braun & Tashev (2021), the squared modulus of
    the difference (real part squared plus imaginary part squared). Where
    ``phi_E = phi_S`` it equals :func:`compressed_mse`; elsewhere it is larger.
    ``E_c = max(mask, MASK_FLOOR)**c * Y_c``, so the gradient with respect to
    the mask stays finite at ``mask = 0`` (as in :func:`compressed_mse`); a
    zero bin of ``Y`` or ``S`` has ``X_c = 0``. The target side is a constant.
    Parameters, shapes, dtypes and units as for :func:`compressed_mse`: ``mask``
    ``(batch, frames, n_bins)``, ``y_true`` ``(batch, frames, n_bins, 4)``, the
    exponent ``compress`` in ``(0, 1]``; returns ``(batch,)`` float32 in
    (STFT magnitude units)**(2c).
    """
    y_true = ops.stop_gradient(ops.cast(y_true, "float32"))
    gain = ops.power(ops.maximum(ops.cast(mask, "float32"), MASK_FLOOR), compress)
    clean_re, clean_im = _compressed_phasor(y_true[..., 0], y_true[..., 1], compress)
    noisy_re, noisy_im = _compressed_phasor(y_true[..., 2], y_true[..., 3], compress)
    err = ops.square(gain * noisy_re - clean_re) + ops.square(gain * noisy_im - clean_im)
    return ops.mean(err, axis=(1, 2))


def masked_waveforms(mask, y_true, n_fft: int, hop_length: int, window: str = "hann"):
    """The waveforms of the masked estimate and of the clean speech, through :func:`istft_frames`.

    Parameters
    ----------
    mask : tensor [shape=(batch, frames, n_bins)], float32
        Magnitude gain on the noisy STFT.
    y_true : tensor [shape=(batch, frames, n_bins, 4)], float32
        ``[clean re, clean im, noisy re, noisy im]``; treated as a constant.
    n_fft, hop_length : int
        STFT framing, in samples.
    window : {"hann", "hamming"}
        STFT window.

    Returns
    -------
    estimate, clean : tensor [shape=(batch, (frames + 1) * hop_length - n_fft)], float32
        ``istft_frames(mask * Y)`` and ``istft_frames(S)``, waveform units, same interior samples.
    """
    y_true = ops.stop_gradient(ops.cast(y_true, "float32"))
    mask = ops.cast(mask, "float32")
    clean = istft_frames(y_true[..., 0], y_true[..., 1], n_fft, hop_length, window)
    estimate = istft_frames(mask * y_true[..., 2], mask * y_true[..., 3], n_fft, hop_length, window)
    return estimate, clean


def _zero_mean(x):
    return x - ops.mean(x, axis=-1, keepdims=True)


def si_sdr_energies(estimate, clean, eps: float = SISDR_EPS):
    """Target and error energies of the SI-SDR of waveforms, per example.

    Both signals are made zero-mean; ``alpha = <e, s> / (||s||**2 + eps)``,
    ``target = alpha s`` and ``error = e - target`` (Le Roux et al. 2019, as
    :func:`speech_dae.metrics.si_sdr`, with ``eps`` added).

    Parameters
    ----------
    estimate, clean : tensor [shape=(batch, n_samples)], float32
        Waveforms, e.g. from :func:`masked_waveforms`.
    eps : float
        Energy regulariser (waveform units squared) of ``alpha``.

    Returns
    -------
    target, error : tensor [shape=(batch,)], float32
        ``||alpha s||**2`` and ``||alpha s - e||**2``, waveform units squared.
    """
    s = _zero_mean(clean)
    e = _zero_mean(estimate)
    alpha = ops.sum(e * s, axis=-1, keepdims=True) / (ops.sum(ops.square(s), axis=-1, keepdims=True) + eps)
    target = alpha * s
    return ops.sum(ops.square(target), axis=-1), ops.sum(ops.square(e - target), axis=-1)


def _db(ratio):
    return 10.0 * ops.log(ratio) / math.log(10.0)


def neg_si_sdr(mask, y_true, n_fft: int, hop_length: int, window: str = "hann", eps: float = SISDR_EPS):
    """Negative SI-SDR (dB) of the masked estimate's waveform, per example.

    ``e`` and ``s`` are the waveforms of :func:`masked_waveforms`;
    :func:`si_sdr_energies` gives ``||target||**2`` and ``||noise||**2``, and
    ``SI-SDR = 10 log10((||target||**2 + eps) / (||noise||**2 + eps))`` (Le
    Roux et al. 2019, with ``eps`` added).

    ``eps`` bounds the loss below by about ``-10 log10(||s||**2 / eps)`` and
    keeps it and its gradient finite for silent segments: if the clean
    segment is silent (``s = 0``) then ``target = 0`` and the loss is
    ``10 log10((||e||**2 + eps) / eps)``, which pushes the estimate towards
    silence (mask -> 0); at ``e = 0`` and ``s = 0`` it is 0 dB.

    Parameters
    ----------
    mask : tensor [shape=(batch, frames, n_bins)], float32
        Magnitude gain on the noisy STFT.
    y_true : tensor [shape=(batch, frames, n_bins, 4)], float32
        ``[clean re, clean im, noisy re, noisy im]``.
    n_fft, hop_length : int
        STFT framing, in samples.
    window : {"hann", "hamming"}
        STFT window.
    eps : float
        Energy regulariser (waveform units squared), default :data:`SISDR_EPS`.

    Returns
    -------
    tensor [shape=(batch,)], float32
        ``-SI-SDR`` in dB (lower is better).
    """
    return _neg_si_sdr_of(*masked_waveforms(mask, y_true, n_fft, hop_length, window), eps)


def _neg_si_sdr_of(estimate, clean, eps: float = SISDR_EPS):
    target, error = si_sdr_energies(estimate, clean, eps)
    return -_db((target + eps) / (error + eps))


def _safe_sqrt(x):
    """``sqrt(x)`` for ``x >= 0`` whose gradient is 0 (not NaN) at ``x = 0``."""
    positive = x > 0
    return ops.where(positive, ops.sqrt(ops.where(positive, x, 1.0)), 0.0)


def _stft_magnitude(x, n_fft: int, hop_length: int):
    re, im = ops.stft(
        x, sequence_length=n_fft, sequence_stride=hop_length, fft_length=n_fft, window="hann", center=True
    )
    return ops.sqrt(ops.maximum(ops.square(re) + ops.square(im), MRSTFT_FLOOR))


def multi_resolution_stft(
    mask, y_true, n_fft: int, hop_length: int, window: str = "hann", resolutions=MRSTFT_RESOLUTIONS
):
    """Multi-resolution STFT loss of the masked estimate's waveform, per example.

    The waveforms ``x_hat`` (estimate) and ``x`` (clean) of
    :func:`masked_waveforms` are analysed again by ``keras.ops.stft`` (Hann
    window of the FFT size, ``center=True`` with reflection padding) at every
    ``(fft size, hop)`` of ``resolutions``; with ``X = max(|STFT|**2,
    MRSTFT_FLOOR)**0.5`` the loss is the mean over resolutions of the spectral
    convergence ``||X - X_hat||_F / ||X||_F`` plus the mean absolute log
    difference ``mean |log X - log X_hat|`` (Yamamoto, Song & Kim, "Parallel
    WaveGAN", ICASSP 2020, eqs. 4-6). It is 0 for identical waveforms and its
    gradient is finite there.

    Parameters
    ----------
    mask, y_true, n_fft, hop_length, window
        As for :func:`neg_si_sdr` (the same masked and clean waveforms).
    resolutions : sequence of (int, int)
        ``(fft size, hop)`` pairs in samples, default :data:`MRSTFT_RESOLUTIONS`; the waveform,
        ``(frames + 1) * hop_length - n_fft`` samples, must be at least the largest fft size long.

    Returns
    -------
    tensor [shape=(batch,)], float32
        Dimensionless loss (spectral convergence is a ratio, the log term in nepers), >= 0.
    """
    return _mrstft_of(*masked_waveforms(mask, y_true, n_fft, hop_length, window), resolutions)


def _mrstft_of(estimate, clean, resolutions=MRSTFT_RESOLUTIONS):
    total = 0.0
    for size, hop in resolutions:
        ref = _stft_magnitude(clean, size, hop)
        est = _stft_magnitude(estimate, size, hop)
        convergence = _safe_sqrt(ops.sum(ops.square(ref - est), axis=(1, 2))) / ops.sqrt(
            ops.sum(ops.square(ref), axis=(1, 2))
        )
        log_mag = ops.mean(ops.abs(ops.log(ref) - ops.log(est)), axis=(1, 2))
        total = total + convergence + log_mag
    return total / len(resolutions)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer number of samples, got {value!r}.")
    return int(value)


@keras.saving.register_keras_serializable(package="speech_dae")
class SpectralLoss(keras.losses.Loss):
    """Weighted sum of spectral and waveform losses of a masked STFT.

    ``loss = sum_i weights[i] * term_i`` per example, with the terms
    ``"cmse"`` (:func:`compressed_mse`, Braun & Tashev 2021), ``"ccmse"``
    (:func:`compressed_complex_mse`, Braun & Tashev 2021), ``"sisdr"``
    (:func:`neg_si_sdr`, Le Roux et al. 2019, in dB) and ``"mrstft"``
    (:func:`multi_resolution_stft`, Yamamoto et al. 2020). They have different
    units and scales (cmse and ccmse are O(0.01-1), -SI-SDR O(-30..+30) dB,
    mrstft O(0.1-3)); choose the weights accordingly. The waveforms are built
    once when both ``sisdr`` and ``mrstft`` are used.

    Parameters
    ----------
    terms : sequence of str
        Subset of :data:`SPECTRAL_LOSSES`, each at most once.
    weights : sequence of float
        One finite weight >= 0 per term.
    n_fft : int
        FFT/frame length of the STFT in ``y_true``, in samples; the inputs
        must have ``n_fft // 2 + 1`` bins.
    hop_length : int
        Frame step, in samples, ``<= n_fft``.
    window : {"hann", "hamming"}
        Window of the STFT in ``y_true``.
    compress : float
        Magnitude compression exponent in ``(0, 1]``.
    name, reduction, **kwargs
        As for :class:`keras.losses.Loss`.

    Notes
    -----
    ``call(y_true, y_pred)``: ``y_true`` float32 ``(batch, frames, n_bins,
    4)`` from :func:`pack_stft_target`, ``y_pred`` float32 ``(batch, frames,
    n_bins)`` mask; returns ``(batch,)``. The sisdr term needs ``frames >
    n_fft / hop_length - 1`` (at least 4 frames for 512/128), the mrstft term
    a waveform of ``(frames + 1) * hop_length - n_fft`` samples at least as
    long as its largest FFT (at least 11 frames for 512/128).

    Raises
    ------
    ConfigError
        For unknown/duplicate terms, weights of the wrong length or negative,
        ``compress`` outside ``(0, 1]``, bad framing or window, and (at call
        time, when shapes are static) inputs of the wrong shape.
    """

    def __init__(
        self,
        terms=("cmse", "sisdr"),
        weights=(1.0, 1.0),
        n_fft=512,
        hop_length=128,
        window="hann",
        compress=0.3,
        name="spectral_loss",
        reduction="sum_over_batch_size",
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        if isinstance(terms, str):
            terms = (terms,)
        terms = tuple(terms)
        if not terms:
            raise ConfigError(f"SpectralLoss needs at least one term of {list(SPECTRAL_LOSSES)}.")
        for term in terms:
            if term not in SPECTRAL_LOSSES:
                raise ConfigError(
                    f"unknown spectral loss term {term!r}; valid terms: {', '.join(repr(t) for t in SPECTRAL_LOSSES)}."
                )
        if len(set(terms)) != len(terms):
            raise ConfigError(f"spectral loss terms {list(terms)} repeat a term; name each once.")
        self.terms = terms
        self.weights = check_loss_weights(weights, len(terms), terms)
        self.n_fft = _positive_int(n_fft, "n_fft")
        self.hop_length = _positive_int(hop_length, "hop_length")
        if self.hop_length > self.n_fft:
            raise ConfigError(
                f"hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft}); "
                "the inverse STFT needs overlapping or touching frames."
            )
        if window not in WINDOWS:
            raise ConfigError(f"window must be one of {list(WINDOWS)}, got {window!r}.")
        self.window = window
        try:
            compress = float(compress)
        except (TypeError, ValueError):
            compress = float("nan")
        if not (0.0 < compress <= 1.0):
            raise ConfigError(
                f"compress must be in (0, 1] (magnitude exponent; 0.3 after Braun & Tashev 2021), got {compress!r}."
            )
        self.compress = compress

    def _check_shapes(self, y_true, y_pred) -> None:
        n_bins = self.n_fft // 2 + 1
        t_shape, p_shape = tuple(y_true.shape), tuple(y_pred.shape)
        ok = len(t_shape) == 4 and len(p_shape) == 3 and t_shape[-1] in (4, None)
        if ok:
            for a, b in zip(t_shape[:3], p_shape):
                if a is not None and b is not None and a != b:
                    ok = False
        if ok and p_shape[-1] is not None and p_shape[-1] != n_bins:
            ok = False
        if not ok:
            raise ConfigError(
                f"SpectralLoss(n_fft={self.n_fft}) expects y_pred (batch, frames, {n_bins}) and "
                f"y_true (batch, frames, {n_bins}, 4), got y_pred {p_shape} and y_true {t_shape}; "
                "build the target with speech_dae.losses.pack_stft_target and the same n_fft."
            )
        frames = p_shape[1] if p_shape[1] is not None else t_shape[1]
        if frames is None:
            return
        samples = (frames + 1) * self.hop_length - self.n_fft
        if "sisdr" in self.terms and samples <= 0:
            raise ConfigError(
                f"the sisdr term needs more than {self.n_fft // self.hop_length - 1} frames for "
                f"n_fft={self.n_fft}, hop_length={self.hop_length}, got {frames}; use longer segments."
            )
        longest = max(size for size, _ in MRSTFT_RESOLUTIONS)
        if "mrstft" in self.terms and samples < longest:
            need = -(-(longest + self.n_fft) // self.hop_length) - 1
            raise ConfigError(
                f"the mrstft term needs a waveform of at least {longest} samples (its largest FFT), i.e. at "
                f"least {need} frames for n_fft={self.n_fft}, hop_length={self.hop_length}; got {frames} frames "
                f"({max(samples, 0)} samples); use longer segments."
            )

    def call(self, y_true, y_pred):
        """Per-example weighted loss, shape ``(batch,)``, float32 (see class docstring)."""
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        self._check_shapes(y_true, y_pred)
        waves = None
        total = None
        for term, weight in zip(self.terms, self.weights):
            if term == "cmse":
                value = compressed_mse(y_pred, y_true, self.compress)
            elif term == "ccmse":
                value = compressed_complex_mse(y_pred, y_true, self.compress)
            else:
                if waves is None:
                    waves = masked_waveforms(y_pred, y_true, self.n_fft, self.hop_length, self.window)
                value = _neg_si_sdr_of(*waves) if term == "sisdr" else _mrstft_of(*waves)
            value = weight * value
            total = value if total is None else total + value
        return total

    def get_config(self) -> dict:
        """Constructor arguments (JSON-serialisable) that rebuild this loss."""
        config = super().get_config()
        config.update(
            {
                "terms": list(self.terms),
                "weights": list(self.weights),
                "n_fft": self.n_fft,
                "hop_length": self.hop_length,
                "window": self.window,
                "compress": self.compress,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="speech_dae")
class PooledSISDR(keras.metrics.Metric):
    """SI-SDR of all the segments seen, pooled by energy, in dB: a validation metric for every loss.

    Per segment, the waveforms of the masked estimate and of the clean speech
    (:func:`masked_waveforms`, the inverse STFT of the losses) give the target
    energy ``||alpha s||**2`` and the error energy ``||alpha s - e||**2`` of
    the SI-SDR (:func:`si_sdr_energies`: zero-mean signals, as
    :func:`speech_dae.metrics.si_sdr`). Both are summed over every segment
    since the last reset (Keras resets metrics at every epoch and before
    validation) and the result is ``10 log10((sum target + eps) / (sum error +
    eps))`` with ``eps`` = :data:`SISDR_EPS`. Pooling the energies, rather
    than averaging per-segment dB values, keeps near-silent segments (whose
    SI-SDR is meaningless and can be hugely negative) from dominating; a
    segment weighs by its speech energy. For one segment it is the segment's
    SI-SDR (Le Roux et al. 2019).

    Parameters
    ----------
    n_fft, hop_length : int
        Framing of the STFT in ``y_true``, in samples.
    window : {"hann", "hamming"}
        Window of the STFT in ``y_true``.
    name : str
        Metric name, default ``"si_sdr"`` (``val_si_sdr`` on validation data).
    dtype
        As for :class:`keras.metrics.Metric`.

    Notes
    -----
    ``update_state(y_true, y_pred, sample_weight=None)``: ``y_true`` float32
    ``(batch, frames, n_bins, 4)`` from :func:`pack_stft_target`, ``y_pred``
    float32 ``(batch, frames, n_bins)`` mask; an optional ``(batch,)``
    ``sample_weight`` scales each segment's energies. ``result()``: float32
    scalar, dB (higher is better). The sums are metric variables with
    ``aggregation="sum"``, so replicas of a distributed run add up.

    Raises
    ------
    ConfigError
        For bad framing or window (as :class:`SpectralLoss`).
    """

    def __init__(self, n_fft=512, hop_length=128, window="hann", name="si_sdr", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.n_fft = _positive_int(n_fft, "n_fft")
        self.hop_length = _positive_int(hop_length, "hop_length")
        if self.hop_length > self.n_fft:
            raise ConfigError(f"hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft}).")
        if window not in WINDOWS:
            raise ConfigError(f"window must be one of {list(WINDOWS)}, got {window!r}.")
        self.window = window
        self.target_energy = self.add_variable(shape=(), initializer="zeros", aggregation="sum", name="target")
        self.error_energy = self.add_variable(shape=(), initializer="zeros", aggregation="sum", name="error")

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add the target and error energies of the batch's segments (see class docstring)."""
        waves = masked_waveforms(y_pred, y_true, self.n_fft, self.hop_length, self.window)
        target, error = si_sdr_energies(*waves)
        if sample_weight is not None:
            w = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
            target, error = target * w, error * w
        self.target_energy.assign_add(ops.cast(ops.sum(target), self.dtype))
        self.error_energy.assign_add(ops.cast(ops.sum(error), self.dtype))

    def result(self):
        """Pooled SI-SDR in dB, float32 scalar."""
        return _db((self.target_energy + SISDR_EPS) / (self.error_energy + SISDR_EPS))

    def get_config(self) -> dict:
        """Constructor arguments (JSON-serialisable) that rebuild this metric."""
        return {**super().get_config(), "n_fft": self.n_fft, "hop_length": self.hop_length, "window": self.window}
