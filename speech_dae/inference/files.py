"""``speech-dae denoise``: denoise files and folders of any length with a trained run, in flat memory.

A recording is read, denoised and written in blocks of ``block_s`` seconds.
Each block is processed with a margin of context on both sides, and only its
middle is kept. Block boundaries fall on the model's grid: a multiple of
``hop_length * patch_hop`` samples for spectral runs, or ``chunk_size // 2``
for waveform runs, and on whole samples at both rates when the file is
resampled. With the margin covering the STFT window, the patch context and the
end patch, every kept sample sees exactly the frames, patches and overlap-adds
of whole-file processing, so the output matches it to float rounding (tested
to 1e-5). Inputs are any format and rate that soundfile reads. Outputs are
mono, at the input's sample rate, in its format and subtype, and written
atomically. ``engine="onnx"`` runs the run's ``model.onnx`` (``speech-dae
export``) with onnxruntime; this module and the ones it imports never import
TensorFlow or Keras themselves.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from ..artifacts import atomic_path
from ..audio import check_header, check_samples, list_audio, resample
from ..errors import AudioError
from ..framing import block_plan
from .engine import Denoiser

__all__ = ["denoise_file", "denoise_paths", "DenoiseSummary"]

log = logging.getLogger(__name__)


@dataclass
class DenoiseSummary:
    outputs: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    audio_s: float = 0.0
    seconds: float = 0.0
    engine: str = "keras"
    load_s: float = 0.0
    warmup_s: float = 0.0

    def lines(self) -> list[str]:
        out = [f"skipped {why}" if why.startswith(f"{p}: ") else f"skipped {p}: {why}" for p, why in self.skipped]
        out.append(
            f"start-up: {self.engine} engine loaded in {self.load_s:.2f} s (imports and model), "
            f"first call {self.warmup_s:.2f} s (feature imports, tracing)"
        )
        rt = self.audio_s / self.seconds if self.seconds else 0.0
        out.append(
            f"denoised {len(self.outputs)} file(s), {self.audio_s / 60:.1f} min of audio in "
            f"{self.seconds:.1f} s ({rt:.0f}x real time)"
        )
        return out


def denoise_file(den: Denoiser, src: str | Path, dst: str | Path, *, block_s: float = 30.0) -> float:
    """Denoise one recording block by block into ``dst`` (atomic); returns its duration in seconds.

    Parameters
    ----------
    den : Denoiser
    src : path
        Any file soundfile reads; multi-channel input is averaged to mono.
    dst : path
        Written mono, at ``src``'s sample rate, format and subtype.
    block_s : float
        Seconds per block (the memory bound); rounded to the model's grid.

    Raises
    ------
    AudioError
        If ``src`` cannot be read or decoded (also part-way: a truncated FLAC), is empty,
        has an unusable header (:func:`~speech_dae.audio.check_header`: not an audio rate, a
        truncated WAV), or holds NaN/Inf samples or samples far beyond full scale
        (:func:`~speech_dae.audio.check_samples`). ``dst`` is then left untouched.
    """
    src, dst = Path(src), Path(dst)
    try:
        f_in = sf.SoundFile(str(src))  # one open gives the format and the samples
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(
            f"{src}: cannot read audio ({_reason(exc)}): not a valid WAV/FLAC/OGG, or corrupt or "
            "truncated; copy or export it again"
        ) from None
    with f_in:
        check_header(f_in, src)
        sr_in, sr, frames = int(f_in.samplerate), den.sample_rate, f_in.frames
        if frames == 0:
            raise AudioError(f"{src}: file has no samples (empty, or cut off before its first samples)")
        align, margin = den.grid(sr_in)
        ratio = sr_in / sr
        n = int(round(frames / ratio))  # model-rate length (what load_audio's resampling gives)
        block = max(align, int(round(block_s * sr / align)) * align)
        pcm = f_in.subtype.startswith("PCM")
        with (
            atomic_path(dst) as tmp,
            sf.SoundFile(str(tmp), "w", samplerate=sr_in, channels=1, subtype=f_in.subtype, format=f_in.format) as out,
        ):
            for r0, r1, k0, k1 in block_plan(n, block, margin, align):
                i0, i1 = int(round(r0 * ratio)), min(frames, int(round(r1 * ratio)))
                try:
                    f_in.seek(i0)
                    x = f_in.read(i1 - i0, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as exc:
                    raise AudioError(
                        f"{src}: cannot read audio in the block starting at {i0 / sr_in:.1f} s "
                        f"({_reason(exc)}): corrupt or truncated; copy or export it again"
                    ) from None
                check_samples(x, src, start_s=i0 / sr_in)
                y = den(resample(x.mean(axis=1) if x.shape[1] > 1 else x[:, 0], sr_in, sr))
                if sr_in != sr:  # back to the input rate before cropping, so the kept part has no resampler edge
                    y = resample(y, sr, sr_in)
                o0 = int(round(k0 * ratio))
                o1 = int(round(k1 * ratio)) if k1 < n else frames  # the output has the input's length
                y = y[o0 - i0 : o1 - i0]
                y = np.pad(y, (0, o1 - o0 - y.size))  # a resampled tail may be a sample short
                out.write(np.clip(y, -1.0, 1.0) if pcm else y)
    return frames / sr_in


def _reason(exc: BaseException) -> str:
    """libsndfile's own words for ``exc``, without the file name soundfile puts in front of them."""
    text = getattr(exc, "error_string", None) if isinstance(exc, sf.LibsndfileError) else None
    return (text or str(exc)).strip() or exc.__class__.__name__


def _jobs(inputs: list[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    jobs = []
    for p in inputs:
        if p.is_dir():
            files = list_audio(p)
            if not files:
                raise AudioError(f"{p} holds no WAV/FLAC/OGG file")
            jobs += [(f, out_dir / p.name / f.relative_to(p)) for f in files]
        elif p.is_file():
            jobs.append((p, out_dir / p.name))
        else:
            raise AudioError(f"{p} is neither an audio file nor a folder")
    return jobs


def denoise_paths(
    model: str | Path,
    inputs: list[str | Path],
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    block_s: float = 30.0,
    patch_hop: int = 1,
    engine: str = "keras",
    progress: bool = True,
) -> DenoiseSummary:
    """Denoise files and folders (recursively) into ``out_dir``, keeping relative paths and file names.

    ``engine="onnx"`` runs the run's ``model.onnx`` (``speech-dae export``) with
    onnxruntime; nothing imports TensorFlow or Keras then.
    Start-up is timed apart from the processing: ``DenoiseSummary.load_s`` (the
    engine's imports and model load) and ``warmup_s`` (one call on 0.5 s of
    quiet noise: lazy imports of the feature code, graph tracing), so that
    ``seconds`` and the real-time factor measure the steady state.

    Raises
    ------
    ArtifactError
        If ``model`` is not a complete stage-03 run, or has no ``model.onnx`` for ``engine="onnx"``.
    ConfigError
        For an unknown ``engine``.
    AudioError
        If an input does not exist, or an output exists and ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    jobs = _jobs([Path(p) for p in inputs], out_dir)
    existing = [d for _, d in jobs if d.exists()]
    if existing and not overwrite:
        raise AudioError(
            f"{len(existing)} output file(s) exist (first: {existing[0]}); pass --overwrite to replace them"
        )
    if any(s.resolve() == d.resolve() for s, d in jobs if d.exists()):
        raise AudioError("an output would replace its own input; choose another -o folder")
    den = Denoiser(model, patch_hop=patch_hop, engine=engine)
    t0 = time.perf_counter()
    n_warm = max(den.sample_rate // 2, 2 * den.fx.cfg.n_fft, 2 * den.context)
    den(np.random.default_rng(0).normal(0.0, 1e-3, n_warm).astype(np.float32))
    summary = DenoiseSummary(engine=engine, load_s=den.load_seconds, warmup_s=time.perf_counter() - t0)
    t0 = time.perf_counter()
    for src, dst in tqdm(jobs, desc="denoise", unit="file", disable=not progress):
        try:
            summary.audio_s += denoise_file(den, src, dst, block_s=block_s)
            summary.outputs.append(dst)
        except AudioError as exc:
            summary.skipped.append((src, str(exc)))
    summary.seconds = time.perf_counter() - t0
    if not summary.outputs:
        raise AudioError(
            f"no file could be denoised ({len(summary.skipped)} skipped; first: "
            f"{summary.skipped[0][1] if summary.skipped else 'none'})"
        )
    return summary
