#!/usr/bin/env python3
"""Inference real-time factor of trained runs, measured alone on the machine (one process, no metric workers).

For each run, the whole-file ``Denoiser`` (features -> one batched predict ->
overlap-average -> inverse, each run at its own recorded patch_hop, as in stage 04/05)
denoises the same ``--files`` test mixtures; the best of ``--repeats`` passes
is kept (the first call also traces the model, so it is excluded). Writes
section ``rtf-<name>`` of ``benchmarks/BENCHMARKS.md``.

    python benchmarks/rtf_runs.py --name zoo --features WORK/features/fbank \\
        --runs WORK/models/*
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import machine_line, publish  # noqa: E402
from benchmarks.speed import best_time  # noqa: E402
from speech_dae.audio import load_audio  # noqa: E402
from speech_dae.inference import Denoiser  # noqa: E402


def time_run(run: Path, audio: list, *, patch_hop: int | None, repeats: int) -> float:
    """Best-of-``repeats`` seconds to denoise every signal in ``audio`` with ``run`` (``patch_hop`` None: the
    run's own, recorded in run.json)."""
    den = Denoiser(run, patch_hop=patch_hop)
    den(audio[0])  # trace / warm up on one file, not the whole set
    return best_time(lambda: [den(y) for y in audio], repeats, warmup=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, help="models/<run>/ folders")
    ap.add_argument("--features", required=True, help="stage-01 folder whose test mixtures are denoised")
    ap.add_argument("--name", default="runs")
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    features = Path(args.features)
    with open(features / "manifest.csv", newline="") as f:
        ids = [r["id"] for r in csv.DictReader(f) if r["split"] == "test"][: args.files]
    audio = [load_audio(features / "mixtures" / f"{i}.wav", sample_rate=16000)[0] for i in ids]
    seconds = sum(y.size for y in audio) / 16000
    rows = []
    for run in sorted(Path(r) for r in args.runs if (Path(r) / "model.keras").is_file()):
        t = time_run(run, audio, patch_hop=None, repeats=args.repeats)
        rows.append(f"| {run.name} | {seconds / t:.0f} |")
        print(rows[-1], flush=True)
    cmd = (
        f"python benchmarks/rtf_runs.py --name {args.name} --features {args.features} --files {args.files} "
        f"--runs {Path(args.runs[0]).parent}/*"
    )
    text = "\n".join(
        [
            f"### Inference speed of the `{args.name}` runs (alone on the machine)",
            "",
            f"Command: `{cmd}`  ",
            f"Machine: {machine_line()}  ",
            f"Whole-file denoising of {len(audio)} test mixtures ({seconds:.0f} s of audio), "
            f"each run at its own patch_hop (run.json), best of {args.repeats}; TensorFlow's own threads only.",
            "",
            "| run | × real time |",
            "|---|---|",
            *rows,
        ]
    )
    publish(f"rtf-{args.name}", text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
