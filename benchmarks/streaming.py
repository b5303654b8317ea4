#!/usr/bin/env python3
"""Streaming denoising (``Denoiser.process_block``): latency, speed per block and equality with offline.

Builds ``--seconds`` of noisy speech (the clean test utterances of ``--corpus``
concatenated in sorted order, mixed at ``--snr`` dB with its test noises,
concatenated the same way), then for every run of ``--models`` and every block
size of ``--blocks-ms``: streams the signal block by block through
``Denoiser.process_block`` + ``flush`` (one untimed warm-up stream first), and
reports the stated latency, the real-time factor (audio seconds / compute
seconds), the per-block compute time (mean, p99, max) against the block's
duration, and max |Δ| of the streamed output against ``Denoiser(signal)`` on the
whole signal. Writes section ``streaming`` of ``benchmarks/BENCHMARKS.md``.

    python benchmarks/streaming.py --models WORK/models/fbank_type2 \\
        WORK/models/logmel_dense_ln --corpus CORPUS --seconds 60
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks._report import machine_line, publish  # noqa: E402
from benchmarks.speed import load_speech  # noqa: E402
from speech_dae.inference import Denoiser  # noqa: E402
from speech_dae.mixing import mix_at_snr  # noqa: E402


def noisy_signal(corpus: Path, seconds: float, snr_db: float, sr: int) -> tuple[np.ndarray, int, int]:
    """``seconds`` of test speech mixed with test noise at ``snr_db``; returns (noisy, clean files, noise files)."""
    clean, n_clean = load_speech(str(corpus / "test" / "clean"), seconds, sr)
    noise, n_noise = load_speech(str(corpus / "test" / "noise"), seconds, sr)
    return mix_at_snr(clean, noise, snr_db, rng=np.random.default_rng(0)).noisy, n_clean, n_noise


def stream(den: Denoiser, x: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Feed ``x`` in blocks of ``block`` samples; returns (output incl. flush, seconds per process_block call)."""
    den.reset_stream()
    outs, times = [], np.empty(-(-x.size // block))
    for k, i in enumerate(range(0, x.size, block)):
        t0 = time.perf_counter()
        outs.append(den.process_block(x[i : i + block]))
        times[k] = time.perf_counter() - t0
    outs.append(den.flush())
    return np.concatenate(outs), times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="models/<run>/ folders written by stage 03")
    ap.add_argument("--corpus", required=True, help="CORPUS: a --data corpus with test/clean and test/noise")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--snr", type=float, default=5.0, help="mixing SNR in dB")
    ap.add_argument("--blocks-ms", type=float, nargs="+", default=[10.0, 20.0, 32.0])
    ap.add_argument(
        "--engine", default="keras", help="keras (model.keras) or onnx (model.onnx, written by speech-dae export)"
    )
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows, load = [], [os.getloadavg()[0]]
    for model in args.models:
        den = Denoiser(model, **({} if args.engine == "keras" else {"engine": args.engine}))
        sr = den.sample_rate
        x, n_clean, n_noise = noisy_signal(Path(args.corpus), args.seconds, args.snr, sr)
        offline = den(x)
        stream(den, x[:sr], int(round(0.01 * sr)))  # warm-up: model tracing, lazy imports
        for ms in args.blocks_ms:
            block = int(round(ms * sr / 1000))
            y, times = stream(den, x, block)
            if y.size != x.size:
                raise SystemExit(f"{model}: streamed {y.size} samples for {x.size} in")
            per_ms = 1000 * times
            rows.append(
                f"| {Path(model).name} ({den.info.feature}, {den.info.model}, context {den.context}) | "
                f"{block} ({1000 * block / sr:g} ms) | "
                f"{den.latency_samples} ({1000 * den.latency_seconds:.1f} ms) | "
                f"{x.size / sr / times.sum():.1f} | {per_ms.mean():.2f} | {np.percentile(per_ms, 99):.2f} | "
                f"{per_ms.max():.1f} | {np.mean(per_ms > 1000 * block / sr):.1%} | "
                f"{np.abs(y - offline).max():.1e} |"
            )
            print(rows[-1], flush=True)
    load.append(os.getloadavg()[0])
    text = "\n".join(
        [
            "### Streaming (`Denoiser.process_block`)",
            "",
            f"Command: `python benchmarks/streaming.py --models {' '.join(args.models)} --corpus {args.corpus} "
            f"--seconds {args.seconds:g} --snr {args.snr:g} --blocks-ms {' '.join(f'{b:g}' for b in args.blocks_ms)} "
            f"--engine {args.engine}`  ",
            f"Machine: {machine_line()}; load average (1 min) {load[0]:.1f} before, {load[1]:.1f} after",
            "",
            f"Signal: {args.seconds:g} s at {sr} Hz, the first {n_clean} clean test utterances of `{args.corpus}` "
            f"mixed at {args.snr:g} dB with its first {n_noise} test noises, streamed in fixed blocks (one untimed "
            "1 s warm-up stream first). Latency: output sample t is returned once input sample t + latency has "
            "been fed. "
            "× real time: audio seconds / compute seconds of all `process_block` calls; block ms: the wall time of "
            "each call (it returns the hops that became final: one or two for 10-20 ms blocks at an 8 ms hop); "
            "over: the share of calls slower than their block's duration. "
            "max |Δ|: streamed output (all blocks + `flush()`) against `Denoiser(signal)` on the whole signal.",
            "",
            f"| run ({args.engine}) | block (samples) | latency (samples) | × real time | block mean ms | p99 ms | "
            "max ms | over | max \\|Δ\\| vs offline |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    publish("streaming", text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
