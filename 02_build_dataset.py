#!/usr/bin/env python3
"""Stage 02: cut features/<name>/ into context patches, normalise (training split only), write datasets/<name>/."""

import sys
from pathlib import Path

from speech_dae.cli import config_from_args, make_parser, run

parser = make_parser(
    "02_build_dataset.py",
    __doc__,
    epilog=("example:\n  python 02_build_dataset.py --features features/logmag --out datasets/logmag --context 11"),
)
parser.add_argument("--features", metavar="DIR", required=True, help="a folder written by 01_extract_features.py")
parser.add_argument("--out", metavar="DIR", help="output folder (default: datasets/<features name>)")
parser.add_argument("--context", metavar="FRAMES", type=int, help="frames per patch (default: dataset.context)")
parser.add_argument("--stride", metavar="FRAMES", type=int, help="frames between patches (default: dataset.stride)")


def main(args):
    extra = [f"dataset.context={args.context}"] if args.context else []
    extra += [f"dataset.stride={args.stride}"] if args.stride else []
    cfg = config_from_args(args, extra)
    from speech_dae.stages.dataset import build_dataset

    out = args.out or f"datasets/{Path(args.features).name}"
    summary = build_dataset(cfg, features=args.features, out=out, force=args.force, progress=not args.no_progress)
    yield from summary.lines()
    model = cfg.model.name
    if not summary.info.get("clean_targets", True) and model not in ("partitioned", "curro"):
        model = "partitioned"  # no clean targets: only the semi-supervised models (partitioned, curro) train on it
    config = f" --config {args.config}" if args.config else ""
    yield f"next: python 03_train_autoencoder.py{config} --dataset {out} --model {model} --run {Path(out).name}_{model}"


if __name__ == "__main__":
    sys.exit(run(main, parser))
