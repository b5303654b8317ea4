#!/usr/bin/env python3
"""Stage 03: train a denoising autoencoder on datasets/<name>/ and save models/<run>/."""

import sys
from pathlib import Path

from speech_dae.cli import config_from_args, make_parser, run

parser = make_parser(
    "03_train_autoencoder.py",
    __doc__,
    epilog=(
        "models: type1 (Conv1D / Conv1DTranspose), type2 (dense), dense_ln (libdse LayerNorm dense),\n"
        "        cnn2d and unet (2-D conv on patches), conv1d_time (waveform chunks; needs --feature waveform),\n"
        "        shallow (thesis, supervised), partitioned and curro (thesis; train without clean speech),\n"
        "        tcn (causal dilated Conv1D bottleneck; the model of configs/best.yaml)\n"
        "example:\n  python 03_train_autoencoder.py --dataset datasets/logmag --model type2 --run logmag_type2\n"
        "several devices (TensorFlow backend): --distribute mirrored (--set training.cpu_devices=2 on a CPU), or\n"
        "  --distribute multiworker in one process per worker, each with TF_CONFIG (the chief writes models/<run>/)"
    ),
)
parser.add_argument("--dataset", metavar="DIR", required=True, help="a folder written by 02_build_dataset.py")
parser.add_argument("--model", help="registry name (default: model.name)")
parser.add_argument("--run", help="run name under models/ (default: <dataset name>_<model>)")
parser.add_argument("--epochs", type=int, help="maximum epochs (default: training.epochs)")
parser.add_argument(
    "--target",
    choices=["mapping", "mask"],
    help="mapping: predict clean features; mask: predict a gain in [0, 1] (default: training.target)",
)
parser.add_argument(
    "--distribute",
    choices=["none", "mirrored", "multiworker"],
    help="mirrored: this machine's devices; multiworker: the TF_CONFIG cluster (default: training.distribute)",
)


def main(args):
    extra = [f"model.name={args.model}"] if args.model else []
    extra += [f"training.epochs={args.epochs}"] if args.epochs else []
    extra += [f"training.target={args.target}"] if args.target else []
    extra += [f"training.distribute={args.distribute}"] if args.distribute else []
    cfg = config_from_args(args, extra)
    from speech_dae.stages.train import train

    suffix = "_mask" if cfg.training.target == "mask" else ""
    run_name = args.run or f"{Path(args.dataset).name}_{cfg.model.name}{suffix}"
    summary = train(cfg, dataset=args.dataset, run=run_name, force=args.force, progress=not args.no_progress)
    yield from summary.lines()
    from speech_dae.folders import load_dataset

    test = load_dataset(args.dataset, check_source=False)["splits"]["test"]
    hint = "" if test["utterances"] else " --input NOISY_FILE_OR_DIR  (this dataset has no test split)"
    yield f"next: python 04_reconstruct.py --model {summary.run_dir}{hint}"


if __name__ == "__main__":
    sys.exit(run(main, parser))
