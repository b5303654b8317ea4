#!/usr/bin/env python3
"""Measure how fast speech-dae runs on this machine, as ratios, and write the "speed" section of BENCHMARKS.md.

In one process, on real speech (WAVs under --audio concatenated up to --seconds):

1. feature extraction, for every type in ``speech_dae.config.FEATURE_TYPES``, and
   the inverse back to audio (``to_audio``), in × real time;
2. whole-file denoising (features -> model -> inverse) with each trained run given
   with --models, and with every classical baseline in ``speech_dae.baselines.BASELINES``,
   in × real time and relative to ``noisereduce_stationary``;
3. training throughput of every registry model at the default config's patch shape
   for each feature type (``model.fit`` on random in-memory data), in patches/s, and
   its FLOP/s as a share of this machine's dense float32 matmul FLOP/s (measured here).

Every time is the best of --repeats runs after an untimed one (time.perf_counter). Figures are printed
as markdown and written into benchmarks/BENCHMARKS.md unless --no-write is given:

    python benchmarks/speed.py --models models/fbank_type2
    python benchmarks/speed.py --models models/fbank_type1 models/fbank_type2 --seconds 30 --no-write
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks._report import machine_line, publish  # noqa: E402
from speech_dae.audio import list_audio, load_audio  # noqa: E402
from speech_dae.baselines import BASELINES, run_baseline  # noqa: E402
from speech_dae.config import FEATURE_TYPES, load_config  # noqa: E402
from speech_dae.errors import AudioError, ConfigError, SpeechDAEError  # noqa: E402
from speech_dae.features import FeatureExtractor  # noqa: E402

REFERENCE = "noisereduce_stationary"


def best_time(fn, repeats: int, warmup: bool = True) -> float:
    """Shortest wall time of ``repeats`` calls of ``fn()``, in seconds, after one untimed call if ``warmup``."""
    if warmup:
        fn()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def fmt(v: float) -> str:
    """Three significant figures at most, no exponent."""
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def load_speech(folder: str, seconds: float, sr: int) -> tuple[np.ndarray, int]:
    """Files under ``folder`` in sorted order, concatenated and cut to ``seconds``; returns (y, files used)."""
    files = list_audio(folder)
    if not files:
        raise AudioError(f"--audio {folder} holds no audio file")
    parts, n = [], 0
    for path in files:
        parts.append(load_audio(path, sample_rate=sr)[0])
        n += parts[-1].size
        if n >= seconds * sr:
            break
    return np.concatenate(parts)[: int(seconds * sr)], len(parts)


def forward_flops(model) -> int:
    """FLOPs of one forward pass for one patch: 2 x multiply-adds of the Dense and convolution kernels.

    Dense: 2·in·out per position; ConvND: 2·prod(kernel) per output position;
    ConvNDTranspose: 2·prod(kernel) per input position (each input element is
    scattered through the whole kernel). Biases, activations, pooling,
    normalisation, Dropout, Add and every other layer are ignored.
    """
    import keras
    from keras import layers as L

    def flat(m):
        for layer in m.layers:
            yield from flat(layer) if isinstance(layer, keras.Model) else (layer,)

    def spatial(shape, data_format):
        dims = shape[2:] if data_format == "channels_first" else shape[1:-1]
        return math.prod(int(d) for d in dims)

    total = 0
    for layer in flat(model):
        if isinstance(layer, L.Dense):
            positions = math.prod(int(d) for d in layer.output.shape[1:-1])
        elif isinstance(layer, (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose)):
            positions = spatial(layer.input.shape, layer.data_format)
        elif isinstance(layer, (L.Conv1D, L.Conv2D, L.Conv3D)):
            positions = spatial(layer.output.shape, layer.data_format)
        else:
            continue
        total += 2 * math.prod(layer.kernel.shape) * positions
    return total


def matmul_flops(n: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """Dense float32 ``n x n`` matmul FLOP/s (2·n³ per product) with TensorFlow and with NumPy."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    ta, tb = tf.constant(a), tf.constant(b)
    t_tf = best_time(lambda: tf.linalg.matmul(ta, tb).numpy(), repeats)
    t_np = best_time(lambda: a @ b, repeats)
    return 2 * n**3 / t_tf, 2 * n**3 / t_np


def train_throughput(name, hparams, shape, cfg, max_batches: int, budget_s: float = 5.0) -> dict:
    """Patches/s of ``train_on_batch`` (Adam, compiled as speech_dae.training.trainer does) after two untimed steps.

    Steps are timed until ``budget_s`` seconds or ``max_batches`` batches have passed (at least 2), so large
    models stay affordable on 2 cores.
    """
    import keras

    from speech_dae.models import build_model

    keras.utils.set_random_seed(cfg.seed)
    model = build_model(name, shape, **hparams)
    t = cfg.training
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=t.learning_rate), loss=t.loss)
    rng = np.random.default_rng(cfg.seed)
    x = rng.standard_normal((t.batch_size, *shape), dtype=np.float32)
    y = rng.standard_normal(x.shape, dtype=np.float32)
    for _ in range(2):  # tracing and warm-up
        model.train_on_batch(x, y)
    n, t0 = 0, time.perf_counter()
    while n < 2 or (n < max_batches and time.perf_counter() - t0 < budget_s):
        model.train_on_batch(x, y)
        n += 1
    out = {
        "params": model.count_params(),
        "flops": forward_flops(model),
        "patches_s": n * t.batch_size / (time.perf_counter() - t0),
        "batches": n,
    }
    keras.backend.clear_session()
    return out


def main() -> None:
    from speech_dae.models import model_names

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--models",
        nargs="*",
        default=[],
        metavar="RUN_DIR",
        help="trained run folders (models/<run>/); none: the model inference rows are skipped",
    )
    ap.add_argument(
        "--audio",
        default="data_sample/test/clean",
        metavar="DIR",
        help="speech to time on, concatenated in sorted order (default: data_sample/test/clean)",
    )
    ap.add_argument("--seconds", type=float, default=60.0, help="seconds of audio to use at most (default: 60)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per figure, the best is kept (default: 3)")
    ap.add_argument(
        "--train-models",
        nargs="*",
        default=None,
        metavar="NAME",
        help=f"registry models to time training of (default: all of {', '.join(model_names())}; "
        "give the option with no name to skip training)",
    )
    ap.add_argument(
        "--train-batches",
        type=int,
        default=64,
        help="at most this many timed training batches per model (default: 64; timing stops after 5 s)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="config override, as for the numbered scripts (repeatable)",
    )
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    try:
        text = run(args)
    except SpeechDAEError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    publish("speed", text, write=not args.no_write)


def run(args) -> str:
    """Take every measurement and return the markdown text."""
    from speech_dae.models import model_names

    cfg = load_config(overrides=args.overrides)
    train_models = model_names() if args.train_models is None else args.train_models
    unknown = sorted(set(train_models) - set(model_names()))
    if unknown:
        raise ConfigError(
            f"--train-models: unknown model(s) {', '.join(unknown)}; choose from {', '.join(model_names())}"
        )
    if args.repeats < 1 or args.train_batches < 1 or args.seconds <= 0:
        raise ConfigError("--repeats and --train-batches must be >= 1 and --seconds > 0")
    from speech_dae.inference import Denoiser  # imports Keras

    r = cfg.reconstruct
    denoisers = [
        Denoiser(d, patch_hop=r.patch_hop, batch_size=r.batch_size, max_gain=r.max_gain) for d in args.models
    ]  # load all first: a bad folder fails before any timing
    sr = cfg.audio.sample_rate
    speech = {sr: load_speech(args.audio, args.seconds, sr)}
    y, n_files = speech[sr]
    dur = y.size / sr
    import keras
    import tensorflow as tf

    out = [
        "## Speed",
        "",
        machine_line() + f"; TensorFlow {tf.__version__}, Keras {keras.__version__}, NumPy {np.__version__}",
        "",
        f"Command: `{shlex.join(['python', 'benchmarks/speed.py', *sys.argv[1:]])}`",
        "",
        f"Audio: {dur:.1f} s of speech ({n_files} file{'s' * (n_files != 1)} from `{args.audio}`, "
        f"concatenated) at {sr} Hz. Every time is the best of {args.repeats} runs after an untimed one; "
        "× real time = audio seconds per wall-clock second (higher is faster).",
        "",
    ]

    # 1. features --------------------------------------------------------------------------------
    out += ["### Feature extraction", "", "| feature | bins | step | × real time |", "|---|---|---|---|"]
    extractors, notes = {}, []
    for kind in FEATURE_TYPES:
        try:
            fx = FeatureExtractor(dataclasses.replace(cfg.features, type=kind), sr)
            feats = fx(y)  # also the warm-up
            t_fwd = best_time(lambda: fx(y), args.repeats, warmup=False)
            t_inv = best_time(lambda: fx.to_audio(feats, y, noisy_features=feats, max_gain=r.max_gain), args.repeats)
        except (SpeechDAEError, NotImplementedError) as exc:
            notes.append(f"{kind} skipped: {exc}")
            continue
        extractors[kind] = fx
        out += [
            f"| {kind} | {fx.n_bins} | features | {fmt(dur / t_fwd)} |",
            f"| {kind} | {fx.n_bins} | to_audio (inverse, noisy phase) | {fmt(dur / t_inv)} |",
        ]
    out += [""] + [f"- {n}" for n in notes] + [""] * bool(notes)

    # 2. denoising -------------------------------------------------------------------------------
    rows = []
    for den in denoisers:
        if den.sample_rate not in speech:
            speech[den.sample_rate] = load_speech(args.audio, args.seconds, den.sample_rate)
        yd = speech[den.sample_rate][0]
        den(yd[: den.sample_rate])  # warm-up on 1 s
        t = best_time(lambda: den(yd), args.repeats, warmup=False)
        rows.append(
            (
                f"{den.name} ({den.info.model}, {den.info.feature}, {den.info.n_params:,} params)",
                yd.size / den.sample_rate / t,
            )
        )
    for name in BASELINES:
        rows.append((f"baseline: {name}", dur / best_time(lambda: run_baseline(name, y, sample_rate=sr), args.repeats)))
    ref = dict(rows).get(f"baseline: {REFERENCE}")
    out += [
        "### Denoising a whole file",
        "",
        f"Runs: features -> model (patch hop {r.patch_hop}, batch {r.batch_size}) -> to_audio, as "
        f"04_reconstruct.py (a 1 s run is the warm-up). Ratio = × real time / × real time of {REFERENCE} "
        "(above 1: faster than it).",
        "",
        f"| method | × real time | ratio to {REFERENCE} |",
        "|---|---|---|",
    ]
    out += [f"| {label} | {fmt(v)} | {fmt(v / ref) if ref else '-'} |" for label, v in rows]
    out += [""] + (["- no --models given: trained runs were not timed", ""] if not denoisers else [])

    # 3. training --------------------------------------------------------------------------------
    tf_flops, np_flops = matmul_flops()
    ctx, t = cfg.dataset.context, cfg.training
    hop_s = cfg.features.hop_length / sr
    out += [
        "### Training throughput",
        "",
        f"Dense float32 2048×2048 matmul on this machine: TensorFlow {tf_flops / 1e9:.1f} GFLOP/s, "
        f"NumPy {np_flops / 1e9:.1f} GFLOP/s.",
        "",
        f"`train_on_batch` with batches of {t.batch_size} random patches held in memory (Adam, loss {t.loss}); "
        f"two untimed steps (tracing, warm-up), then steps timed for 5 s (at most {args.train_batches}), so the "
        "figures are the model's ceiling: real training also gathers patches from memory-mapped files and "
        f"validates every epoch. Spectral models: {ctx}-frame patches of fbank (40 bins) and logmag (257 bins); "
        "conv1d_time: waveform chunks of features.chunk_size samples. Output frames/s = patches/s × patch "
        "length (training patches overlap, so these are not distinct frames); audio × real time = patches/s × "
        f"the training stride (dataset.stride {cfg.dataset.stride} × hop {hop_s * 1000:g} ms, or chunk_size / 2 "
        "for waveform), the audio a training epoch covers per second. Forward FLOPs count only "
        "the Dense and convolution kernels (2 per multiply-add; biases, activations and other layers are "
        "ignored); training FLOPs ≈ 3 × forward.",
        "",
        "| model | feature | patch | params | forward MFLOP/patch | patches/s | output frames/s | "
        "audio × real time | training GFLOP/s | % of TF matmul |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    from speech_dae.models import MODEL_FEATURES

    for name in train_models:
        for kind in [k for k in ("fbank", "logmag", "waveform") if k in MODEL_FEATURES.get(name, FEATURE_TYPES)]:
            if kind not in extractors:
                continue
            wave = kind == "waveform"
            shape = (cfg.features.chunk_size, 1) if wave else (ctx, extractors[kind].n_bins)
            step_s = cfg.features.chunk_size // 2 / sr if wave else cfg.dataset.stride * hop_s
            try:
                m = train_throughput(name, cfg.model.params_for(name), shape, cfg, args.train_batches)
            except (SpeechDAEError, ValueError) as exc:
                notes.append(f"{name} on {kind} {shape} skipped: {str(exc).splitlines()[0]}")
                continue
            p, gflops = m["patches_s"], 3 * m["flops"] * m["patches_s"] / 1e9
            out.append(
                f"| {name} | {kind} | {shape[0]}×{shape[1]} | {m['params']:,} | {m['flops'] / 1e6:.2f} | "
                f"{fmt(p)} | {fmt(p * shape[0])} | {fmt(p * step_s)} | {gflops:.1f} | "
                f"{100 * gflops * 1e9 / tf_flops:.0f} % |"
            )
    out += [f"- {n}" for n in notes]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    main()
