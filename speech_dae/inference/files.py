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

``score=True`` (``speech-dae denoise --score``) then rates every input and its
output with DNSMOS P.835 (:mod:`speech_dae.dnsmos`: SIG, BAK, OVRL, no clean
reference needed), prints the before/after table with a mean row and writes it
to ``<out>/dnsmos.csv``. Scoring reads each file whole (not in blocks) and costs
0.2-0.3 s of CPU per second of audio, for the input and the output each.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from ..artifacts import atomic_path, write_csv
from ..audio import check_header, check_samples, list_audio, load_audio, resample
from ..dnsmos import SAMPLE_RATE as DNSMOS_RATE
from ..dnsmos import dnsmos, load_models
from ..errors import AudioError
from ..framing import block_plan
from .engine import Denoiser

__all__ = ["denoise_file", "denoise_paths", "DenoiseSummary", "SCORE_CSV", "dnsmos_scores", "dnsmos_table"]

log = logging.getLogger(__name__)

#: File name of the ``--score`` table, written into the output folder.
SCORE_CSV = "dnsmos.csv"
#: The DNSMOS scales of the ``--score`` table: (result key, column prefix, label).
_SCALES = (("dnsmos_sig", "sig", "SIG"), ("dnsmos_bak", "bak", "BAK"), ("dnsmos_ovrl", "ovrl", "OVRL"))
#: Columns of ``dnsmos.csv``: ``file`` (output path relative to the output folder, or ``mean``), ``input``.
SCORE_FIELDS = ("file", "input", *(f"{c}_{when}" for _, c, _ in _SCALES for when in ("before", "after")))


@dataclass
class DenoiseSummary:
    outputs: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    audio_s: float = 0.0
    seconds: float = 0.0
    engine: str = "keras"
    load_s: float = 0.0
    warmup_s: float = 0.0
    inputs: list = field(default_factory=list)  # the source of each of ``outputs``, same order
    scores: list = field(default_factory=list)  # with score=True: dnsmos_scores() rows, then the mean row
    score_csv: Path | None = None
    score_s: float = 0.0

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
        if self.scores:
            out.append(f"scored {len(self.outputs)} input(s) and output(s) with DNSMOS P.835 in {self.score_s:.1f} s")
            out += dnsmos_table(self.scores)
            out.append(f"wrote {self.score_csv}")
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
    model: str | Path | None,
    inputs: list[str | Path],
    out_dir: str | Path,
    *,
    overwrite: bool = False,
    block_s: float = 30.0,
    patch_hop: int | None = None,
    atten_lim_db: float | None = None,
    engine: str = "auto",
    progress: bool = True,
    score: bool = False,
    inference: str = "auto",
) -> DenoiseSummary:
    """Denoise files and folders (recursively) into ``out_dir``, keeping relative paths and file names.

    ``engine="onnx"`` runs the run's ``model.onnx`` (``speech-dae export``) with
    onnxruntime; nothing imports TensorFlow or Keras then. ``engine="auto"`` (default) does so
    whenever that file was exported from the run's ``model.keras`` (the pretrained model ships
    one), else runs Keras. ``inference``: see :class:`Denoiser`. ``patch_hop`` None (default) uses the hop
    the run was validated with (``run.json``), as stages 04 and 05 do, so the files are what was scored.
    ``atten_lim_db`` limits the attenuation of every bin (strength control, see :class:`Denoiser`).
    Start-up is timed apart from the processing: ``DenoiseSummary.load_s`` (the
    engine's imports and model load) and ``warmup_s`` (one call on 0.5 s of
    quiet noise: lazy imports of the feature code, graph tracing), so that
    ``seconds`` and the real-time factor measure the steady state.
    ``score=True`` then rates each input and its output with DNSMOS P.835
    (:func:`dnsmos_scores`, timed apart in ``score_s``), keeps the rows and their
    mean in ``DenoiseSummary.scores`` and writes them to ``out_dir/dnsmos.csv``
    (:data:`SCORE_CSV`); ``lines()`` then ends with the table (:func:`dnsmos_table`).

    Raises
    ------
    ArtifactError
        If ``model`` is not a complete stage-03 run, or has no ``model.onnx`` for ``engine="onnx"``;
        with ``score``, if the DNSMOS models (``speechmos``) are not installed.
    ConfigError
        For an unknown ``engine``.
    AudioError
        If an input does not exist, or an output (with ``score``, also ``dnsmos.csv``) exists and
        ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    jobs = _jobs([Path(p) for p in inputs], out_dir)
    existing = [d for _, d in jobs if d.exists()] + ([out_dir / SCORE_CSV] if score else [])
    existing = [d for d in existing if d.exists()]
    if existing and not overwrite:
        raise AudioError(
            f"{len(existing)} output file(s) exist (first: {existing[0]}); pass --overwrite to replace them"
        )
    if any(s.resolve() == d.resolve() for s, d in jobs if d.exists()):
        raise AudioError("an output would replace its own input; choose another -o folder")
    if score:
        load_models()  # fail before the denoising if the DNSMOS models are unavailable
    den = Denoiser(model, patch_hop=patch_hop, engine=engine, atten_lim_db=atten_lim_db, inference=inference)
    t0 = time.perf_counter()
    n_warm = max(den.sample_rate // 2, 2 * den.fx.cfg.n_fft, 2 * den.context)
    den(np.random.default_rng(0).normal(0.0, 1e-3, n_warm).astype(np.float32))
    summary = DenoiseSummary(engine=den.engine, load_s=den.load_seconds, warmup_s=time.perf_counter() - t0)
    t0 = time.perf_counter()
    for src, dst in tqdm(jobs, desc="denoise", unit="file", disable=not progress):
        try:
            summary.audio_s += denoise_file(den, src, dst, block_s=block_s)
            summary.outputs.append(dst)
            summary.inputs.append(src)
        except AudioError as exc:
            summary.skipped.append((src, str(exc)))
    summary.seconds = time.perf_counter() - t0
    if not summary.outputs:
        raise AudioError(
            f"no file could be denoised ({len(summary.skipped)} skipped; first: "
            f"{summary.skipped[0][1] if summary.skipped else 'none'})"
        )
    if score:
        t0 = time.perf_counter()
        summary.scores = dnsmos_scores(list(zip(summary.inputs, summary.outputs)), out_dir, progress=progress)
        summary.score_s = time.perf_counter() - t0
        csv_rows = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in summary.scores]
        summary.score_csv = write_csv(out_dir / SCORE_CSV, csv_rows, SCORE_FIELDS)
    return summary


def _rate(path: Path) -> dict[str, float]:
    """DNSMOS of one file (read whole, at 16 kHz); NaN for each scale, with a warning, if it cannot be read."""
    try:
        y, _ = load_audio(path, sample_rate=DNSMOS_RATE)
        return dnsmos(y, sample_rate=DNSMOS_RATE)
    except AudioError as exc:
        log.warning("DNSMOS of %s: %s; recording NaN", path, exc)
        return {key: float("nan") for key, _, _ in _SCALES}


def _mean(values) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def dnsmos_scores(pairs, out_dir: str | Path, *, progress: bool = True) -> list[dict]:
    """DNSMOS P.835 (SIG, BAK, OVRL) of each input before and after denoising, plus a mean row.

    Parameters
    ----------
    pairs : sequence of (Path, Path)
        ``(input, output)`` audio files; each is read whole, folded to mono and resampled to 16 kHz.
    out_dir : str or Path
        The output folder: the ``file`` column is each output's path relative to it.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of dict
        One row per pair with the keys of :data:`SCORE_FIELDS` (``file``, ``input`` and the float
        columns ``sig_before``, ``sig_after``, ``bak_before``, ... on the 1-5 MOS scale), then a row
        with ``file="mean"`` and the mean of each column over the files where it is finite. A file
        that cannot be read or is shorter than 0.5 s gets NaN (see :func:`speech_dae.dnsmos.dnsmos`).
    """
    out_dir = Path(out_dir)
    rows = []
    for src, dst in tqdm(pairs, desc="dnsmos", unit="file", disable=not progress):
        before, after = _rate(Path(src)), _rate(Path(dst))
        dst = Path(dst)
        row = {"file": (dst.relative_to(out_dir) if dst.is_relative_to(out_dir) else dst).as_posix(), "input": str(src)}
        for key, col, _ in _SCALES:
            row[f"{col}_before"], row[f"{col}_after"] = before[key], after[key]
        rows.append(row)
    mean = {"file": "mean", "input": ""}
    mean.update({f: _mean(r[f] for r in rows) for f in SCORE_FIELDS[2:]})
    return rows + [mean]


def dnsmos_table(rows: list[dict]) -> list[str]:
    """The lines of a plain-text table of :func:`dnsmos_scores` rows: a title, a header, one line per row.

    Columns: the file, then ``before`` (the input) and ``after`` (the denoised output) for each of
    SIG, BAK and OVRL, with two decimals (``nan`` where a score is missing).
    """
    header = ["file"] + [f"{label} {when}" for _, _, label in _SCALES for when in ("before", "after")]
    cols = [f"{c}_{when}" for _, c, _ in _SCALES for when in ("before", "after")]
    body = [[str(r["file"])] + [f"{r[c]:.2f}" for c in cols] for r in rows]
    width = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def fmt(line: list[str]) -> str:
        return "  ".join([line[0].ljust(width[0])] + [v.rjust(w) for v, w in zip(line[1:], width[1:])]).rstrip()

    title = "DNSMOS P.835 (MOS 1-5, higher is better; before = input, after = denoised output)"
    return [title, fmt(header), *(fmt(line) for line in body)]
