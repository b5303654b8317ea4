"""Degradations beyond additive noise, for restoration training and scoring (issue 19).

Each function takes a float waveform (any shape; samples on the last axis for the per-signal
statistics, values in [-1, 1] where full scale matters) and returns a new float32 array of the same
shape; the input is never modified. Parameters are checked first and a bad one raises
:class:`~speech_dae.errors.ConfigError` with one line that says what was wrong and what to use.

- :func:`clip`: hard or soft (tanh) clipping at a level relative to the signal's peak, or at the level
  that clips a chosen share of the samples (:func:`clip_level_for_ratio`);
- :func:`quantize`: uniform mid-tread quantisation to ``bits`` bits over [-1, 1), with or without
  triangular (TPDF) dither of +-1 LSB; a full-scale sine keeps an SNR of about ``6.02 bits + 1.76`` dB;
- :func:`mu_law`: ITU-T G.711-style mu-law companding (``mu = 2 ** bits - 1``) through ``bits`` bits, whose
  SNR depends far less on the level than plain quantisation's;
- :func:`bandlimit`: zero-phase Chebyshev II low-pass (and optional high-pass) filtering, nothing outside
  the band (``lowpass_sos``, also the ``bandlimit`` augmentation's filter); :func:`telephone`: the
  300-3400 Hz band through an 8 kHz sample rate and back.

Reverberation, the remaining degradation of issue 19, exists as an augmentation
(:mod:`speech_dae.training.augment`) and is not yet exposed here.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.signal

from .audio import check_sample_rate, resample
from .errors import ConfigError

__all__ = ["bandlimit", "clip", "clip_level_for_ratio", "lowpass_sos", "mu_law", "quantize", "telephone"]

#: Telephone band (ITU-T G.712): pass band in Hz, and the narrow-band sample rate it travels at.
TELEPHONE_BAND = (300.0, 3400.0)
TELEPHONE_RATE = 8000


def _signal(y) -> np.ndarray:
    x = np.asarray(y)
    if x.dtype.kind != "f" or x.size == 0:
        raise ConfigError(
            f"a degradation takes a non-empty float waveform in [-1, 1], got dtype {x.dtype} and shape {x.shape} "
            "(convert PCM first, e.g. int16 / 32768)"
        )
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise ConfigError("the waveform holds NaN or Inf samples; nothing to degrade")
    return x


def _fraction(value, name: str, example: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not 0.0 < v < 1.0:
        raise ConfigError(f"{name}={value!r} must be a number strictly between 0 and 1, e.g. {example}")
    return v


def _peak(x: np.ndarray) -> np.ndarray:
    """``max |x|`` over the last axis; ConfigError for a silent signal."""
    peak = np.abs(x).max(axis=-1)
    if np.any(peak <= 0):
        raise ConfigError("a silent signal cannot be clipped (its peak is 0)")
    return peak


def clip_level_for_ratio(y, ratio: float) -> np.ndarray:
    """The clip level, relative to each signal's peak, that clips ``ratio`` of its samples.

    Parameters
    ----------
    y : array_like [shape=(..., n_samples)], float
    ratio : float in (0, 1)
        Share of the samples whose magnitude should exceed the level (e.g. 0.01 for 1 %).

    Returns
    -------
    np.ndarray [shape=(...)], float32
        Levels in (0, 1]: the ``1 - ratio`` quantile of ``|y|`` over the last axis, divided by the peak.

    Raises
    ------
    ConfigError
        For ``ratio`` outside (0, 1), an empty or non-finite waveform, or a silent signal (no peak).
    """
    x = _signal(y)
    r = _fraction(ratio, "clip ratio", "0.01 (1 % of the samples clipped)")
    return (np.quantile(np.abs(x), 1.0 - r, axis=-1) / _peak(x)).astype(np.float32)


def clip(y, level: float | None = None, *, ratio: float | None = None, soft: bool = False) -> np.ndarray:
    """Clip a waveform at ``level`` times its peak (or at the level that clips ``ratio`` of its samples).

    Hard clipping sets every sample beyond the threshold ``t = level * max|y|`` to ``+-t``. Soft clipping
    is ``t * tanh(y / t)``: smooth, every sample a little compressed, and never beyond ``t``.

    Parameters
    ----------
    y : array_like [shape=(..., n_samples)], float
        Waveform(s); each signal on the last axis gets its own threshold.
    level : float in (0, 1), optional
        Clip level relative to the signal's peak (0.5: 6 dB below it). Give ``level`` or ``ratio``.
    ratio : float in (0, 1), optional
        Share of the samples to clip; the level comes from :func:`clip_level_for_ratio`.
    soft : bool
        tanh soft clipping instead of hard clipping.

    Returns
    -------
    np.ndarray, float32, the shape of ``y``

    Raises
    ------
    ConfigError
        Neither or both of ``level`` and ``ratio``; either outside (0, 1) (a level >= 1 would clip
        nothing); an empty, non-finite or silent waveform.
    """
    if (level is None) == (ratio is None):
        raise ConfigError("clip takes a level (share of the peak, e.g. 0.5) or a ratio (share of samples), not both")
    x = _signal(y)
    if ratio is not None:
        rel = clip_level_for_ratio(x, ratio)
    else:
        rel = np.float32(_fraction(level, "clip level", "0.5 (clip 6 dB below the peak)"))
    t = (np.asarray(rel, np.float32) * _peak(x))[..., None]
    if soft:
        return (t * np.tanh(x / t)).astype(np.float32)
    return np.clip(x, -t, t).astype(np.float32)


def _bits(bits, low: int = 1, high: int = 24) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not low <= bits <= high:
        raise ConfigError(f"bits={bits!r} must be a whole number from {low} to {high}, e.g. 8")
    return int(bits)


def quantize(y, bits: int, *, dither: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
    """Uniform mid-tread quantisation to ``bits`` bits over [-1, 1), as PCM at that depth.

    The step is ``2 / 2 ** bits``; values are rounded to the nearest step and held inside
    ``[-1, 1 - step]`` (what a ``bits``-bit PCM file can store). With ``dither``, triangular (TPDF)
    noise of +-1 step is added before rounding, which turns the distortion into steady white noise.
    A full-scale sine keeps an SNR of about ``6.02 * bits + 1.76`` dB without dither.

    Parameters
    ----------
    y : array_like, float
        Waveform(s) in [-1, 1].
    bits : int in 1..24
    dither : bool
        Add TPDF dither before rounding.
    rng : numpy.random.Generator, optional
        Source of the dither (default: a fresh ``default_rng()``).

    Returns
    -------
    np.ndarray, float32, the shape of ``y``

    Raises
    ------
    ConfigError
        For ``bits`` outside 1..24 (0 bits stores nothing) or an empty or non-finite waveform.
    """
    n = _bits(bits)
    x = _signal(y).astype(np.float64)
    step = 2.0 / 2**n
    if dither:
        rng = np.random.default_rng() if rng is None else rng
        x = x + (rng.random(x.shape) - rng.random(x.shape)) * step
    return np.clip(np.round(x / step) * step, -1.0, 1.0 - step).astype(np.float32)


def mu_law(y, bits: int = 8) -> np.ndarray:
    """Mu-law companding through ``bits`` bits: compress, quantise, expand (ITU-T G.711's curve, continuous).

    ``F(x) = sign(x) ln(1 + mu |x|) / ln(1 + mu)`` with ``mu = 2 ** bits - 1`` (255 at 8 bits), then
    :func:`quantize` to ``bits`` bits, then the inverse ``sign(v) ((1 + mu) ** |v| - 1) / mu``. Quiet
    samples get fine steps and loud ones coarse steps, so the SNR varies far less with the level than
    plain quantisation's.

    Parameters
    ----------
    y : array_like, float
        Waveform(s) in [-1, 1] (values beyond are clipped first).
    bits : int in 2..16

    Returns
    -------
    np.ndarray, float32, the shape of ``y``

    Raises
    ------
    ConfigError
        For ``bits`` outside 2..16 or an empty or non-finite waveform.
    """
    n = _bits(bits, 2, 16)
    x = np.clip(_signal(y).astype(np.float64), -1.0, 1.0)
    mu = 2.0**n - 1.0
    v = quantize(np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu), n).astype(np.float64)
    return (np.sign(v) * np.expm1(np.abs(v) * np.log1p(mu)) / mu).astype(np.float32)


@lru_cache(maxsize=512)
def _cheby2(edge_hz: float, sample_rate: int, btype: str) -> np.ndarray:
    return scipy.signal.cheby2(10, 60, edge_hz, btype=btype, fs=sample_rate, output="sos")


def lowpass_sos(cutoff_hz: float, sample_rate: int) -> np.ndarray:
    """A 10th-order Chebyshev type II low-pass whose stop band (>= 60 dB down) starts at ``cutoff_hz``.

    The pass band is flat (its -3 dB point lies about 9 % below the cut-off). Designs are
    cached, so pass cut-offs on a grid.

    Parameters
    ----------
    cutoff_hz : float
        Start of the stop band in Hz, in (0, sample_rate / 2).
    sample_rate : int
        In Hz.

    Returns
    -------
    np.ndarray [shape=(5, 6)], float64
        Second-order sections.
    """
    return _cheby2(float(cutoff_hz), int(sample_rate), "lowpass").copy()


def bandlimit(y, sample_rate: int, high_hz: float, *, low_hz: float | None = None) -> np.ndarray:
    """Remove everything above ``high_hz`` (and below ``low_hz``), zero-phase, so the result stays aligned.

    The 10th-order Chebyshev II filters of :func:`lowpass_sos` (a high-pass of the same kind for
    ``low_hz``) run forwards and backwards (``scipy.signal.sosfiltfilt``): no delay, and the stop band,
    which starts at the edge, is at least 120 dB down; the pass band is flat up to about 9 % inside it.

    Parameters
    ----------
    y : array_like [shape=(..., n_samples)], float
    sample_rate : int
        In Hz.
    high_hz : float
        Upper edge in Hz, below ``sample_rate / 2``.
    low_hz : float, optional
        Lower edge in Hz, in (0, high_hz); None: low-pass only.

    Returns
    -------
    np.ndarray, float32, the shape of ``y``

    Raises
    ------
    ConfigError
        For an edge at or above the Nyquist frequency, a non-positive edge, ``low_hz >= high_hz``, a sample
        rate that is not a positive whole number of Hz, or an empty or non-finite waveform.
    """
    x = _signal(y)
    sr = check_sample_rate(sample_rate)
    nyquist = sr / 2
    try:
        high = float(high_hz)
        low = None if low_hz is None else float(low_hz)
    except (TypeError, ValueError):
        raise ConfigError(f"band edges must be numbers of Hz, got high {high_hz!r} and low {low_hz!r}") from None
    if not 0 < high < nyquist:
        raise ConfigError(f"band edge {high_hz!r} Hz must lie between 0 and the Nyquist frequency ({nyquist:g} Hz)")
    if low is not None and not 0 < low < high:
        raise ConfigError(f"low band edge {low_hz!r} Hz must lie between 0 and the high edge ({high:g} Hz)")
    sos = lowpass_sos(high, sr)
    if low is not None:
        sos = np.concatenate([sos, _cheby2(low, sr, "highpass")])
    return scipy.signal.sosfiltfilt(sos, x.astype(np.float64), axis=-1).astype(np.float32)


def telephone(y, sample_rate: int) -> np.ndarray:
    """Narrow-band telephone speech: the 300-3400 Hz band (:func:`bandlimit`), through 8 kHz and back.

    Parameters
    ----------
    y : array_like [shape=(n_samples,)], float
    sample_rate : int
        In Hz, above 8,000 (the result has the input's rate and length).

    Returns
    -------
    np.ndarray [shape=(n_samples,)], float32

    Raises
    ------
    ConfigError
        For a multi-channel input, a sample rate of 8 kHz or less, or an empty or non-finite waveform.
    """
    x = _signal(y)
    if x.ndim != 1:
        raise ConfigError(f"telephone takes one signal of shape (n_samples,), got shape {x.shape}")
    sr = check_sample_rate(sample_rate)
    if sr <= TELEPHONE_RATE:
        raise ConfigError(f"telephone needs a sample rate above {TELEPHONE_RATE} Hz, got {sample_rate}")
    low, high = TELEPHONE_BAND
    out = resample(resample(bandlimit(x, sr, high, low_hz=low), sr, TELEPHONE_RATE), TELEPHONE_RATE, sr)
    fixed = np.zeros(x.size, np.float32)
    fixed[: min(out.size, x.size)] = out[: x.size]
    return fixed
