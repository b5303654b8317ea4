"""Audio input/output: load (soundfile), fold to mono, resample (soxr), validate, write atomically.

Every loader returns ``float32`` mono samples in [-1, 1] at the configured
sample rate. Problems with a file raise :class:`~speech_dae.errors.AudioError`
whose message names the file and the fix, so callers can skip it and record
the reason.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .artifacts import atomic_path
from .errors import AudioError

__all__ = ["AudioInfo", "AUDIO_EXTENSIONS", "list_audio", "load_audio", "resample", "validate_audio", "write_audio"]

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif")


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`load_audio` found in a file before converting it."""

    path: str
    orig_sample_rate: int
    orig_channels: int
    subtype: str
    resampled: bool
    folded_to_mono: bool


def list_audio(folder: str | Path) -> list[Path]:
    """All audio files under ``folder`` (recursive), sorted by relative path.

    Raises
    ------
    AudioError
        If ``folder`` does not exist or is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AudioError(f"audio folder {str(folder)!r} does not exist or is not a folder; check the path")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``y`` from ``orig_sr`` to ``target_sr`` Hz with soxr (high quality).

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)], float32
    orig_sr, target_sr : int
        Sample rates in Hz.

    Returns
    -------
    np.ndarray [shape=(round(n_samples * target_sr / orig_sr),)], float32
    """
    if orig_sr == target_sr:
        return y.astype(np.float32, copy=False)
    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, *, sample_rate: int) -> tuple[np.ndarray, AudioInfo]:
    """Read an audio file as float32 mono at ``sample_rate``.

    Multi-channel files are folded to mono by averaging the channels; other
    sample rates are resampled with soxr. The file is only read, never modified.

    Parameters
    ----------
    path : str or Path
        Any format libsndfile reads (WAV, FLAC, OGG, AIFF; 8/16/24/32-bit or float).
    sample_rate : int
        Target rate in Hz.

    Returns
    -------
    y : np.ndarray [shape=(n_samples,)], float32, mono, in [-1, 1] for integer files
    info : AudioInfo

    Raises
    ------
    AudioError
        If the file cannot be read or decoded, has no samples, or holds NaN/Inf.
    """
    path = Path(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        subtype = sf.info(str(path)).subtype
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioError(f"{path}: cannot read audio ({str(exc).strip() or exc.__class__.__name__}); "
                         "check the file is a valid WAV/FLAC/OGG") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: file has no samples (empty); remove it or re-export it")
    n_bad = int(np.count_nonzero(~np.isfinite(data)))
    if n_bad:
        raise AudioError(f"{path}: {n_bad} samples are NaN or Inf; re-export the file")
    channels = data.shape[1]
    y = data.mean(axis=1) if channels > 1 else data[:, 0]
    if channels > 1:
        log.debug("%s: folded %d channels to mono", path, channels)
    y = resample(y, sr, sample_rate)
    info = AudioInfo(str(path), int(sr), int(channels), subtype, sr != sample_rate, channels > 1)
    return y, info


def validate_audio(y: np.ndarray, *, sample_rate: int, min_duration_s: float = 0.0,
                   silence_rms_db: float | None = None, name: str = "signal") -> np.ndarray:
    """Check that ``y`` is usable speech/noise audio and return it as float32.

    Parameters
    ----------
    y : np.ndarray [shape=(n_samples,)]
    sample_rate : int
        Hz, used to express durations.
    min_duration_s : float
        Shorter signals are rejected.
    silence_rms_db : float, optional
        Signals whose RMS level (dBFS) is below this are rejected as silent.
    name : str
        Used in messages (usually the file path).

    Raises
    ------
    AudioError
        If ``y`` is not 1-D, is empty, holds NaN/Inf, is too short or silent.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise AudioError(f"{name}: expected mono audio of shape (n_samples,), got shape {y.shape}")
    if y.size == 0:
        raise AudioError(f"{name}: has no samples (empty)")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{name}: {int(np.count_nonzero(~np.isfinite(y)))} samples are NaN or Inf")
    duration = y.size / sample_rate
    if duration < min_duration_s:
        raise AudioError(f"{name}: too short ({duration:.3f} s < audio.min_duration_s={min_duration_s} s)")
    if silence_rms_db is not None:
        rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
        level = 20 * np.log10(rms) if rms > 0 else -np.inf
        if level < silence_rms_db:
            raise AudioError(f"{name}: silent (RMS {level:.1f} dBFS < audio.silence_rms_db={silence_rms_db} dBFS)")
    return y.astype(np.float32, copy=False)


def write_audio(path: str | Path, y: np.ndarray, sample_rate: int, *, subtype: str = "FLOAT") -> Path:
    """Write mono audio atomically (temporary file, then ``os.replace``).

    Parameters
    ----------
    path : str or Path
        Destination; its suffix picks the format (``.wav``, ``.flac``, ...).
    y : np.ndarray [shape=(n_samples,)], float
    sample_rate : int
        Hz.
    subtype : str
        libsndfile subtype; ``FLOAT`` (default) stores float32 without quantisation,
        ``PCM_16`` for 16-bit files.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y, dtype=np.float32)
    if subtype.startswith("PCM"):
        y = np.clip(y, -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), y, sample_rate, subtype=subtype, format=_format_for(path))
    return path


def _format_for(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    return {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "oga": "OGG", "aiff": "AIFF", "aif": "AIFF"}.get(ext, "WAV")


def file_stat_key(path: str | Path) -> str:
    """``relative-name:size:mtime_ns`` of a file, for fingerprints of input folders."""
    st = os.stat(path)
    return f"{Path(path).name}:{st.st_size}:{st.st_mtime_ns}"
