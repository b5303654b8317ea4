"""Objective speech-quality metrics measured against a clean reference.

Every function takes the clean ``reference`` first and the ``estimate``
(denoised or noisy signal) second, both 1-D waveforms at the same sample rate.
The two signals are passed through :func:`align` first: converted to
``float64`` and cropped to the shorter length; an empty signal or one holding
NaN/Inf raises :class:`~speech_dae.errors.AudioError`.

Summary
-------
===========  =================================================  ==============
name         metric                                              better
===========  =================================================  ==============
snr          global signal-to-noise ratio (dB)                   higher
segsnr       segmental SNR (dB), Quackenbush et al. 1988         higher
si_sdr       scale-invariant SDR (dB), Le Roux et al. 2019       higher
pesq         wide-band PESQ, ITU-T P.862.2 (MOS-LQO, 1.04-4.64)  higher
stoi         STOI, Taal et al. 2011 (0-1)                        higher
estoi        extended STOI, Jensen & Taal 2016                   higher
mse          waveform mean squared error                         lower
mae          waveform mean absolute error                        lower
rmse         waveform root mean squared error                    lower
pearson      waveform Pearson correlation (-1..1)                higher
dnsmos_sig   DNSMOS P.835 speech quality SIG (MOS, 1-5)          higher
dnsmos_bak   DNSMOS P.835 background noise BAK (MOS, 1-5)        higher
dnsmos_ovrl  DNSMOS P.835 overall quality OVRL (MOS, 1-5)        higher
===========  =================================================  ==============

The three DNSMOS scores (Reddy et al. 2022, :mod:`speech_dae.dnsmos`) are
non-intrusive: :func:`score` rates the estimate alone (after :func:`align` has
cropped it to the reference's length) and ignores the reference's samples. They
are computed once per :func:`score` call however many of the three are asked for.

A silent (all-zero) estimate of a real reference gets the worst value of each
metric that would otherwise be 0/0 (:data:`SCORE_FLOORS`: SI-SDR -50 dB, PESQ 1.0,
STOI / ESTOI / Pearson r 0), so that a system that outputs silence is averaged
over the same files as the others, not flattered by dropping them.
:func:`score` computes any subset of the metrics at once and turns the failure of a
single metric into NaN (with a logged warning), so that one odd file never
stops an evaluation run; stage 05 averages every system over the files where
no system's value is NaN, and counts the rest per metric.

This module does not import TensorFlow; it is cheap to import.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .audio import as_waveform, check_sample_rate
from .dnsmos import dnsmos
from .errors import AudioError, ConfigError

__all__ = [
    "METRICS",
    "EXTRA_METRICS",
    "SCORE_FLOORS",
    "check_pesq_rate",
    "HIGHER_IS_BETTER",
    "resolve_metric_names",
    "align",
    "snr",
    "segmental_snr",
    "si_sdr",
    "pesq_wb",
    "pesq_nb",
    "stoi",
    "estoi",
    "mse",
    "mae",
    "rmse",
    "pearson",
    "feature_mse",
    "score",
]

logger = logging.getLogger(__name__)

#: Names accepted by :func:`score`, in their default order.
METRICS: tuple = (
    "snr",
    "segsnr",
    "si_sdr",
    "pesq",
    "stoi",
    "estoi",
    "mse",
    "mae",
    "rmse",
    "pearson",
    "dnsmos_sig",
    "dnsmos_bak",
    "dnsmos_ovrl",
)

#: Names :func:`score` also accepts but does not compute by default: narrow-band PESQ (ITU-T P.862),
#: the PESQ for telephone-band (8 kHz) material, where wide-band PESQ does not apply.
EXTRA_METRICS: tuple = ("pesq_nb",)

#: For each name in :data:`METRICS` and :data:`EXTRA_METRICS`, whether a larger value means a better estimate.
HIGHER_IS_BETTER: dict = {
    "pesq_nb": True,
    "snr": True,
    "segsnr": True,
    "si_sdr": True,
    "pesq": True,
    "stoi": True,
    "estoi": True,
    "mse": False,
    "mae": False,
    "rmse": False,
    "pearson": True,
    "dnsmos_sig": True,
    "dnsmos_bak": True,
    "dnsmos_ovrl": True,
}

#: The score of a silent (all-zero) estimate of a non-silent reference, where the metric itself is 0/0
#: (SI-SDR, PESQ, STOI, ESTOI, Pearson r): the worst value, so that every system is averaged over the
#: same files instead of dropping the file where it failed. SI-SDR is also clipped to its floor.
SCORE_FLOORS: dict = {"si_sdr": -50.0, "pesq": 1.0, "pesq_nb": 1.0, "stoi": 0.0, "estoi": 0.0, "pearson": 0.0}

#: Sample rate wide-band PESQ (ITU-T P.862.2) runs at.
PESQ_SAMPLE_RATE = 16000
#: Sample rate narrow-band PESQ (ITU-T P.862) runs at.
PESQ_NB_SAMPLE_RATE = 8000

_EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------
def align(reference, estimate, *, max_mismatch: int | None = None):
    """Validate two waveforms and crop them to a common length.

    Parameters
    ----------
    reference : np.ndarray [shape=(n,)], real, mono
        Clean reference waveform. Singleton axes are squeezed away.
    estimate : np.ndarray [shape=(m,)], real, mono
        Estimated (denoised or noisy) waveform at the same sample rate.
    max_mismatch : int >= 0 or None
        Largest accepted length difference in samples. ``None`` (default)
        accepts any difference. Lengths that differ are logged at debug level.

    Returns
    -------
    reference, estimate : np.ndarray [shape=(min(n, m),)], float64
        Both signals cropped to the shorter length (the tail is dropped).

    Raises
    ------
    AudioError
        If either signal is not numeric, not 1-D after squeezing, empty,
        contains NaN or Inf samples, or if the lengths differ by more than
        ``max_mismatch`` samples.
    ConfigError
        If ``max_mismatch`` is negative or not an integer.
    """
    ref = as_waveform(reference, name="reference", allow_int=True)
    est = as_waveform(estimate, name="estimate", allow_int=True)
    if max_mismatch is not None and (
        isinstance(max_mismatch, bool) or not isinstance(max_mismatch, (int, np.integer)) or max_mismatch < 0
    ):
        raise ConfigError(
            f"max_mismatch must be a non-negative integer number of samples or None, got {max_mismatch!r}."
        )
    if ref.size != est.size:
        diff = abs(ref.size - est.size)
        if max_mismatch is not None and diff > max_mismatch:
            raise AudioError(
                f"reference has {ref.size} samples but estimate has {est.size} "
                f"(difference {diff} > max_mismatch={max_mismatch}); make sure both "
                "come from the same utterance at the same sample rate, or raise max_mismatch."
            )
        logger.debug(
            "align: reference has %d samples, estimate %d; cropping both to %d",
            ref.size,
            est.size,
            min(ref.size, est.size),
        )
        n = min(ref.size, est.size)
        ref, est = ref[:n], est[:n]
    return ref, est


def _ratio_db(num: float, den: float) -> float:
    """10 log10(num / den) with inf for den == 0 and nan for 0/0, without warnings."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(10.0 * np.log10(np.float64(num) / np.float64(den)))


# --------------------------------------------------------------------------
# core implementations on aligned float64 arrays
# --------------------------------------------------------------------------
def _snr(ref: np.ndarray, est: np.ndarray) -> float:
    return _ratio_db(np.dot(ref, ref), np.sum((ref - est) ** 2))


def _segsnr(ref, est, sample_rate, frame_ms, min_db, max_db) -> float:
    frame_len = max(1, int(round(frame_ms * 1e-3 * sample_rate)))
    n_frames = ref.size // frame_len
    if n_frames == 0:  # shorter than one frame: use the whole signal as one frame
        frame_len, n_frames = ref.size, 1
    n = n_frames * frame_len
    ref_f = ref[:n].reshape(n_frames, frame_len)
    err_f = (ref[:n] - est[:n]).reshape(n_frames, frame_len)
    sig_e = np.sum(ref_f**2, axis=1)
    err_e = np.sum(err_f**2, axis=1)
    # Loizou (2013) convention: eps keeps silent frames finite; they are clipped to min_db.
    seg = 10.0 * np.log10(sig_e / (err_e + _EPS) + _EPS)
    return float(np.mean(np.clip(seg, min_db, max_db)))


def _si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    ref = ref - ref.mean()
    est = est - est.mean()
    ref_energy = np.dot(ref, ref)
    if ref_energy > 0 and not np.any(est):
        return SCORE_FLOORS["si_sdr"]  # a silent estimate: 0/0, scored as the floor
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.dot(est, ref) / ref_energy
    target = scale * ref
    residual = est - target
    value = _ratio_db(np.dot(target, target), np.dot(residual, residual))
    return max(value, SCORE_FLOORS["si_sdr"]) if value == value else value


def check_pesq_rate(sample_rate: int) -> None:
    """Refuse wide-band PESQ on audio sampled below 16 kHz.

    Raises
    ------
    ConfigError
        For ``sample_rate < 16000``: such audio holds nothing above
        ``sample_rate / 2``, and upsampling it would score telephone-band speech as wide-band speech
        with its upper band missing. The message names ``pesq_nb``.
    """
    if sample_rate < PESQ_SAMPLE_RATE:
        raise ConfigError(
            f"wide-band PESQ (ITU-T P.862.2) needs audio sampled at 16 kHz or more; this audio is at "
            f"{sample_rate} Hz (nothing above {sample_rate // 2} Hz), and upsampling it would score it as "
            "wide-band speech with its upper band missing. Use the narrow-band metric pesq_nb (ITU-T P.862) "
            "instead, e.g. --metrics pesq_nb stoi estoi si_sdr"
        )


def _pesq(ref, est, sample_rate, mode: str = "wb") -> float:
    from pesq import pesq as _pesq_lib  # local import: keeps module import cheap

    label, name = f"pesq_{mode}", ("pesq" if mode == "wb" else "pesq_nb")  # log label, metric name
    if mode == "wb":
        check_pesq_rate(sample_rate)
    rate = PESQ_SAMPLE_RATE if mode == "wb" else PESQ_NB_SAMPLE_RATE
    if sample_rate != rate:
        import soxr

        logger.info("%s: resampling reference and estimate from %d Hz to %d Hz", label, sample_rate, rate)
        ref = soxr.resample(ref, sample_rate, rate)
        est = soxr.resample(est, sample_rate, rate)
    if not np.any(ref):
        logger.warning("%s: reference is all zeros (silence); PESQ undefined, returning NaN", label)
        return float("nan")
    if not np.any(est):
        logger.info("%s: estimate is all zeros (silence); scored as the floor %.1f", label, SCORE_FLOORS[name])
        return SCORE_FLOORS[name]
    try:
        with np.errstate(all="ignore"):
            value = _pesq_lib(rate, ref, est, mode)
    except Exception as exc:  # the pesq C library signals every failure by raising
        logger.warning(
            "%s: PESQ failed (%s: %s) on %d samples at %d Hz; returning NaN",
            label,
            type(exc).__name__,
            exc,
            ref.size,
            rate,
        )
        return float("nan")
    return float(value)


def _stoi(ref, est, sample_rate, extended) -> float:
    from pystoi import stoi as _stoi_lib  # local import: keeps module import cheap

    label = "estoi" if extended else "stoi"
    if not np.any(ref):
        logger.warning("%s: reference is all zeros (silence); %s undefined, returning NaN", label, label.upper())
        return float("nan")
    if not np.any(est):
        logger.info("%s: estimate is all zeros (silence); scored as the floor %.1f", label, SCORE_FLOORS[label])
        return SCORE_FLOORS[label]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = float(_stoi_lib(ref, est, sample_rate, extended=extended))
    except Exception as exc:
        logger.warning(
            "%s: pystoi failed (%s: %s) on %d samples at %d Hz; returning NaN",
            label,
            type(exc).__name__,
            exc,
            ref.size,
            sample_rate,
        )
        return float("nan")
    too_short = [w for w in caught if "Not enough STFT frames" in str(w.message)]
    for w in caught:  # every other warning of pystoi reaches the caller as it was raised
        if w not in too_short:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    if too_short:  # pystoi then returns a placeholder 1e-5, which would silently bias averages
        logger.warning(
            "%s: signal too short or too silent for %s (%d samples at %d Hz; "
            "needs >= 30 non-silent 25.6 ms frames); returning NaN",
            label,
            label.upper(),
            ref.size,
            sample_rate,
        )
        return float("nan")
    return value


def _mse(ref, est) -> float:
    return float(np.mean((ref - est) ** 2))


def _mae(ref, est) -> float:
    return float(np.mean(np.abs(ref - est)))


def _rmse(ref, est) -> float:
    return float(np.sqrt(_mse(ref, est)))


def _pearson(ref, est) -> float:
    r = ref - ref.mean()
    e = est - est.mean()
    den = np.sqrt(np.dot(r, r) * np.dot(e, e))
    if den == 0.0:
        if np.any(r):  # a silent (constant) estimate of a real reference: no correlation
            return SCORE_FLOORS["pearson"]
        logger.debug("pearson: constant reference, correlation undefined; returning NaN")
        return float("nan")
    return float(np.clip(np.dot(r, e) / den, -1.0, 1.0))


# --------------------------------------------------------------------------
# public metrics
# --------------------------------------------------------------------------
def snr(reference, estimate) -> float:
    """Global signal-to-noise ratio of an estimate, in dB.

    ``10 log10(sum(s**2) / sum((s - s_hat)**2))``, the classical SNR in which
    everything that differs from the reference counts as noise (so it is *not*
    invariant to a gain applied to the estimate; see :func:`si_sdr`).

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform (any consistent amplitude unit, e.g. [-1, 1]).
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Estimated waveform at the same sample rate and scale. Cropped together
        with ``reference`` to the shorter length (:func:`align`).

    Returns
    -------
    float
        SNR in dB. ``+inf`` for a perfect estimate, ``-inf`` for an all-zero
        reference with a non-zero error, ``nan`` if both are zero.

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf (see :func:`align`).
    """
    return _snr(*align(reference, estimate))


def segmental_snr(
    reference,
    estimate,
    *,
    sample_rate: int,
    frame_ms: float = 32.0,
    min_db: float = -10.0,
    max_db: float = 35.0,
) -> float:
    """Segmental SNR: mean of per-frame SNRs clipped to ``[min_db, max_db]``.

    The signals are cut into non-overlapping frames of ``frame_ms``; the
    trailing partial frame is dropped (a signal shorter than one frame is one
    frame). Each frame's SNR is ``10 log10(E_s / (E_err + eps) + eps)`` and is
    clipped so that silent frames (very low SNR) and perfect frames (infinite
    SNR) do not dominate the mean, following Quackenbush, Barnwell & Clements
    (1988), *Objective Measures of Speech Quality*, and the [-10, 35] dB limits
    of Hansen & Pellom (1998), "An effective quality evaluation protocol for
    speech enhancement algorithms", ICSLP.

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform.
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Estimated waveform at the same sample rate and scale.
    sample_rate : int > 0 [Hz]
        Sample rate of both signals.
    frame_ms : float > 0 [ms]
        Frame length.
    min_db, max_db : float [dB]
        Clipping limits of the per-frame SNR; ``min_db < max_db``.

    Returns
    -------
    float
        Segmental SNR in dB, within ``[min_db, max_db]``.

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    ConfigError
        If ``sample_rate`` or ``frame_ms`` is not positive, or ``min_db >= max_db``.
    """
    sample_rate = check_sample_rate(sample_rate)
    _check_segsnr_args(frame_ms, min_db, max_db)
    ref, est = align(reference, estimate)
    return _segsnr(ref, est, sample_rate, float(frame_ms), float(min_db), float(max_db))


def _check_segsnr_args(frame_ms, min_db, max_db) -> None:
    try:
        frame_ms, min_db, max_db = float(frame_ms), float(min_db), float(max_db)
    except (TypeError, ValueError):
        raise ConfigError(
            f"frame_ms, min_db and max_db must be numbers, got frame_ms={frame_ms!r}, "
            f"min_db={min_db!r}, max_db={max_db!r}."
        ) from None
    if not np.isfinite(frame_ms) or frame_ms <= 0:
        raise ConfigError(f"frame_ms must be a positive number of milliseconds, got {frame_ms!r} (e.g. 32.0).")
    if not (np.isfinite(min_db) and np.isfinite(max_db)) or min_db >= max_db:
        raise ConfigError(
            f"segmental SNR needs finite min_db < max_db, got min_db={min_db!r}, max_db={max_db!r} "
            "(the usual limits are -10 and 35 dB)."
        )


def si_sdr(reference, estimate) -> float:
    """Scale-invariant signal-to-distortion ratio, in dB.

    Follows Le Roux, Wisdom, Erdogan & Hershey (2019), "SDR - half-baked or
    well done?", ICASSP: both signals are made zero-mean, the reference is
    scaled optimally, ``alpha = <s_hat, s> / ||s||**2``, and
    ``SI-SDR = 10 log10(||alpha s||**2 / ||alpha s - s_hat||**2)``.
    Multiplying the estimate by any non-zero gain leaves the value unchanged.

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform.
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Estimated waveform at the same sample rate (any scale).

    Returns
    -------
    float
        SI-SDR in dB, at least ``SCORE_FLOORS["si_sdr"]`` (-50 dB: a silent or
        orthogonal estimate scores the floor). ``+inf`` for an exact (scaled) copy
        of the reference, ``nan`` for a constant reference (no signal after
        removing the mean).

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    """
    return _si_sdr(*align(reference, estimate))


def pesq_wb(reference, estimate, *, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2) MOS-LQO through the ``pesq`` package.

    Signals above 16 kHz are resampled to 16 kHz with ``soxr`` first (logged
    at info level); signals below 16 kHz are refused (use :func:`pesq_nb`).
    PESQ is undefined for a silent reference, for signals shorter than
    0.25 s and for some other degenerate inputs; in all those cases the
    library's exception is caught, one warning with the reason is logged, and
    NaN is returned, so this function never raises for such audio.

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform.
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Degraded or enhanced waveform at the same sample rate.
    sample_rate : int >= 16000 [Hz]
        Sample rate of both signals.

    Returns
    -------
    float
        MOS-LQO, roughly in [1.04, 4.64]; 1.0 (``SCORE_FLOORS["pesq"]``) for a
        silent estimate; NaN for a silent reference or when PESQ cannot be computed.

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    ConfigError
        If ``sample_rate`` is not a positive integer, or is below 16 kHz (:func:`check_pesq_rate`).

    References
    ----------
    ITU-T Recommendation P.862.2 (2007), "Wideband extension to
    Recommendation P.862 for the assessment of wideband telephone networks and
    speech codecs".
    """
    return _pesq(*align(reference, estimate), check_sample_rate(sample_rate))


def pesq_nb(reference, estimate, *, sample_rate: int) -> float:
    """Narrow-band PESQ (ITU-T P.862, raw MOS mapped by P.862.1) through the ``pesq`` package.

    The PESQ of telephone-band material (8 kHz sampling). Signals at other rates are resampled to
    8 kHz with ``soxr`` first. Silence and failures behave as in :func:`pesq_wb`.

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform.
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Degraded or enhanced waveform at the same sample rate.
    sample_rate : int > 0 [Hz]
        Sample rate of both signals.

    Returns
    -------
    float
        MOS-LQO, roughly in [1.0, 4.5]; 1.0 for a silent estimate; NaN when PESQ cannot be computed.

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    ConfigError
        If ``sample_rate`` is not a positive integer.

    References
    ----------
    ITU-T Recommendation P.862 (2001), "Perceptual evaluation of speech quality (PESQ)"; P.862.1 (2003),
    "Mapping function for transforming P.862 raw result scores to MOS-LQO".
    """
    sample_rate = check_sample_rate(sample_rate)
    return _pesq(*align(reference, estimate), sample_rate, "nb")


def stoi(reference, estimate, *, sample_rate: int, extended: bool = False) -> float:
    """Short-Time Objective Intelligibility through ``pystoi``.

    STOI follows Taal, Hendriks, Heusdens & Jensen (2011), "An algorithm for
    intelligibility prediction of time-frequency weighted noisy speech", IEEE
    TASLP 19(7); with ``extended=True`` it is ESTOI, Jensen & Taal (2016), "An
    algorithm for predicting the intelligibility of speech masked by modulated
    noise maskers", IEEE/ACM TASLP 24(11). pystoi resamples to 10 kHz itself.

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform.
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Degraded or enhanced waveform at the same sample rate.
    sample_rate : int > 0 [Hz]
        Sample rate of both signals.
    extended : bool
        Compute ESTOI instead of STOI.

    Returns
    -------
    float
        Intelligibility index (about 0-1, higher is better); 0.0 for a silent
        estimate (``SCORE_FLOORS``); NaN (with a
        logged warning) for a silent reference, or a signal too short to give
        30 non-silent frames (about 0.4 s of speech), or any pystoi failure.

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    ConfigError
        If ``sample_rate`` is not a positive integer.
    """
    sample_rate = check_sample_rate(sample_rate)
    return _stoi(*align(reference, estimate), sample_rate, bool(extended))


def estoi(reference, estimate, *, sample_rate: int) -> float:
    """Extended STOI (Jensen & Taal 2016); ``stoi(..., extended=True)``.

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform.
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Degraded or enhanced waveform at the same sample rate.
    sample_rate : int > 0 [Hz]
        Sample rate of both signals.

    Returns
    -------
    float
        ESTOI; NaN when it cannot be computed (see :func:`stoi`).

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    ConfigError
        If ``sample_rate`` is not a positive integer.
    """
    return stoi(reference, estimate, sample_rate=sample_rate, extended=True)


def mse(reference, estimate) -> float:
    """Waveform mean squared error, ``mean((s - s_hat)**2)``.

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform (amplitude units, e.g. [-1, 1]).
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Estimated waveform, same sample rate and scale.

    Returns
    -------
    float
        MSE in squared amplitude units (lower is better).

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    """
    return _mse(*align(reference, estimate))


def mae(reference, estimate) -> float:
    """Waveform mean absolute error, ``mean(|s - s_hat|)``.

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform.
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Estimated waveform, same sample rate and scale.

    Returns
    -------
    float
        MAE in amplitude units (lower is better).

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    """
    return _mae(*align(reference, estimate))


def rmse(reference, estimate) -> float:
    """Waveform root mean squared error, ``sqrt(mse)``.

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform.
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Estimated waveform, same sample rate and scale.

    Returns
    -------
    float
        RMSE in amplitude units (lower is better).

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    """
    return _rmse(*align(reference, estimate))


def pearson(reference, estimate) -> float:
    """Pearson correlation coefficient of the two waveforms.

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform.
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Estimated waveform at the same sample rate.

    Returns
    -------
    float
        Correlation in [-1, 1] (``pearson(x, -x) == -1``); 0.0 for a constant
        (silent) estimate of a varying reference; NaN, without a warning, for a
        constant reference.

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    """
    return _pearson(*align(reference, estimate))


def feature_mse(reference_features, estimate_features) -> float:
    """Mean squared error between two feature arrays (e.g. log-magnitude spectrograms).

    Parameters
    ----------
    reference_features : np.ndarray [shape=(...)], float
        Features of the clean reference (any shape, e.g. ``(n_frames, n_bins)``).
    estimate_features : np.ndarray [shape=(...)], float
        Features of the estimate; same shape as ``reference_features``.

    Returns
    -------
    float
        ``mean((reference_features - estimate_features)**2)`` in squared
        feature units.

    Raises
    ------
    AudioError
        If the shapes differ, an array is empty or non-numeric, or contains NaN/Inf.
    """
    ref = np.asarray(reference_features)
    est = np.asarray(estimate_features)
    for name, arr in (("reference_features", ref), ("estimate_features", est)):
        if arr.dtype.kind not in "biuf":
            raise AudioError(f"{name} must be a real-valued numeric array, got dtype {arr.dtype}.")
        if arr.size == 0:
            raise AudioError(f"{name} is empty (shape {arr.shape}); pass non-empty feature arrays.")
    if ref.shape != est.shape:
        raise AudioError(
            f"reference_features has shape {ref.shape} but estimate_features has shape {est.shape}; "
            "compute both with the same feature settings and crop to the same number of frames."
        )
    ref = ref.astype(np.float64, copy=False)
    est = est.astype(np.float64, copy=False)
    for name, arr in (("reference_features", ref), ("estimate_features", est)):
        n_bad = int((~np.isfinite(arr)).sum())
        if n_bad:
            raise AudioError(
                f"{name} contains {n_bad} NaN/Inf values out of {arr.size}; "
                "check the feature extraction (e.g. log of zero without an offset)."
            )
    return float(np.mean((ref - est) ** 2))


# --------------------------------------------------------------------------
# batch scoring
# --------------------------------------------------------------------------
def _metric_table(sample_rate: int) -> dict:
    sr = sample_rate
    table: dict = {
        "snr": _snr,
        "segsnr": lambda r, e: _segsnr(r, e, sr, 32.0, -10.0, 35.0),
        "si_sdr": _si_sdr,
        "pesq": lambda r, e: _pesq(r, e, sr),
        "pesq_nb": lambda r, e: _pesq(r, e, sr, "nb"),
        "stoi": lambda r, e: _stoi(r, e, sr, False),
        "estoi": lambda r, e: _stoi(r, e, sr, True),
        "mse": _mse,
        "mae": _mae,
        "rmse": _rmse,
        "pearson": _pearson,
    }
    # DNSMOS rates the estimate alone, once per table (one score() call) for all three names;
    # an exception is kept too, so a failure is not retried for each name.
    memo: dict = {}

    def _dnsmos(key: str) -> Callable:
        def value(ref, est) -> float:
            if memo.get("est") is not est:
                memo.clear()
                memo["est"] = est
                try:
                    memo["result"] = dnsmos(est, sample_rate=sr)
                except Exception as exc:
                    memo["error"] = exc
            if "error" in memo:
                raise memo["error"]
            return memo["result"][key]

        return value

    table.update({name: _dnsmos(name) for name in ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")})
    return table


def resolve_metric_names(metrics: None | str | Iterable[str], *, valid: Sequence[str] = METRICS) -> tuple[str, ...]:
    """Validate metric names: the one resolution of ``--metrics`` / ``metrics=`` arguments.

    Parameters
    ----------
    metrics : None, str or iterable of str
        Names from ``valid``; each item may be a comma-separated list (``"pesq,stoi"``). None: all of ``valid``.
    valid : sequence of str
        The names allowed (default :data:`METRICS`; stage 05 adds ``feature_mse``).

    Returns
    -------
    tuple of str
        The names in the given order, duplicates dropped.

    Raises
    ------
    ConfigError
        For an unknown name, an empty list or a value that is not a name or a list of names
        (the message lists the valid names).
    """
    if metrics is None:
        return tuple(valid)
    try:
        items = [metrics] if isinstance(metrics, str) else list(metrics)
        names = [n.strip() for item in items for n in item.split(",") if n.strip()]
    except (TypeError, AttributeError):
        raise ConfigError(
            f"metrics must be None, a metric name or a list of names, got {metrics!r}; choose from {', '.join(valid)}"
        ) from None
    unknown = [m for m in names if m not in valid]
    if unknown or not names:
        raise ConfigError(f"unknown metric {', '.join(unknown) or '(none given)'}; choose from {', '.join(valid)}")
    return tuple(dict.fromkeys(names))  # drop duplicates, keep order


def score(
    reference,
    estimate,
    *,
    sample_rate: int,
    metrics: None | str | Iterable[str] = None,
) -> dict:
    """Compute several metrics of one estimate against its clean reference.

    The signals are first passed through :func:`align` (cropped to the
    shorter length). Each metric is then computed independently; if one
    raises, its value becomes NaN and a warning is logged, so one bad file
    never crashes an evaluation. ``segsnr`` uses the defaults of
    :func:`segmental_snr`.

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform.
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Estimated waveform at the same sample rate and scale.
    sample_rate : int > 0 [Hz]
        Sample rate of both signals.
    metrics : str or iterable of str, optional
        Names from :data:`METRICS` and :data:`EXTRA_METRICS`; ``None`` (default) computes all of
        :data:`METRICS`.

    Returns
    -------
    dict[str, float]
        ``{name: value}`` in the requested order.

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    ConfigError
        If ``sample_rate`` is invalid, or a metric name is unknown (the
        message lists the valid names).
    """
    names = resolve_metric_names(metrics, valid=(*METRICS, *EXTRA_METRICS)) if metrics is not None else METRICS
    sample_rate = check_sample_rate(sample_rate)
    if "pesq" in names:
        check_pesq_rate(sample_rate)
    ref, est = align(reference, estimate)
    table: dict[str, Callable] = _metric_table(sample_rate)
    result: dict = {}
    for name in names:
        try:
            result[name] = float(table[name](ref, est))
        except Exception as exc:  # one failing metric must not stop an evaluation
            logger.warning(
                "score: metric %r failed (%s: %s) on %d samples at %d Hz; recording NaN",
                name,
                type(exc).__name__,
                exc,
                ref.size,
                sample_rate,
            )
            result[name] = float("nan")
    return result
