#!/usr/bin/env python3
"""Peak memory and speed of ``speech-dae denoise`` on one long recording.

Builds a ``--minutes``-long 16-bit WAV by concatenating the test mixtures of a
stage-01 folder (looped), denoises it with ``python -m speech_dae denoise`` in a
child process, and reports the child's peak RSS (``getrusage``), its wall time
and real-time factor. Writes section ``denoise-long`` of ``benchmarks/BENCHMARKS.md``.

    python benchmarks/denoise_long.py --model WORK/models/fbank_type2 \\
        --features WORK/features/fbank --minutes 60
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from benchmarks._report import machine_line, publish  # noqa: E402


def write_long(features: Path, path: Path, minutes: float, sr: int = 16000) -> float:
    """Write ``minutes`` of looped test mixtures to ``path`` (PCM_16), block by block; returns seconds written."""
    with open(features / "manifest.csv", newline="") as f:
        ids = [r["id"] for r in csv.DictReader(f) if r["split"] == "test"]
    if not ids:
        raise SystemExit(f"{features}/manifest.csv lists no test mixture")
    total, need, i = 0, int(minutes * 60 * sr), 0
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as out:
        while total < need:
            y, _ = sf.read(str(features / "mixtures" / f"{ids[i % len(ids)]}.wav"), dtype="float32")
            y = y[: need - total]
            out.write(np.clip(y, -1, 1))
            total, i = total + y.size, i + 1
    return total / sr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="models/<run>/ written by stage 03")
    ap.add_argument("--features", required=True, help="a stage-01 folder whose test mixtures make the recording")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--block-seconds", type=float, default=30.0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "long.wav"
        seconds = write_long(Path(args.features), src, args.minutes)
        cmd = [
            sys.executable,
            "-m",
            "speech_dae",
            "denoise",
            str(src),
            "-o",
            str(Path(tmp) / "out"),
            "--model",
            args.model,
            "--block-seconds",
            f"{args.block_seconds:g}",
            "--no-progress",
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        )
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(proc.stderr)
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        out_frames = sf.info(str(Path(tmp) / "out" / "long.wav")).frames
    lines = [line for line in proc.stdout.splitlines() if "real time" in line]
    text = "\n".join(
        [
            "### `speech-dae denoise` on a long recording",
            "",
            f"Command: `python benchmarks/denoise_long.py --model {args.model} --features {args.features} "
            f"--minutes {args.minutes:g} --block-seconds {args.block_seconds:g}`  ",
            f"Machine: {machine_line()}",
            "",
            "| recording | model | block | peak RSS (child process) | wall time (incl. ~5 s TF import) | × real time |",
            "|---|---|---|---|---|---|",
            f"| {seconds / 60:.1f} min, 16 kHz PCM_16 | {Path(args.model).name} | {args.block_seconds:g} s | "
            f"{peak_mb:,.0f} MB | {wall:.1f} s | {seconds / wall:.0f} |",
            "",
            f"The CLI's own line: `{lines[-1] if lines else proc.stdout.strip()}`; output length "
            f"{out_frames} samples = input length {int(round(seconds * 16000))}: "
            f"{'equal' if out_frames == int(round(seconds * 16000)) else 'DIFFERENT'}.",
        ]
    )
    publish("denoise-long", text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
