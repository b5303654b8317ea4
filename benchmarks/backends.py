#!/usr/bin/env python3
"""Training and inference speed of one model on every installed Keras backend -> section ``backends`` of BENCHMARKS.md.

The features (``--feature``, default fbank) and stage-02 dataset of ``--data``
(default ``data_sample/``) are built once under ``--work``. Then, for each
backend of ``--backends`` that is importable, a fresh process with
``KERAS_BACKEND`` set:

1. trains ``--model`` (default type2 with its default hyper-parameters) for
   ``1 + --epochs`` epochs (early stopping off): seconds per epoch = the median
   of ``run.json``'s ``epoch_seconds`` after the first (steady-state epochs,
   training and validation, without tracing or JIT compilation); the first
   epoch is reported on its own;
2. denoises the first ``--files`` test mixtures with the run
   (``reconstruct.Denoiser``: features -> model -> overlap-average -> inverse,
   as stage 04 without the images), best of ``--repeats`` after one untimed
   file: × real time.

    python benchmarks/backends.py --data data_sample --work /tmp/speech-dae-backends
    python benchmarks/backends.py --data data_sample --work /tmp/sdb --env OMP_NUM_THREADS=1 --no-write
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BACKENDS = ("tensorflow", "jax", "torch")


def worker(args) -> dict:
    """Train and time in this process (``KERAS_BACKEND`` already set); returns the figures."""
    import keras

    from benchmarks.rtf_runs import time_run
    from speech_dae.audio import load_audio
    from speech_dae.config import load_config
    from speech_dae.stages.train import train

    backend = keras.backend.backend()
    work = Path(args.work) / backend
    cfg = load_config(
        overrides=[
            f"model.name={args.model}",
            f"features.type={args.feature}",
            "training.patience=1000",
            *args.overrides,
        ]
    )
    kw = dict(
        dataset=Path(args.work) / "dataset",
        models_dir=work / "models",
        logs_dir=work / "logs",
        force=True,
        progress=False,
    )
    more = train(cfg.replace(**{"training.epochs": 1 + args.epochs}), run="run", **kw)
    per_epoch = float(np.median(more.info.epoch_seconds[1:]))
    features = Path(args.work) / "features"
    with open(features / "manifest.csv", newline="") as f:
        ids = [r["id"] for r in csv.DictReader(f) if r["split"] == "test"][: args.files]
    audio = [load_audio(features / "mixtures" / f"{i}.wav", sample_rate=cfg.audio.sample_rate)[0] for i in ids]
    if backend == "torch":  # inference needs no autograd graph (and np.asarray refuses tensors that require grad)
        import torch

        with torch.no_grad():
            seconds = time_run(more.run_dir, audio, patch_hop=cfg.reconstruct.patch_hop, repeats=args.repeats)
    else:
        seconds = time_run(more.run_dir, audio, patch_hop=cfg.reconstruct.patch_hop, repeats=args.repeats)
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    steps = -(-more.info.train_patches // cfg.training.batch_size)
    return {
        "backend": backend,
        "version": __import__(module).__version__,
        "keras": keras.__version__,
        "seconds_per_epoch": per_epoch,
        "steps": steps,
        "ms_per_step": 1000 * per_epoch / steps,
        "first_epoch_s": more.info.epoch_seconds[0],
        "val_loss": more.info.history["val_loss"][-1],
        "epochs": 1 + args.epochs,
        "params": more.info.n_params,
        "train_patches": more.info.train_patches,
        "val_patches": more.info.val_patches,
        "x_real_time": sum(y.size for y in audio) / cfg.audio.sample_rate / seconds,
        "audio_s": sum(y.size for y in audio) / cfg.audio.sample_rate,
    }


def build(args) -> None:
    """Features and dataset of ``--data`` under ``--work`` (reused when up to date)."""
    from speech_dae.config import load_config
    from speech_dae.stages.dataset import build_dataset
    from speech_dae.stages.extract import extract_features

    cfg = load_config(overrides=[f"features.type={args.feature}", *args.overrides])
    work = Path(args.work)
    extract_features(cfg, out=work / "features", data=args.data, progress=False)
    build_dataset(cfg, features=work / "features", out=work / "dataset", progress=False)


def markdown(results: list[dict], args) -> str:
    from benchmarks._report import machine_line

    cmd = f"python benchmarks/{Path(sys.argv[0]).name} " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    r0 = results[0]
    md = [
        "### Keras backends",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {machine_line()}  ",
        f"{args.feature} + {args.model} ({r0['params']:,} parameters), `{args.data}`: {r0['train_patches']:,} "
        f"training patches ({r0['steps']} steps per epoch), {r0['val_patches']:,} validation patches; "
        f"inference on {args.files} test mixtures ({r0['audio_s']:.0f} s of audio)"
        + (f"; environment {' '.join(args.env)}" if args.env else "")
        + ".",
        "",
        "| backend | version (Keras) | s / epoch | ms / step | first epoch s | val_loss after "
        f"{r0['epochs']} epochs | inference × real time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        md.append(
            f"| {r['backend']} | {r['version']} ({r['keras']}) | {r['seconds_per_epoch']:.1f} | "
            f"{r['ms_per_step']:.0f} | {r['first_epoch_s']:.1f} | {r['val_loss']:.4f} | {r['x_real_time']:.0f} |"
        )
    md += [
        "",
        f"s / epoch: median of epochs 2..{r0['epochs']} (training + validation); first epoch: the same plus "
        "tracing / JIT compilation. Input batches come from the same tf.data pipeline on every backend; inference "
        "is `reconstruct.Denoiser` (torch: under `torch.no_grad()`). The val_loss column differs between backends "
        "because each draws its own initial weights and dropout masks from the seed; it is the same on every re-run.",
    ]
    if any(r["backend"] == "torch" for r in results) and not any(e.startswith("OMP_NUM_THREADS=") for e in args.env):
        md += [
            "",
            "On a machine whose cores are busy with other work, torch's OpenMP threads wait spinning; "
            "`--env OMP_NUM_THREADS=1` measures torch without that.",
        ]
    return "\n".join(md)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "data_sample"), help="a corpus folder for 01 --data")
    ap.add_argument("--work", default="/tmp/speech-dae-backends", help="scratch folder (features, dataset, runs)")
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    ap.add_argument("--feature", default="fbank")
    ap.add_argument("--model", default="type2")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs after the first")
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="set in every backend's process")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return 0
    build(args)
    results = []
    for backend in args.backends:
        if importlib.util.find_spec(backend) is None:
            print(f"{backend}: not installed, skipped", flush=True)
            continue
        env = dict(os.environ, KERAS_BACKEND=backend, **dict(e.split("=", 1) for e in args.env))
        cmd = [sys.executable, __file__, "--worker", backend, *sys.argv[1:]]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(f"{backend}: failed\n{proc.stderr[-3000:]}", flush=True)
            continue
        results.append(json.loads(lines[-1][7:]))
        print(json.dumps(results[-1]), flush=True)
    if not results:
        return 1
    text = markdown(results, args)
    from benchmarks._report import publish

    publish("backends", text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
