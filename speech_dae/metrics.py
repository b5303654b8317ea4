"""Objective speech-quality metrics measured against a clean reference.

Every function takes the clean ``reference`` first and the ``estimate``
(denoised or noisy signal) second, both 1-D waveforms at the same sample rate.
The two signals are passed through :func:`align` first: converted to
``float64`` and cropped to the shorter length; an empty signal or one holding
NaN/Inf raises :class:`~speech_dae.errors.AudioError`.

Summary
-------
=========  =================================================  ==============
name       metric                                              better
=========  =================================================  ==============
snr        global signal-to-noise ratio (dB)                   higher
segsnr     segmental SNR (dB), Quackenbush et al. 1988         higher
si_sdr     scale-invariant SDR (dB), Le Roux et al. 2019       higher
pesq       wide-band PESQ, ITU-T P.862.2 (MOS-LQO, 1.04-4.64)  higher
stoi       STOI, Taal et al. 2011 (0-1)                        higher
estoi      extended STOI, Jensen & Taal 2016                   higher
mse        waveform mean squared error                         lower
mae        waveform mean absolute error                        lower
rmse       waveform root mean squared error                    lower
pearson    waveform Pearson correlation (-1..1)                higher
=========  =================================================  ==============

:func:`score` computes any subset of them at once and turns the failure of a
single metric into NaN (with a logged warning), so that one odd file never
stops an evaluation run.

This module does not import TensorFlow; it is cheap to import.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .audio import as_waveform, check_sample_rate
from .errors import AudioError, ConfigError

__all__ = [
    "METRICS",
    "HIGHER_IS_BETTER",
    "resolve_metric_names",
    "align",
    "snr",
    "segmental_snr",
    "si_sdr",
    "pesq_wb",
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
)

#: For each name in :data:`METRICS`, whether a larger value means a better estimate.
HIGHER_IS_BETTER: dict = {
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
}

#: Sample rate wide-band PESQ (ITU-T P.862.2) runs at.
PESQ_SAMPLE_RATE = 16000

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
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.dot(est, ref) / ref_energy
    target = scale * ref
    residual = est - target
    return _ratio_db(np.dot(target, target), np.dot(residual, residual))


def _pesq(ref, est, sample_rate) -> float:
    from pesq import pesq as _pesq_lib  # local import: keeps module import cheap

    if sample_rate != PESQ_SAMPLE_RATE:
        import soxr

        logger.info(
            "pesq_wb: resampling reference and estimate from %d Hz to %d Hz "
            "(wide-band PESQ, ITU-T P.862.2, is defined at 16 kHz)",
            sample_rate,
            PESQ_SAMPLE_RATE,
        )
        ref = soxr.resample(ref, sample_rate, PESQ_SAMPLE_RATE)
        est = soxr.resample(est, sample_rate, PESQ_SAMPLE_RATE)
    if not np.any(ref) or not np.any(est):
        which = "reference" if not np.any(ref) else "estimate"
        logger.warning("pesq_wb: %s is all zeros (silence); PESQ undefined, returning NaN", which)
        return float("nan")
    try:
        with np.errstate(all="ignore"):
            value = _pesq_lib(PESQ_SAMPLE_RATE, ref, est, "wb")
    except Exception as exc:  # the pesq C library signals every failure by raising
        logger.warning(
            "pesq_wb: PESQ failed (%s: %s) on %d samples at %d Hz; returning NaN",
            type(exc).__name__,
            exc,
            ref.size,
            PESQ_SAMPLE_RATE,
        )
        return float("nan")
    return float(value)


def _stoi(ref, est, sample_rate, extended) -> float:
    from pystoi import stoi as _stoi_lib  # local import: keeps module import cheap

    label = "estoi" if extended else "stoi"
    if not np.any(ref):
        logger.warning("%s: reference is all zeros (silence); %s undefined, returning NaN", label, label.upper())
        return float("nan")
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
    for w in caught:
        if "Not enough STFT frames" in str(w.message):
            # pystoi then returns a placeholder 1e-5, which would silently bias averages
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
        logger.debug("pearson: constant input, correlation undefined; returning NaN")
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
        SI-SDR in dB. ``+inf`` for an exact (scaled) copy of the reference,
        ``-inf`` for an estimate orthogonal to it, ``nan`` for a constant
        reference (no signal after removing the mean).

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    """
    return _si_sdr(*align(reference, estimate))


def pesq_wb(reference, estimate, *, sample_rate: int) -> float:
    """Wide-band PESQ (ITU-T P.862.2) MOS-LQO through the ``pesq`` package.

    Signals not at 16 kHz are resampled to 16 kHz with ``soxr`` first (logged
    at info level). PESQ is undefined for silence, for signals shorter than
    0.25 s and for some other degenerate inputs; in all those cases the
    library's exception is caught, one warning with the reason is logged, and
    NaN is returned, so this function never raises for such audio.

    Parameters
    ----------
    reference : np.ndarray [shape=(n_samples,)], float, mono
        Clean reference waveform.
    estimate : np.ndarray [shape=(n_samples,)], float, mono
        Degraded or enhanced waveform at the same sample rate.
    sample_rate : int > 0 [Hz]
        Sample rate of both signals (8000-48000 Hz is sensible).

    Returns
    -------
    float
        MOS-LQO, roughly in [1.04, 4.64]; NaN when PESQ cannot be computed.

    Raises
    ------
    AudioError
        If a signal is empty, not 1-D or contains NaN/Inf.
    ConfigError
        If ``sample_rate`` is not a positive integer.

    References
    ----------
    ITU-T Recommendation P.862.2 (2007), "Wideband extension to
    Recommendation P.862 for the assessment of wideband telephone networks and
    speech codecs".
    """
    sample_rate = check_sample_rate(sample_rate)
    return _pesq(*align(reference, estimate), sample_rate)


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
        Intelligibility index (about 0-1, higher is better); NaN (with a
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
        Correlation in [-1, 1] (``pearson(x, -x) == -1``); NaN, without a
        warning, if either signal is constant.

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
        "stoi": lambda r, e: _stoi(r, e, sr, False),
        "estoi": lambda r, e: _stoi(r, e, sr, True),
        "mse": _mse,
        "mae": _mae,
        "rmse": _rmse,
        "pearson": _pearson,
    }
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
        Names from :data:`METRICS`; ``None`` (default) computes all of them.

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
    names = resolve_metric_names(metrics)
    sample_rate = check_sample_rate(sample_rate)
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
