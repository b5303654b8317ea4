#!/usr/bin/env python3
"""Exported models (ONNX, TFLite) against Keras: parity, file size, forward pass, cold start, real-time factor.

For each run (a copy in a temporary folder, so the run folders are not touched
unless ``--in-place``):

1. ``speech_dae.inference.export.export_run`` to ONNX and TFLite: max |exported - Keras|
   on 1024 real patches of the run's dataset, the file sizes, and one batched
   forward pass of those patches (best of 3 after a warm-up) in each engine;
2. cold start of ``python -m speech_dae denoise`` in a fresh process on a 1 s
   test mixture: process start to its first line of output (best of
   ``--repeats``), with ``--engine keras`` and ``--engine onnx``;
3. the real-time factor that ``speech-dae denoise`` prints (steady state, after
   start-up) on ``--minutes`` of the run's test mixtures concatenated
   (``benchmarks/denoise_long.py``'s ``write_long``), for both engines.

Writes section ``export`` of ``benchmarks/BENCHMARKS.md`` unless ``--no-write``:

    python benchmarks/export_speed.py
    python benchmarks/export_speed.py --runs models/fbank_type2 --minutes 1 --no-write
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import soundfile as sf  # noqa: E402

from benchmarks._report import machine_line, publish  # noqa: E402
from benchmarks.denoise_long import write_long  # noqa: E402
from speech_dae.inference.export import export_run  # noqa: E402
from speech_dae.runinfo import RunInfo  # noqa: E402

FORMATS = ("onnx", "tflite")


def first_output_s(cmd: list[str]) -> tuple[float, str]:
    """Seconds from starting ``cmd`` to its first line on stdout, and its whole stdout (it must exit 0)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: stderr can never block the child
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        first = proc.stdout.readline()
        t = time.perf_counter() - t0
        rest = proc.stdout.read()
        if proc.wait():
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err.read()}")
    return t, first + rest


def denoise_cmd(run: Path, src: Path, out: Path, engine: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "speech_dae",
        "denoise",
        str(src),
        "-o",
        str(out),
        "--model",
        str(run),
        "--engine",
        engine,
        "--no-progress",
        "--overwrite",
    ]


def parse_rtf(stdout: str) -> tuple[float, float, float]:
    """(engine load s, first call s, x real time) from ``speech-dae denoise``'s summary lines."""
    load, warm = map(float, re.search(r"loaded in ([\d.]+) s .* first call ([\d.]+) s", stdout).groups())
    return load, warm, float(re.search(r"\(([\d.]+)x real time\)", stdout).group(1))


def measure(run: Path, work: Path, *, minutes: float, repeats: int) -> dict:
    info = RunInfo.load(run)
    row = {"run": run.name, "params": info.n_params, "keras_mb": (run / "model.keras").stat().st_size / 1e6}
    for fmt in FORMATS:
        s = export_run(run, fmt)
        print("\n".join(s.lines()), flush=True)
        if not s.ok:
            raise SystemExit(f"{run}: {fmt} export failed its parity check")
        row[f"export_{fmt}"] = s
    features = Path(info.features_dir)
    short, long = work / f"{run.name}_1s.wav", work / f"{run.name}_long.wav"
    write_long(features, short, 1 / 60)
    row["audio_s"] = write_long(features, long, minutes)
    for engine in ("keras", "onnx"):
        cold = []
        for _ in range(repeats):
            t, _ = first_output_s(denoise_cmd(run, short, work / "out", engine))
            cold.append(t)
        _, out = first_output_s(denoise_cmd(run, long, work / "out", engine))
        rtf_line = next((ln for ln in out.splitlines() if "real time" in ln), repr(out))
        print(
            f"{run.name} --engine {engine}: cold start {min(cold):.2f} s (of {', '.join(f'{c:.2f}' for c in cold)})"
            f"; {rtf_line}",
            flush=True,
        )
        row[engine] = {"cold_s": min(cold), **dict(zip(("load_s", "warm_s", "rtf"), parse_rtf(out)))}
    return row


def table(rows: list[dict], minutes: float) -> str:
    lines = [
        "| run | params | model.keras | model.onnx | model.tflite | max abs diff onnx / tflite | "
        "forward 1024 patches keras / onnx / tflite |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        o, t = r["export_onnx"], r["export_tflite"]
        lines.append(
            f"| {r['run']} | {r['params']:,} | {r['keras_mb']:.1f} MB | {o.size_bytes / 1e6:.1f} MB | "
            f"{t.size_bytes / 1e6:.1f} MB | {o.max_abs_diff:.1e} / {t.max_abs_diff:.1e} | "
            f"{1000 * o.keras_s:.0f} / {1000 * o.engine_s:.0f} / {1000 * t.engine_s:.0f} ms |"
        )
    lines += [
        "",
        f"`speech-dae denoise`, fresh process; cold start on a 1 s file, real-time factor on "
        f"{minutes:g} min of test mixtures:",
        "",
        "| run | engine | cold start (process start to first output) | engine load | first call | × real time |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        for engine in ("keras", "onnx"):
            e = r[engine]
            lines.append(
                f"| {r['run']} | {engine} | {e['cold_s']:.2f} s | {e['load_s']:.2f} s | "
                f"{e['warm_s']:.2f} s | {e['rtf']:.0f} |"
            )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, help="models/<run>/ folders written by stage 03")
    ap.add_argument("--minutes", type=float, default=2.0, help="length of the real-time-factor recording")
    ap.add_argument("--repeats", type=int, default=3, help="cold starts per engine (the best is reported)")
    ap.add_argument("--in-place", action="store_true", help="export into the run folders instead of copies")
    ap.add_argument("--no-write", action="store_true", help="print only; do not update BENCHMARKS.md")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in map(Path, args.runs):
            if not args.in_place:
                run = Path(
                    shutil.copytree(
                        run,
                        Path(tmp) / "runs" / run.name,
                        ignore=lambda d, names: [n for n in names if n not in ("model.keras", "run.json", "norm.npz")],
                    )
                )
            rows.append(measure(run, Path(tmp), minutes=args.minutes, repeats=args.repeats))
        sr = sf.info(str(Path(tmp) / f"{rows[0]['run']}_long.wav")).samplerate
    text = "\n".join(
        [
            "### Exported models: ONNX and TFLite against Keras",
            "",
            f"Command: `python benchmarks/export_speed.py --runs {' '.join(args.runs)} --minutes {args.minutes:g} "
            f"--repeats {args.repeats}`  ",
            f"Machine: {machine_line()}",
            "",
            "Parity: max |exported - Keras| over 1024 real patches of the run's dataset (must be < 1e-4). Forward: "
            "one batched call, best of 3 after a warm-up.",
            "",
            table(rows, args.minutes),
            "",
            f"Engine load = imports and model load; first call = the denoiser's warm-up on 0.5 s of noise (lazy "
            f"imports of the feature code); × real time is the steady state after both ({sr} Hz PCM_16 input).",
        ]
    )
    publish("export", text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
