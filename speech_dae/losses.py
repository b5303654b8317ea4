"""Training losses closer to what is heard and scored: compressed magnitude and SI-SDR.

The point-wise ``mse``/``mae`` losses compare network outputs with targets
value by value. The losses here instead judge the *enhanced signal* that a
magnitude mask produces on the noisy STFT, in two ways that follow what the
evaluation measures:

- ``cmse``: mean squared error between power-law compressed magnitudes,
  ``(|E|**c - |S|**c)**2`` with ``c = 0.3``. The compression (close to the
  loudness law of hearing) stops loud low-frequency bins from dominating the
  loss. Source: S. Braun and I. Tashev, "A consolidated view of loss
  functions for supervised deep learning-based speech enhancement", TSP 2021
  (they find ``c = 0.3`` best).
- ``sisdr``: negative scale-invariant SDR, in dB, between the waveforms of the
  estimate and of the clean speech, both brought back to the time domain by
  the same inverse STFT (:func:`istft_frames`). Source: J. Le Roux, S. Wisdom,
  H. Erdogan and J. R. Hershey, "SDR - half-baked or well done?", ICASSP 2019.
  The definition matches :func:`speech_dae.metrics.si_sdr` (both signals made
  zero-mean first), so the term is exactly minus the evaluation metric on the
  waveform interior, up to the ``eps`` regularisation below.

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
``training.loss`` (``"cmse+sisdr"``) and ``training.loss_weights`` into
``(terms, weights)``; stage 03 builds :class:`SpectralLoss` from them.

Only ``keras.ops`` is used in the loss, so it runs under the TensorFlow, JAX
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
    "pack_stft_target",
    "istft_frames",
    "compressed_mse",
    "neg_si_sdr",
    "SpectralLoss",
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


def _zero_mean(x):
    return x - ops.mean(x, axis=-1, keepdims=True)


def neg_si_sdr(mask, y_true, n_fft: int, hop_length: int, window: str = "hann", eps: float = SISDR_EPS):
    """Negative SI-SDR (dB) of the masked estimate's waveform, per example.

    ``e = istft_frames(mask * Y)`` and ``s = istft_frames(S)`` are made
    zero-mean; ``alpha = <e, s> / (||s||**2 + eps)``, ``target = alpha s``,
    ``noise = e - target`` and ``SI-SDR = 10 log10((||target||**2 + eps) /
    (||noise||**2 + eps))`` (Le Roux et al. 2019, with ``eps`` added).

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
    y_true = ops.stop_gradient(ops.cast(y_true, "float32"))
    mask = ops.cast(mask, "float32")
    s = _zero_mean(istft_frames(y_true[..., 0], y_true[..., 1], n_fft, hop_length, window))
    e = _zero_mean(istft_frames(mask * y_true[..., 2], mask * y_true[..., 3], n_fft, hop_length, window))
    alpha = ops.sum(e * s, axis=-1, keepdims=True) / (ops.sum(ops.square(s), axis=-1, keepdims=True) + eps)
    target = alpha * s
    noise = e - target
    ratio = (ops.sum(ops.square(target), axis=-1) + eps) / (ops.sum(ops.square(noise), axis=-1) + eps)
    return -10.0 * ops.log(ratio) / math.log(10.0)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer number of samples, got {value!r}.")
    return int(value)


@keras.saving.register_keras_serializable(package="speech_dae")
class SpectralLoss(keras.losses.Loss):
    """Weighted sum of compressed-magnitude MSE and negative SI-SDR of a masked STFT.

    ``loss = sum_i weights[i] * term_i`` per example, with the terms
    ``"cmse"`` (:func:`compressed_mse`, Braun & Tashev 2021) and ``"sisdr"``
    (:func:`neg_si_sdr`, Le Roux et al. 2019, in dB). The two have different
    units and scales (cmse is O(0.01-1), -SI-SDR O(-30..+30) dB); choose the
    weights accordingly.

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
    n_fft / hop_length - 1`` (at least 4 frames for 512/128).

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
        if "sisdr" in self.terms and frames is not None and (frames + 1) * self.hop_length <= self.n_fft:
            raise ConfigError(
                f"the sisdr term needs more than {self.n_fft // self.hop_length - 1} frames for "
                f"n_fft={self.n_fft}, hop_length={self.hop_length}, got {frames}; use longer segments."
            )

    def call(self, y_true, y_pred):
        """Per-example weighted loss, shape ``(batch,)``, float32 (see class docstring)."""
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        self._check_shapes(y_true, y_pred)
        total = None
        for term, weight in zip(self.terms, self.weights):
            if term == "cmse":
                value = compressed_mse(y_pred, y_true, self.compress)
            else:
                value = neg_si_sdr(y_pred, y_true, self.n_fft, self.hop_length, self.window)
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
