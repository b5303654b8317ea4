"""DNSMOS P.835: non-intrusive estimates of listener ratings (SIG, BAK, OVRL), no clean reference needed.

DNSMOS P.835 (Reddy, Gopal & Cutler, "DNSMOS P.835: A non-intrusive perceptual
objective speech quality metric to evaluate noise suppressors", ICASSP 2022,
doi:10.1109/ICASSP43922.2022.9746108) is a neural network trained on ITU-T P.835
listening tests of noise suppressors. It predicts three mean opinion scores on
the 1-5 scale of P.835:

- ``dnsmos_sig``: speech signal quality (how natural the speech sounds, distortion),
- ``dnsmos_bak``: background intrusiveness (5 = not noticeable, 1 = very intrusive),
- ``dnsmos_ovrl``: overall quality.

This module wraps the models and the scoring code of the ``speechmos`` package
(Microsoft's release for the DNS Challenge): ``speechmos/dnsmos_models/sig_bak_ovr.onnx``
and its P.808 companion ``model_v8.onnx``, run with onnxruntime on the CPU. Nothing
is downloaded. The scores are the standard, *non-personalized* DNSMOS P.835
(``model_type="dnsmos"``, the polynomial fit of the raw network outputs to the
P.835 ratings), as reported in the DNS Challenge; not the personalized variant,
which penalises interfering talkers.

How a clip is scored (the reference ``dnsmos_local.py`` of the DNS Challenge, as
``speechmos`` implements it): the 16 kHz signal is cut into 9.01-s windows with a
hop of 1 s (a trailing part shorter than a hop is not scored), each window is
rated, and the ratings are averaged. A clip *shorter than 9.01 s is repeated end
to end*: doubled until it is at least 9.01 s long, and the windows of that loop
are scored, so a 3-s clip is rated as a 12-s loop of itself (3 windows), a 4-s
clip as a 16-s loop (7 windows). Short clips therefore still get a score, but the
shorter the clip, the more it is a rating of a repeated fragment; below
:data:`MIN_DURATION_S` (0.5 s) this module returns NaN with a warning instead.
Cost: one window takes 0.2-0.3 s of one CPU core, so a clip of 9.01-10 s costs
one window, a shorter one 1-9 windows (its loop), and a longer one about one
window per second of audio.

Input handling: any sample rate is resampled to 16 kHz with soxr (the models are
16 kHz only). Samples beyond full scale are clipped to [-1, 1] with a warning
(the models expect float samples in [-1, 1], as read from a PCM file). An
all-zero signal is rated :data:`SILENCE_FLOOR` (1.0, the bottom of the scale) on
all three scales without running the models, rather than NaN, so averages over
files stay defined (the network itself gives arbitrary mid-scale values for
digital silence, e.g. BAK about 3.5).

The ONNX sessions are created once per process, on first use, with one
onnxruntime thread each (:data:`ORT_THREADS`), which suits worker processes that
score files in parallel. This module does not import TensorFlow; ``speechmos``
and onnxruntime are imported on first use only.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from .audio import as_waveform, check_sample_rate, resample
from .errors import ArtifactError

__all__ = ["KEYS", "SAMPLE_RATE", "WINDOW_S", "MIN_DURATION_S", "SILENCE_FLOOR", "ORT_THREADS", "dnsmos", "load_models"]

log = logging.getLogger(__name__)

#: The keys of :func:`dnsmos`'s result, in this order.
KEYS: tuple = ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
#: Sample rate the DNSMOS models run at (Hz); other rates are resampled.
SAMPLE_RATE = 16000
#: Length of the window each rating is made on (s); shorter clips are looped to this length.
WINDOW_S = 9.01
#: Shortest clip rated (s); shorter ones give NaN with a warning.
MIN_DURATION_S = 0.5
#: The rating of an all-zero signal, on each scale (the bottom of the 1-5 scale).
SILENCE_FLOOR = 1.0
#: onnxruntime intra- and inter-op threads of each session.
ORT_THREADS = 1

_LOCK = threading.Lock()
_MODELS: tuple[int, object] | None = None  # (process id, speechmos DNSMOS scorer)


def _create_scorer():
    """A ``speechmos.dnsmos.DNSMOS`` whose sessions run on the CPU with :data:`ORT_THREADS` threads."""
    try:
        import onnxruntime as ort
        from speechmos import dnsmos as lib
    except ImportError as exc:
        raise ArtifactError(
            f"DNSMOS needs the speechmos package and onnxruntime ({exc}); "
            "install them with: pip install 'speechmos>=0.0.1.1,<0.1' onnxruntime"
        ) from None

    folder = Path(lib.__file__).resolve().parent / "dnsmos_models"
    primary = folder / "sig_bak_ovr.onnx"
    missing = [str(p) for p in (primary,) if not p.is_file()]
    if missing:
        raise ArtifactError(
            f"DNSMOS model file(s) missing: {', '.join(missing)}; reinstall speechmos "
            "(pip install --force-reinstall 'speechmos>=0.0.1.1,<0.1')"
        )
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = ORT_THREADS
    opts.inter_op_num_threads = ORT_THREADS
    opts.log_severity_level = 3  # errors only
    # a spinning intra-op thread stalls when the other core is busy (metric worker processes): don't spin
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")

    class _SkipP808:
        """Stands in for the P.808 session: speechmos runs it on every window, but its MOS is not P.835."""

        def run(self, *_args):
            return [np.zeros((1, 1), np.float32)]

    class _Scorer(lib.DNSMOS):
        """speechmos' DNSMOS with our session options (its own __init__ takes none), scoring P.835 only:
        the P.808 model and the mel spectrogram it needs are skipped (about half the work per window)."""

        def __init__(self) -> None:
            providers = ["CPUExecutionProvider"]
            self.primary_model_path = str(primary)
            self.onnx_sess = ort.InferenceSession(str(primary), opts, providers=providers)
            self.p808_onnx_sess = _SkipP808()

        def audio_melspec(self, audio, *args, **kwargs):
            return np.zeros((1, 1), np.float32)  # only fed to the skipped P.808 model

    log.debug("loading DNSMOS P.835 models from %s (%d onnxruntime thread(s))", folder, ORT_THREADS)
    return _Scorer()


def load_models():
    """Load the DNSMOS sessions of this process now (they are otherwise loaded on first use).

    Lets a caller fail early, before long work, when the models are unavailable.
    Later calls return the cached sessions; a forked child process loads its own.

    Returns
    -------
    object
        The cached scorer (a ``speechmos.dnsmos.DNSMOS``); callers need not use it.

    Raises
    ------
    ArtifactError
        If ``speechmos`` or onnxruntime is not installed, or a model file is missing.
    """
    global _MODELS
    with _LOCK:
        if _MODELS is None or _MODELS[0] != os.getpid():
            _MODELS = (os.getpid(), _create_scorer())
        return _MODELS[1]


def dnsmos(y, *, sample_rate: int) -> dict[str, float]:
    """DNSMOS P.835 ratings of one recording: speech quality, background noise, overall.

    Non-intrusive: only the recording itself is needed. See the module docstring
    for how clips of any length are windowed (shorter than 9.01 s: looped).

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)], float, mono
        Waveform in [-1, 1] (float32 or float64). Samples beyond full scale are
        clipped to [-1, 1], with a warning.
    sample_rate : int > 0 [Hz]
        Sample rate of ``y``; resampled to 16 kHz (soxr, high quality) if different.

    Returns
    -------
    dict[str, float]
        ``{"dnsmos_sig": ..., "dnsmos_bak": ..., "dnsmos_ovrl": ...}`` (keys :data:`KEYS`),
        each a mean opinion score on the 1-5 scale of ITU-T P.835, higher is better.
        :data:`SILENCE_FLOOR` (1.0) for each if ``y`` is all zeros; NaN for each, with a
        logged warning, if ``y`` is shorter than :data:`MIN_DURATION_S` (0.5 s).

    Raises
    ------
    AudioError
        If ``y`` is not a floating-point array, not 1-D, empty, or holds NaN/Inf.
    ConfigError
        If ``sample_rate`` is not a positive integer.
    ArtifactError
        If ``speechmos`` or onnxruntime is not installed, or a model file is missing.

    References
    ----------
    C. K. A. Reddy, V. Gopal and R. Cutler, "DNSMOS P.835: A non-intrusive perceptual objective
    speech quality metric to evaluate noise suppressors", ICASSP 2022, pp. 886-890.
    Models and scoring code: the ``speechmos`` package (https://pypi.org/project/speechmos/).
    """
    y = as_waveform(y, name="y")
    sample_rate = check_sample_rate(sample_rate)
    duration = y.size / sample_rate
    if duration < MIN_DURATION_S:
        log.warning(
            "dnsmos: %.3f s of audio is too short to rate (< %.1f s; DNSMOS rates %.2f-s windows and "
            "loops shorter clips); returning NaN",
            duration,
            MIN_DURATION_S,
            WINDOW_S,
        )
        return dict.fromkeys(KEYS, float("nan"))
    if not np.any(y):
        log.warning("dnsmos: signal is all zeros (digital silence); returning the floor %.1f", SILENCE_FLOOR)
        return dict.fromkeys(KEYS, SILENCE_FLOOR)
    x = resample(y.astype(np.float32), sample_rate, SAMPLE_RATE)
    peak = float(np.max(np.abs(x)))
    if peak > 1.0:
        n_over = int(np.count_nonzero(np.abs(x) > 1.0))
        log.warning(
            "dnsmos: %d of %d samples exceed full scale (peak %.3f); clipped to [-1, 1] for DNSMOS",
            n_over,
            x.size,
            peak,
        )
        x = np.clip(x, -1.0, 1.0)
    scorer = load_models()
    out = scorer(x, SAMPLE_RATE, False)  # False: the standard (not personalized) P.835 polynomial fit
    return {
        "dnsmos_sig": float(out["sig_mos"]),
        "dnsmos_bak": float(out["bak_mos"]),
        "dnsmos_ovrl": float(out["ovrl_mos"]),
    }
