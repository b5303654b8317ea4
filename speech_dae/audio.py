"""Audio input/output: load (soundfile), fold to mono, resample (soxr), validate, write atomically.

Every loader returns ``float32`` mono samples in [-1, 1] at the configured
sample rate. Problems with a file raise :class:`~speech_dae.errors.AudioError`
whose message names the file and the fix, so callers can skip it and record
the reason.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .artifacts import atomic_path
from .errors import AudioError, ConfigError

__all__ = [
    "AudioInfo",
    "AUDIO_EXTENSIONS",
    "MAX_PEAK",
    "check_header",
    "check_samples",
    "list_audio",
    "read_mono",
    "as_waveform",
    "check_sample_rate",
    "load_audio",
    "resample",
    "validate_audio",
    "write_audio",
]

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif")


#: Float samples beyond this magnitude (+60 dB over full scale) are refused: such a file was written unscaled
#: (integer values stored as floats) or is corrupt, and its squares overflow float32 features.
MAX_PEAK = 1000.0

#: Sample rates (Hz) accepted from a file's header; others are a corrupt header, not audio to resample.
MIN_RATE, MAX_RATE = 1000, 768000

#: Bytes per sample of the uncompressed subtypes, to tell a truncated WAV/AIFF from a complete one.
_PCM_BYTES = {
    "PCM_S8": 1,
    "PCM_U8": 1,
    "PCM_16": 2,
    "PCM_24": 3,
    "PCM_32": 4,
    "FLOAT": 4,
    "DOUBLE": 8,
    "ULAW": 1,
    "ALAW": 1,
}


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`load_audio` found in a file before converting it.

    ``channel`` is the channel that was taken from a multi-channel file, or None
    when the file is mono or its channels were averaged (``folded_to_mono``).
    """

    path: str
    orig_sample_rate: int
    orig_channels: int
    subtype: str
    resampled: bool
    folded_to_mono: bool
    channel: int | None = None


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


def load_audio(path: str | Path, *, sample_rate: int, channel: int | None = None) -> tuple[np.ndarray, AudioInfo]:
    """Read an audio file as float32 mono at ``sample_rate``.

    Multi-channel files are folded to mono by averaging the channels, or, with
    ``channel``, reduced to that one channel (noise recordings: averaging the
    microphones of an array changes the noise's spectrum). Other sample rates are
    resampled with soxr. The file is only read, never modified.

    Parameters
    ----------
    path : str or Path
        Any format libsndfile reads (WAV, FLAC, OGG, AIFF; 8/16/24/32-bit or float).
    sample_rate : int
        Target rate in Hz.
    channel : int, optional
        0-based channel taken from a multi-channel file (a mono file is used as it is).

    Returns
    -------
    y : np.ndarray [shape=(n_samples,)], float32, mono, in [-1, 1] for integer files
    info : AudioInfo

    Raises
    ------
    AudioError
        If the file is 0 bytes, cannot be read or decoded, has a sample rate outside
        :data:`MIN_RATE`..:data:`MAX_RATE`, is truncated (a WAV/AIFF holding fewer
        samples than its header announces), has no samples, holds
        NaN/Inf or samples beyond ±:data:`MAX_PEAK`, or has no channel ``channel``.
    """
    path = Path(path)
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise AudioError(f"{path}: file is empty (0 bytes); remove it or copy it again")
        with sf.SoundFile(str(path)) as f:
            check_header(f, path)
            sr, channels, subtype = int(f.samplerate), int(f.channels), f.subtype
            data = f.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except MemoryError:
        raise AudioError(f"{path}: too large to load into memory") from None
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError, EOFError) as exc:
        raise AudioError(
            f"{path}: cannot read audio ({str(exc).strip() or exc.__class__.__name__}): not a valid "
            "WAV/FLAC/OGG, or corrupt or truncated; copy or export it again"
        ) from None
    if data.shape[0] == 0:
        raise AudioError(
            f"{path}: file has no samples (empty, or cut off before its first samples); remove it or export it again"
        )
    check_samples(data, path)
    if channel is not None and channels > 1:
        if channel >= channels:
            raise AudioError(
                f"{path}: has {channels} channels, so audio.noise_channel={channel} is not one of them; "
                f"set audio.noise_channel to 0..{channels - 1}"
            )
        y, taken = data[:, channel], channel
    else:
        y, taken = (data.mean(axis=1) if channels > 1 else data[:, 0]), None
    if channels > 1:
        log.debug(
            "%s: %s",
            path,
            f"took channel {taken} of {channels}" if taken is not None else f"folded {channels} channels to mono",
        )
    y = resample(np.ascontiguousarray(y), sr, sample_rate)
    if y.size == 0:
        raise AudioError(
            f"{path}: too short: its {data.shape[0]} sample(s) at {sr} Hz make no sample at {sample_rate} Hz"
        )
    info = AudioInfo(str(path), sr, channels, subtype, sr != sample_rate, channels > 1 and taken is None, taken)
    return y, info


def check_header(f: sf.SoundFile, path: str | Path) -> None:
    """Refuse an open file whose header is unusable: a sample rate outside :data:`MIN_RATE`..:data:`MAX_RATE`,
    or an uncompressed WAV/AIFF holding fewer samples than its header announces (truncated).

    Raises
    ------
    AudioError
        Naming ``path`` and the problem.
    """
    if not MIN_RATE <= f.samplerate <= MAX_RATE:
        raise AudioError(
            f"{path}: sample rate {f.samplerate} Hz is not an audio rate ({MIN_RATE}..{MAX_RATE} Hz): "
            "a corrupt header or a wrong export; export it again"
        )
    missing = _missing_frames(f)
    if missing:
        raise AudioError(
            f"{path}: truncated: its header announces {f.frames + missing} samples per channel, "
            f"the file holds {f.frames} (an incomplete copy?); copy or export it again"
        )


def check_samples(x: np.ndarray, path: str | Path, *, start_s: float | None = None) -> None:
    """Refuse samples that are NaN/Inf or beyond ±:data:`MAX_PEAK` (``start_s``: where a block starts, if one).

    Raises
    ------
    AudioError
        Naming ``path`` and the problem.
    """
    where = "" if start_s is None else f" (block starting at {start_s:.1f} s)"
    n_bad = int(np.count_nonzero(~np.isfinite(x)))
    if n_bad:
        raise AudioError(f"{path}: {n_bad} samples are NaN or Inf{where}; re-export the file")
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > MAX_PEAK:
        raise AudioError(
            f"{path}: samples reach {peak:.3g}{where}, far beyond full scale (±1): written unscaled or "
            "corrupt; re-export the file normalised"
        )


def _missing_frames(f: sf.SoundFile) -> int:
    """Frames a truncated uncompressed WAV/AIFF lacks, from libsndfile's header log (0 when complete).

    libsndfile clamps a data chunk that runs past the end of the file (``f.frames``
    is what is there) and logs ``data : <announced> (should be <present>)``; a size
    of 0 or 0xFFFFFFFF is the "unknown length" of a streamed WAV, not a truncation.
    """
    width = _PCM_BYTES.get(f.subtype)
    if width is None or f.format not in ("WAV", "WAVEX", "AIFF", "RF64", "W64"):
        return 0
    m = re.search(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", f.extra_info, re.MULTILINE)
    if m is None:
        return 0
    announced, present = int(m.group(1)), int(m.group(2))
    if announced in (0, 0xFFFFFFFF) or announced >= 0xFFFFFF00 or announced <= present:
        return 0
    return max(0, announced // (width * f.channels) - f.frames)


def validate_audio(
    y: np.ndarray,
    *,
    sample_rate: int,
    min_duration_s: float = 0.0,
    silence_rms_db: float | None = None,
    name: str = "signal",
    min_duration_key: str | None = None,
) -> np.ndarray:
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
    min_duration_key : str, optional
        What sets ``min_duration_s``, named in the message (e.g. ``"audio.min_duration_s"``).

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
        limit = f"{min_duration_key}={min_duration_s:g} s" if min_duration_key else f"{min_duration_s:g} s"
        raise AudioError(f"{name}: too short ({duration:.3f} s < {limit})")
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
        ``path``. Float WAVs carry no write time (their PEAK chunk's timestamp is 0),
        so writing the same samples twice gives the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y, dtype=np.float32)
    if subtype.startswith("PCM"):
        y = np.clip(y, -1.0, 1.0)
    fmt = _format_for(path)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), y, sample_rate, subtype=subtype, format=fmt)
        if fmt == "WAV" and subtype in ("FLOAT", "DOUBLE"):
            _clear_peak_timestamp(tmp)
    return path


def _clear_peak_timestamp(path: Path) -> None:
    """Zero the write time libsndfile stamps into a float WAV's PEAK chunk, so equal samples give equal files.

    The chunk is ``PEAK``, size, version, *timestamp* (uint32, informational), then the
    per-channel peaks; only the timestamp is changed. Files without the chunk are left alone.
    """
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        pos = 12
        while True:
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8 or chunk[:4] == b"data":
                return
            if chunk[:4] == b"PEAK":
                fh.seek(pos + 12)
                fh.write(bytes(4))
                return
            size = int.from_bytes(chunk[4:], "little")
            pos += 8 + size + (size & 1)


def _format_for(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    return {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "oga": "OGG", "aiff": "AIFF", "aif": "AIFF"}.get(ext, "WAV")


def file_stat_key(path: str | Path) -> str:
    """``relative-name:size:mtime_ns`` of a file, for fingerprints of input folders."""
    st = os.stat(path)
    return f"{Path(path).name}:{st.st_size}:{st.st_mtime_ns}"


def read_mono(path: str | Path, frames: int = -1) -> np.ndarray:
    """The first ``frames`` samples (all with -1) of a WAV file, float32, channels averaged."""
    y, _ = sf.read(str(path), dtype="float32", frames=frames, always_2d=True)
    return y.mean(axis=1)


def as_waveform(x, *, name: str = "y", allow_int: bool = False) -> np.ndarray:
    """Check an in-memory waveform argument and return it as float64 (a view when it already is).

    The one check of signal arguments for the metrics and the classical
    baselines (files go through :func:`validate_audio`).

    Parameters
    ----------
    x : array_like [shape=(n_samples,)]
        Mono samples; with ``allow_int`` integer arrays and singleton axes (e.g. ``(n, 1)``) are accepted too.
    name : str
        The argument's name, used in messages.
    allow_int : bool
        Accept integer dtypes (their values are used as they are) and squeeze singleton axes.

    Returns
    -------
    np.ndarray [shape=(n_samples,)], float64

    Raises
    ------
    AudioError
        If ``x`` is not numeric (not floating point unless ``allow_int``), not 1-D, empty, or
        holds NaN/Inf (the message counts them).
    """
    arr = np.asarray(x)
    if arr.dtype.kind not in ("biuf" if allow_int else "f"):
        raise AudioError(
            f"{name} must be a floating-point waveform, got dtype {arr.dtype}; pass the samples as floats "
            "(soundfile.read gives them; int16 PCM: y.astype(np.float32) / 32768)"
        )
    if allow_int:
        arr = np.squeeze(arr)
    if arr.ndim != 1:
        raise AudioError(
            f"{name} must be a mono 1-D waveform, got shape {np.shape(x)}; mix it down first "
            "(e.g. librosa.to_mono) or pass one channel"
        )
    if arr.size == 0:
        raise AudioError(f"{name} is empty (0 samples); pass a non-empty waveform")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.isnan(arr).sum())
        raise AudioError(
            f"{name} contains {n_nan} NaN and {int(bad.sum()) - n_nan} Inf samples out of {arr.size}; check the "
            "file it was read from or the processing (model output) that produced it"
        )
    return arr


def check_sample_rate(sample_rate) -> int:
    """Return ``sample_rate`` as an int, or raise ConfigError if it is not a positive whole number of Hz.

    Raises
    ------
    ConfigError
        For a bool, a non-number, NaN/Inf, zero, a negative or a fractional rate.
    """
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, (int, np.integer, float, np.floating))
        or not np.isfinite(sample_rate)
        or sample_rate <= 0
        or int(sample_rate) != sample_rate
    ):
        raise ConfigError(
            f"sample_rate must be a positive integer number of Hz, got {sample_rate!r}; pass the rate the "
            "signals were loaded at (e.g. 16000)"
        )
    return int(sample_rate)
