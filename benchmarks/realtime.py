#!/usr/bin/env python3
"""The speed table of issue 17: whole files, streaming and start-up, against DeepFilterNet3 and RNNoise.

All in one process on one signal: ``--seconds`` of the corpus's clean test speech mixed
with its test noises at ``--snr`` dB (``benchmarks/streaming.py``'s ``noisy_signal``),
written once as a 16-bit WAV at 16 kHz.

1. **Whole file, end to end** (read, features, network, inverse, write): our model through
   ``speech_dae.inference.files.denoise_file`` (the path of ``speech-dae denoise``; one block
   holds the whole file) with the onnx engine and with Keras, in sequence inference and, for
   the comparison with the code before issue 17, in patch inference at the run's own
   ``patch_hop``; then DeepFilterNet3 (libDF's ONNX, ``speech_dae.peers``) and RNNoise on the
   same file (read, run, write). × real time and the ratio to ours (onnx). Best of ``--repeats``
   after one untimed run.
2. **Where the time goes** (onnx, sequence): read, STFT, features and normalisation, network,
   mask, inverse STFT, write, each timed alone; the network's multiply-adds per second
   against this machine's dense float32 matmul rate (2048² products, TensorFlow and NumPy).
3. **Streaming**: ``Denoiser.process_block`` with ``--blocks-ms`` blocks, frame by frame
   through the stateful step (onnxruntime and Keras) and, for the comparison, the patch
   streamer of patch inference; latency, × real time over all calls, per-call mean / p99,
   and max |Δ| against offline processing.
4. **Start-up**: ``speech-dae denoise`` on a 1 s file in a new process (wall time, best and
   median of ``--startup-repeats``), with the pretrained or given run's ONNX and with Keras.

    python benchmarks/realtime.py --corpus CORPUS
    python benchmarks/realtime.py --corpus CORPUS --model WORK/models/best --no-write
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from benchmarks._report import machine_line, publish  # noqa: E402
from benchmarks.speed import best_time, forward_flops, matmul_flops  # noqa: E402
from benchmarks.streaming import noisy_signal, stream  # noqa: E402
from speech_dae.inference import Denoiser  # noqa: E402
from speech_dae.inference.engine import PRETRAINED  # noqa: E402
from speech_dae.inference.files import denoise_file  # noqa: E402
from speech_dae.peers import PEERS, PeerUnavailable, check_peer  # noqa: E402


def whole_file_rows(model, wav: Path, out: Path, seconds: float, repeats: int) -> list[tuple[str, float, str]]:
    """(system, × real time, note) of every whole-file system, ours first."""
    rows = []
    ours = [
        ("speech-dae, onnx, sequence", dict(engine="onnx")),
        ("speech-dae, keras, sequence", dict(engine="keras")),
        ("speech-dae, keras, patches (before issue 17)", dict(engine="keras", inference="patch")),
    ]
    for label, kw in ours:
        den = Denoiser(model, **kw)
        hop = f", patch_hop {den.patch_hop}" if den.inference == "patch" else ""
        t = best_time(lambda den=den: denoise_file(den, wav, out, block_s=seconds + 1), repeats)
        rows.append((label + hop, seconds / t, f"{den.engine}, {den.inference} inference"))
        print(f"{rows[-1][0]}: {rows[-1][1]:.0f}x", flush=True)
    for name, fn in PEERS.items():
        try:
            check_peer(name)
        except PeerUnavailable as exc:
            rows.append((name, float("nan"), exc.skip_message()))
            continue

        def run_peer(fn=fn):
            y, sr = sf.read(str(wav), dtype="float32")
            sf.write(str(out), fn(y, sample_rate=sr), sr, subtype="PCM_16")

        t = best_time(run_peer, repeats)
        rows.append((name, seconds / t, "speech_dae.peers (48 kHz inside, resampled both ways)"))
        print(f"{name}: {rows[-1][1]:.0f}x", flush=True)
    return rows


def breakdown(model, wav: Path, out: Path, repeats: int) -> tuple[list[tuple[str, float]], float, float]:
    """Seconds per step of the onnx sequence path; the network's MAC/s; MACs per frame."""
    den = Denoiser(model, engine="onnx")
    y, sr = sf.read(str(wav), dtype="float32")
    S = den.fx.stft(y)
    feats = den.fx.from_stft(S)
    x = den.norm.norm_x(feats)
    mask = den.predict_sequence(x)
    D = den.denoised_stft(S, feats, mask)
    z = den.fx.istft(D, length=y.size)
    steps = [
        ("read WAV", lambda: sf.read(str(wav), dtype="float32")),
        ("STFT", lambda: den.fx.stft(y)),
        ("features + normalisation", lambda: den.norm.norm_x(den.fx.from_stft(S))),
        ("network", lambda: den.predict_sequence(x)),
        ("mask on the STFT", lambda: den.denoised_stft(S, feats, mask)),
        ("inverse STFT", lambda: den.fx.istft(D, length=y.size)),
        ("write WAV", lambda: sf.write(str(out), z, sr, subtype="PCM_16")),
    ]
    times = [(name, best_time(fn, repeats)) for name, fn in steps]
    keras_den = Denoiser(model, engine="keras", inference="patch")
    macs_per_frame = forward_flops(keras_den.model) / 2 / keras_den.context
    network_s = dict(times)["network"]
    return times, macs_per_frame * len(x) / network_s, macs_per_frame


def streaming_rows(model, x: np.ndarray, blocks_ms: list[float]) -> list[str]:
    rows = []
    systems = [
        ("onnx, frame step", dict(engine="onnx")),
        ("keras, frame step", dict(engine="keras")),
        ("keras, patches (before issue 17)", dict(engine="keras", inference="patch")),
    ]
    for label, kw in systems:
        den = Denoiser(model, **kw)
        sr = den.sample_rate
        offline = den(x)
        stream(den, x[:sr], int(round(0.01 * sr)))  # warm-up
        for ms in blocks_ms:
            block = int(round(ms * sr / 1000))
            y, times = stream(den, x, block)
            us = 1e6 * times
            rows.append(
                f"| {label} | {ms:g} ms ({block}) | {1000 * den.latency_seconds:.1f} | "
                f"{x.size / sr / times.sum():.0f} | {us.mean():.0f} | {np.percentile(us, 99):.0f} | "
                f"{np.abs(y - offline).max():.1e} |"
            )
            print(rows[-1], flush=True)
    return rows


def startup(model, one_s: Path, out: Path, repeats: int) -> list[tuple[str, float, float]]:
    rows = []
    for engine in ("onnx", "keras"):
        cmd = [sys.executable, "-m", "speech_dae", "denoise", str(one_s), "-o", str(out), "--overwrite"]
        cmd += ["--no-progress", "--engine", engine] + ([] if model == PRETRAINED else ["--model", str(model)])
        walls = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            walls.append(time.perf_counter() - t0)
        rows.append((engine, min(walls), statistics.median(walls)))
        print(f"start-up {engine}: best {min(walls):.2f} s, median {statistics.median(walls):.2f} s", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True, help="CORPUS: a --data corpus with test/clean and test/noise")
    ap.add_argument("--model", default=None, help="models/<run>/ (default: the pretrained model in the package)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--snr", type=float, default=5.0, help="mixing SNR in dB")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--blocks-ms", type=float, nargs="+", default=[10.0, 20.0])
    ap.add_argument("--startup-repeats", type=int, default=5)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    model = Path(args.model) if args.model else PRETRAINED
    load = [os.getloadavg()[0]]
    den = Denoiser(model, engine="onnx")
    sr = den.sample_rate
    x, n_clean, n_noise = noisy_signal(Path(args.corpus), args.seconds, args.snr, sr)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wav, out, one_s = tmp / "noisy.wav", tmp / "out.wav", tmp / "one_second.wav"
        sf.write(str(wav), x, sr, subtype="PCM_16")
        sf.write(str(one_s), x[:sr], sr, subtype="PCM_16")
        whole = whole_file_rows(model, wav, out, args.seconds, args.repeats)
        steps, macs, macs_per_frame = breakdown(model, wav, out, args.repeats)
        streams = streaming_rows(model, x, args.blocks_ms)
        starts = startup(model, one_s, tmp / "startup", args.startup_repeats)
    tf_flops, np_flops = matmul_flops()
    load.append(os.getloadavg()[0])
    ours = whole[0][1]
    total = sum(t for _, t in steps)
    name = "the pretrained model (speech_dae/pretrained)" if model == PRETRAINED else f"`{args.model}`"
    cmd = f"python benchmarks/realtime.py --corpus {args.corpus}" + (f" --model {args.model}" if args.model else "")
    cmd += f" --seconds {args.seconds:g} --snr {args.snr:g} --repeats {args.repeats}"
    cmd += f" --blocks-ms {' '.join(f'{b:g}' for b in args.blocks_ms)}"
    text = "\n".join(
        [
            "### Real time: whole files, streaming and start-up against DeepFilterNet3 and RNNoise (issue 17)",
            "",
            f"Command: `{cmd}`  ",
            f"Machine: {machine_line()}; load average (1 min) {load[0]:.1f} before, {load[1]:.1f} after",
            "",
            f"Model: {name} ({den.info.model}, {den.info.feature}, {den.info.n_params or 0:,} parameters, "
            f"{macs_per_frame / 1e3:.0f} k multiply-adds per frame, "
            f"{macs_per_frame * sr / den.fx.cfg.hop_length / 1e6:.0f} MMAC per second of audio). "
            f"Signal: {args.seconds:g} s at {sr} Hz, the first {n_clean} clean test "
            f"utterances of `{args.corpus}` mixed at {args.snr:g} dB with its first {n_noise} test noises, "
            "as a 16-bit WAV. Times are the best of the repeats after an untimed run.",
            "",
            "Whole file, end to end (read, features, network, inverse, write):",
            "",
            "| system | × real time | ratio to speech-dae onnx | how |",
            "|---|---|---|---|",
            *[f"| {s} | {r:.0f} | {r / ours:.2f} | {note} |" for s, r, note in whole],
            "",
            f"Where the time goes (onnx, sequence inference, {args.seconds:g} s; the steps timed alone sum to "
            f"{1000 * total:.0f} ms, {args.seconds / total:.0f}× real time):",
            "",
            "| step | ms | share |",
            "|---|---|---|",
            *[f"| {s} | {1000 * t:.1f} | {t / total:.0%} |" for s, t in steps],
            "",
            f"The network runs {macs / 1e9:.1f} GMAC/s; this machine's dense float32 2048² matmul runs "
            f"{tf_flops / 2e9:.0f} GMAC/s in TensorFlow and {np_flops / 2e9:.0f} GMAC/s in NumPy, so the network "
            f"reaches {macs / (max(tf_flops, np_flops) / 2):.0%} of the faster.",
            "",
            "Streaming (`Denoiser.process_block`; latency: output sample t is out once input sample t + latency "
            "is in; µs per call of fixed-size blocks; max |Δ| against `Denoiser(signal)`):",
            "",
            "| stream | block | latency ms | × real time | µs per block | p99 µs | max \\|Δ\\| |",
            "|---|---|---|---|---|---|---|",
            *streams,
            "",
            "DeepFilterNet3 and RNNoise are timed on whole files only: `speech_dae.peers` runs them offline.",
            "",
            "Start-up: `speech-dae denoise one_second.wav -o OUT` in a new process, wall time including Python "
            f"and every import ({args.startup_repeats} runs):",
            "",
            "| engine | best s | median s |",
            "|---|---|---|",
            *[f"| {e} | {b:.2f} | {m:.2f} |" for e, b, m in starts],
        ]
    )
    publish("realtime", text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
