"""Classical single-channel speech-enhancement baselines.

These need only the noisy waveform (no clean reference, no training) and give
the reference points a denoising autoencoder has to beat:

==============================  ==============================================
name                            method
==============================  ==============================================
``spectral_subtraction``        power/magnitude spectral subtraction, Boll
                                (1979) with Berouti et al. (1979)
                                over-subtraction and spectral floor
``wiener``                      Wiener gain with the decision-directed a
                                priori SNR of Ephraim & Malah (1984)
``noisereduce_stationary``      spectral gating, ``noisereduce`` (stationary)
``noisereduce_nonstationary``   spectral gating, ``noisereduce`` (non-stationary)
==============================  ==============================================

Noise estimation (spectral subtraction and Wiener)
--------------------------------------------------
The noise power spectral density is estimated blindly from the noisy signal
itself by :func:`estimate_noise_psd`: per frequency bin, a low percentile
(default the 10th) of the periodogram ``|Y(k, l)|**2`` over all frames,
divided by ``-ln(1 - p/100)``. For a bin that holds only noise in at least
``p`` % of the frames, the periodogram of Gaussian noise is exponentially
distributed, so this division removes the bias of the percentile exactly
(the same idea as the bias compensation of minimum statistics, Martin 2001).
Frames of digital silence (more than 120 dB below the loudest frame) are
left out so that zero-padded files do not drive the estimate to zero. The
estimate is constant over the utterance, i.e. it assumes stationary noise;
use ``noisereduce_nonstationary`` for noise whose level changes.

Peers
-----
:func:`run_baseline` also runs the open neural denoisers of
:mod:`speech_dae.peers`, ``deepfilternet3`` (DeepFilterNet3) and ``rnnoise``
(RNNoise), which need the optional ``peers`` extra (``pip install -e
'.[peers]'``). They are listed in :data:`speech_dae.peers.PEERS`, not in
:data:`BASELINES`, which holds the classical baselines only (those always
run).

Every baseline takes a mono float waveform and returns a finite ``float32``
array of exactly the same length. This module does not import TensorFlow.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import numpy as np

from .audio import as_waveform, check_sample_rate
from .errors import AudioError, ConfigError
from .peers import PEERS

__all__ = [
    "BASELINES",
    "run_baseline",
    "spectral_subtraction",
    "wiener_dd",
    "noisereduce_stationary",
    "noisereduce_nonstationary",
    "estimate_noise_psd",
]

logger = logging.getLogger(__name__)

#: Frames whose energy is this far below the loudest frame count as digital silence.
_SILENCE_REL_ENERGY = 1e-12
#: Smallest number of samples noisereduce's stationary STFT (n_fft=1024) accepts.
_NOISEREDUCE_MIN_SAMPLES = 1024


# --------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------
def _check_stft(n_fft, hop_length) -> None:
    for name, value in (("n_fft", n_fft), ("hop_length", hop_length)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"{name} must be an integer number of samples, got {value!r}.")
    if n_fft < 2:
        raise ConfigError(f"n_fft must be >= 2 samples, got {n_fft}; 512 (32 ms at 16 kHz) is typical.")
    if not 1 <= hop_length < n_fft:
        raise ConfigError(
            f"hop_length must satisfy 1 <= hop_length < n_fft={n_fft} so that frames overlap "
            f"and the inverse STFT can reconstruct the signal, got {hop_length}; n_fft // 4 is typical."
        )


def _check_range(name, value, lo, hi, *, lo_open=False, hi_open=False, hint="") -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}. {hint}".rstrip()) from None
    ok = np.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ConfigError(f"{name} must lie in {interval}, got {value!r}. {hint}".rstrip())
    return v


def _finish(out: np.ndarray, n: int, name: str) -> np.ndarray:
    """Crop/pad to ``n`` samples, cast to float32, and guarantee finiteness."""
    out = np.asarray(out, dtype=np.float64).reshape(-1)
    if out.size != n:
        out = out[:n] if out.size > n else np.pad(out, (0, n - out.size))
    bad = ~np.isfinite(out)
    if bad.any():
        logger.warning("%s: %d non-finite output samples replaced by 0", name, int(bad.sum()))
        out = np.where(bad, 0.0, out)
    return out.astype(np.float32)


# --------------------------------------------------------------------------
# noise estimation
# --------------------------------------------------------------------------
def estimate_noise_psd(power, *, percentile: float = 10.0) -> np.ndarray:
    """Blind, bias-compensated noise PSD from a low percentile of the periodogram.

    For every frequency bin, the ``percentile``-th percentile of the noisy
    periodogram over time is taken and divided by ``-ln(1 - percentile/100)``,
    the same percentile of a unit-mean exponential distribution (the
    distribution of the periodogram of Gaussian noise). The result is an
    unbiased noise-power estimate for bins that contain noise only in at least
    ``percentile`` % of the frames; the bias-compensation idea follows Martin
    (2001), "Noise power spectral density estimation based on optimal
    smoothing and minimum statistics", IEEE TSAP 9(5). Frames more than
    120 dB below the loudest one (digital silence, zero padding) are ignored.

    Parameters
    ----------
    power : np.ndarray [shape=(n_bins, n_frames)], float, >= 0
        Power spectrogram ``|STFT|**2`` of the noisy signal.
    percentile : float in (0, 100)
        Percentile over frames; lower is more robust to speech activity but
        noisier.

    Returns
    -------
    noise_psd : np.ndarray [shape=(n_bins, 1)], float64, >= 0
        Noise power per bin (same units as ``power``), broadcastable against
        ``power``. All zeros if every frame is silent.

    Raises
    ------
    AudioError
        If ``power`` is not a 2-D non-empty array of finite non-negative values.
    ConfigError
        If ``percentile`` is not in (0, 100).
    """
    p = _check_range(
        "noise_percentile",
        percentile,
        0.0,
        100.0,
        lo_open=True,
        hi_open=True,
        hint="Use a low value such as 10 (the share of frames assumed to hold noise only).",
    )
    power = np.asarray(power, dtype=np.float64)
    if power.ndim != 2 or power.size == 0:
        raise AudioError(f"power must be a non-empty (n_bins, n_frames) spectrogram, got shape {power.shape}.")
    if not np.all(np.isfinite(power)) or np.any(power < 0):
        raise AudioError("power must contain finite, non-negative values (a |STFT|**2 spectrogram).")
    frame_energy = power.sum(axis=0)
    active = frame_energy > _SILENCE_REL_ENERGY * frame_energy.max()
    if not active.any():
        return np.zeros((power.shape[0], 1))
    q = np.percentile(power[:, active], p, axis=1, keepdims=True)
    return q / -np.log1p(-p / 100.0)


def _stft(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    import librosa  # local import: keeps module import cheap

    if y.size < n_fft:
        logger.debug("signal of %d samples is shorter than n_fft=%d; it is zero-padded", y.size, n_fft)
    with warnings.catch_warnings():  # librosa warns that n_fft > len(y); zero padding handles it
        warnings.filterwarnings("ignore", message="n_fft=.*is too large", category=UserWarning)
        return librosa.stft(y, n_fft=n_fft, hop_length=hop_length, window="hann", center=True, pad_mode="constant")


def _istft(spec: np.ndarray, hop_length: int, n_fft: int, length: int) -> np.ndarray:
    import librosa

    return librosa.istft(spec, hop_length=hop_length, n_fft=n_fft, window="hann", center=True, length=length)


def _floor_psd(noise_psd: np.ndarray) -> np.ndarray:
    """Keep the noise PSD strictly positive (relative floor) so gains are well defined."""
    floor = max(float(noise_psd.max()) * 1e-12, np.finfo(np.float64).tiny)
    return np.maximum(noise_psd, floor)


# --------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------
def spectral_subtraction(
    y,
    *,
    sample_rate: int,
    n_fft: int = 512,
    hop_length: int = 128,
    over_subtraction: float = 2.0,
    floor: float = 0.02,
    power: float = 2.0,
    noise_percentile: float = 10.0,
) -> np.ndarray:
    """Spectral subtraction with over-subtraction and a spectral floor.

    In the ``power`` domain (``power=2``: power subtraction, ``power=1``:
    magnitude subtraction, Boll 1979) the noise estimate ``N = lambda**(power/2)``
    is subtracted ``over_subtraction`` times, and the result is kept above
    ``floor * N`` (Berouti, Schwartz & Makhoul 1979):
    ``|S|**power = max(|Y|**power - over_subtraction * N, floor * N)``.
    The enhanced magnitude is applied as a gain ``<= 1`` to the noisy STFT
    (noisy phase), and the signal is rebuilt with ``librosa.istft``. Unlike
    Berouti et al., the over-subtraction factor is fixed rather than a
    function of the frame SNR. The noise PSD ``lambda`` comes from
    :func:`estimate_noise_psd`.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)], float, mono
        Noisy waveform.
    sample_rate : int > 0 [Hz]
        Sample rate of ``y`` (validated; the method itself is rate-agnostic).
    n_fft : int >= 2 [samples]
        STFT frame (Hann window) length; 512 is 32 ms at 16 kHz.
    hop_length : int, 1 <= hop_length < n_fft [samples]
        STFT hop.
    over_subtraction : float >= 0
        Over-subtraction factor alpha (1 = plain subtraction; Berouti uses 3-6
        at low SNR).
    floor : float in [0, 1]
        Spectral floor beta, relative to the noise estimate.
    power : float > 0
        Exponent of the spectral domain the subtraction works in.
    noise_percentile : float in (0, 100)
        Percentile used by :func:`estimate_noise_psd`.

    Returns
    -------
    np.ndarray [shape=(n_samples,)], float32
        Enhanced waveform, same length as ``y``, finite.

    Raises
    ------
    AudioError
        If ``y`` is not a non-empty, finite, 1-D float array.
    ConfigError
        If a parameter is out of its range.

    References
    ----------
    S. F. Boll (1979), "Suppression of acoustic noise in speech using spectral
    subtraction", IEEE TASSP 27(2). M. Berouti, R. Schwartz & J. Makhoul
    (1979), "Enhancement of speech corrupted by acoustic noise", ICASSP.
    """
    x = as_waveform(y, name="y")
    check_sample_rate(sample_rate)
    _check_stft(n_fft, hop_length)
    alpha = _check_range("over_subtraction", over_subtraction, 0.0, np.inf, hi_open=True, hint="Typical: 1-6.")
    beta = _check_range("floor", floor, 0.0, 1.0, hint="Typical: 0.002-0.1.")
    gamma = _check_range(
        "power", power, 0.0, np.inf, lo_open=True, hi_open=True, hint="Use 2 (power) or 1 (magnitude)."
    )
    if not np.any(x):
        return np.zeros(x.size, dtype=np.float32)

    spec = _stft(x, n_fft, hop_length)
    periodogram = np.abs(spec) ** 2
    noise = _floor_psd(estimate_noise_psd(periodogram, percentile=noise_percentile)) ** (gamma / 2.0)
    noisy = periodogram ** (gamma / 2.0)
    clean = np.maximum(noisy - alpha * noise, beta * noise)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(noisy > 0, (clean / noisy) ** (1.0 / gamma), 0.0)
    gain = np.minimum(gain, 1.0)
    out = _istft(gain * spec, hop_length, n_fft, x.size)
    return _finish(out, x.size, "spectral_subtraction")


def wiener_dd(
    y,
    *,
    sample_rate: int,
    n_fft: int = 512,
    hop_length: int = 128,
    alpha: float = 0.98,
    xi_min_db: float = -25.0,
    noise_percentile: float = 10.0,
) -> np.ndarray:
    """Wiener filter with the decision-directed a priori SNR estimate.

    With noise PSD ``lambda`` (from :func:`estimate_noise_psd`) and a
    posteriori SNR ``gamma(k, l) = |Y(k, l)|**2 / lambda(k)``, the a priori
    SNR follows the decision-directed rule of Ephraim & Malah (1984)::

        xi(k, l) = alpha * |S(k, l-1)|**2 / lambda(k) + (1 - alpha) * max(gamma(k, l) - 1, 0)
        xi(k, l) = max(xi(k, l), xi_min)
        G(k, l)  = xi / (1 + xi),      S(k, l) = G(k, l) Y(k, l)

    with ``xi(k, 0) = alpha + (1 - alpha) max(gamma(k, 0) - 1, 0)`` (as in
    Loizou 2013). The recursion runs frame by frame and is vectorised over
    bins; the noisy phase is kept and ``librosa.istft`` rebuilds the signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)], float, mono
        Noisy waveform.
    sample_rate : int > 0 [Hz]
        Sample rate of ``y`` (validated; the method itself is rate-agnostic).
    n_fft : int >= 2 [samples]
        STFT frame (Hann window) length.
    hop_length : int, 1 <= hop_length < n_fft [samples]
        STFT hop.
    alpha : float in [0, 1)
        Decision-directed smoothing weight (0.98 in Ephraim & Malah).
    xi_min_db : float [dB]
        Lower limit of the a priori SNR; limits the attenuation to about
        ``xi_min_db`` and the musical noise (Cappe 1994).
    noise_percentile : float in (0, 100)
        Percentile used by :func:`estimate_noise_psd`.

    Returns
    -------
    np.ndarray [shape=(n_samples,)], float32
        Enhanced waveform, same length as ``y``, finite.

    Raises
    ------
    AudioError
        If ``y`` is not a non-empty, finite, 1-D float array.
    ConfigError
        If a parameter is out of its range.

    References
    ----------
    Y. Ephraim & D. Malah (1984), "Speech enhancement using a minimum
    mean-square error short-time spectral amplitude estimator", IEEE TASSP
    32(6). O. Cappe (1994), "Elimination of the musical noise phenomenon with
    the Ephraim and Malah noise suppressor", IEEE TSAP 2(2). P. C. Loizou
    (2013), *Speech Enhancement: Theory and Practice*, 2nd ed.
    """
    x = as_waveform(y, name="y")
    check_sample_rate(sample_rate)
    _check_stft(n_fft, hop_length)
    a = _check_range("alpha", alpha, 0.0, 1.0, hi_open=True, hint="Typical: 0.98.")
    xi_db = _check_range("xi_min_db", xi_min_db, -np.inf, np.inf, lo_open=True, hi_open=True, hint="Typical: -25.")
    xi_min = 10.0 ** (xi_db / 10.0)
    if not np.any(x):
        return np.zeros(x.size, dtype=np.float32)

    spec = _stft(x, n_fft, hop_length)
    periodogram = np.abs(spec) ** 2
    noise = _floor_psd(estimate_noise_psd(periodogram, percentile=noise_percentile))[:, 0]
    post_snr = periodogram / noise[:, None]  # gamma, shape (n_bins, n_frames)
    ml_snr = np.maximum(post_snr - 1.0, 0.0)  # maximum-likelihood a priori SNR
    gain = np.empty_like(post_snr)
    prev_clean_snr = np.ones(post_snr.shape[0])  # |S(l-1)|^2 / lambda; 1 gives xi(0) = alpha + ...
    for t in range(post_snr.shape[1]):
        xi = np.maximum(a * prev_clean_snr + (1.0 - a) * ml_snr[:, t], xi_min)
        g = xi / (1.0 + xi)
        gain[:, t] = g
        prev_clean_snr = g * g * post_snr[:, t]
    out = _istft(gain * spec, hop_length, n_fft, x.size)
    return _finish(out, x.size, "wiener_dd")


def _noisereduce(y, sample_rate, stationary: bool, prop_decrease, name: str) -> np.ndarray:
    x = as_waveform(y, name="y")
    sr = check_sample_rate(sample_rate)
    prop = _check_range("prop_decrease", prop_decrease, 0.0, 1.0, hint="1.0 removes all the estimated noise.")
    if not np.any(x):
        return np.zeros(x.size, dtype=np.float32)
    import noisereduce  # local import: keeps module import cheap

    n = x.size
    if stationary and n < _NOISEREDUCE_MIN_SAMPLES:
        # noisereduce's stationary STFT needs one full 1024-sample frame: repeat the signal
        logger.debug("%s: %d samples < %d, tiling the signal for the STFT", name, n, _NOISEREDUCE_MIN_SAMPLES)
        x = np.pad(x, (0, _NOISEREDUCE_MIN_SAMPLES - n), mode="wrap")
    out = noisereduce.reduce_noise(y=x, sr=sr, stationary=stationary, prop_decrease=prop, n_jobs=1, use_tqdm=False)
    return _finish(out, n, name)


def noisereduce_stationary(y, *, sample_rate: int, prop_decrease: float = 1.0) -> np.ndarray:
    """Stationary spectral gating with ``noisereduce.reduce_noise(stationary=True)``.

    A per-frequency threshold (mean + 1.5 std of the dB spectrogram over the
    whole signal) gates the STFT, with a mask smoothed over 500 Hz and 50 ms
    (Sainburg, Thielk & Gentner 2020; Sainburg & Zorea 2024, ``noisereduce``).
    Runs with ``n_jobs=1``. Signals shorter than 1024 samples are tiled to
    1024 samples for the STFT and cropped back.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)], float, mono
        Noisy waveform.
    sample_rate : int > 0 [Hz]
        Sample rate of ``y``.
    prop_decrease : float in [0, 1]
        Share of the estimated noise to remove.

    Returns
    -------
    np.ndarray [shape=(n_samples,)], float32
        Enhanced waveform, same length as ``y``, finite.

    Raises
    ------
    AudioError
        If ``y`` is not a non-empty, finite, 1-D float array.
    ConfigError
        If ``sample_rate`` or ``prop_decrease`` is invalid.

    References
    ----------
    T. Sainburg, M. Thielk & T. Q. Gentner (2020), "Finding, visualizing, and
    quantifying latent structure across diverse animal vocal repertoires",
    PLoS Comput. Biol. 16(10); https://github.com/timsainb/noisereduce.
    """
    return _noisereduce(y, sample_rate, True, prop_decrease, "noisereduce_stationary")


def noisereduce_nonstationary(y, *, sample_rate: int, prop_decrease: float = 1.0) -> np.ndarray:
    """Non-stationary spectral gating with ``noisereduce.reduce_noise(stationary=False)``.

    The gating threshold follows a time-smoothed (2 s time constant) copy of
    the spectrogram, so slowly changing noise is tracked (Sainburg et al.
    2020, ``noisereduce``). Runs with ``n_jobs=1``.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)], float, mono
        Noisy waveform.
    sample_rate : int > 0 [Hz]
        Sample rate of ``y``.
    prop_decrease : float in [0, 1]
        Share of the estimated noise to remove.

    Returns
    -------
    np.ndarray [shape=(n_samples,)], float32
        Enhanced waveform, same length as ``y``, finite. An all-zero input
        returns zeros (noisereduce itself would return NaN).

    Raises
    ------
    AudioError
        If ``y`` is not a non-empty, finite, 1-D float array.
    ConfigError
        If ``sample_rate`` or ``prop_decrease`` is invalid.

    References
    ----------
    T. Sainburg, M. Thielk & T. Q. Gentner (2020), PLoS Comput. Biol. 16(10);
    https://github.com/timsainb/noisereduce.
    """
    return _noisereduce(y, sample_rate, False, prop_decrease, "noisereduce_nonstationary")


#: Baselines by name, each ``f(y, *, sample_rate, **options) -> float32 array``.
BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "spectral_subtraction": spectral_subtraction,
    "wiener": wiener_dd,
    "noisereduce_stationary": noisereduce_stationary,
    "noisereduce_nonstationary": noisereduce_nonstationary,
}


def run_baseline(name: str, y, *, sample_rate: int, **options) -> np.ndarray:
    """Run the baseline called ``name`` on a noisy waveform.

    Parameters
    ----------
    name : str
        A key of :data:`BASELINES` or of :data:`speech_dae.peers.PEERS`.
    y : np.ndarray [shape=(n_samples,)], float, mono
        Noisy waveform.
    sample_rate : int > 0 [Hz]
        Sample rate of ``y``.
    **options
        Keyword options of that baseline (e.g. ``over_subtraction=3.0``).

    Returns
    -------
    np.ndarray [shape=(n_samples,)], float32
        Enhanced waveform, same length as ``y``, finite.

    Raises
    ------
    ConfigError
        If ``name`` is not a known baseline (the message lists the valid
        names), or an option is invalid; :class:`speech_dae.peers.PeerUnavailable`
        if ``name`` is a peer whose optional package is missing.
    AudioError
        If ``y`` is not a non-empty, finite, 1-D float array.
    """
    try:
        func = BASELINES[name] if name in BASELINES else PEERS[name]
    except (KeyError, TypeError):
        valid = sorted(BASELINES) + sorted(PEERS)
        raise ConfigError(f"unknown baseline {name!r}; valid names are {valid}.") from None
    try:
        return func(y, sample_rate=sample_rate, **options)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise ConfigError(f"baseline {name!r} does not accept option(s) {sorted(options)}: {exc}") from None
        raise
