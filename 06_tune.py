#!/usr/bin/env python3
"""Tune a model's hyper-parameters with Optuna on datasets/<name>/ (train/val only); write the best as a config."""

import sys

from speech_dae.cli import config_from_args, make_parser, run, stage_options

parser = make_parser(
    "06_tune.py",
    __doc__,
    epilog=(
        "Each trial trains with 03's code (budget: --set training.epochs / steps_per_epoch / max_minutes) in a\n"
        "temporary folder; val_loss is reported every epoch and lagging trials are pruned (MedianPruner).\n"
        "--trials N is the total of finished trials in the study: re-running the same command after an\n"
        "interruption resumes from --storage and runs only the missing trials.\n"
        "example:\n  python 06_tune.py --dataset datasets/fbank --model type2 --trials 20 --storage sqlite:///tuning.db"
        " --set training.max_minutes=2"
    ),
)
parser.add_argument("--dataset", metavar="DIR", required=True, help="a folder written by 02_build_dataset.py")
parser.add_argument("--model", help="registry name (default: model.name)")
parser.add_argument(
    "--trials",
    metavar="N",
    type=int,
    required=True,
    help="finished (complete + pruned) trials the study should hold in total",
)
parser.add_argument("--storage", metavar="URL", required=True, help="Optuna storage, e.g. sqlite:///tuning.db")
parser.add_argument("--study", metavar="NAME", help="study name (default: <dataset name>_<model>)")
parser.add_argument("--out", metavar="FILE", help="config file to write (default: configs/tuned_<model>.yaml)")
parser.add_argument("--timeout", metavar="MIN", type=float, help="start no new trial after MIN minutes")


def main(args):
    cfg = config_from_args(args)
    from speech_dae.stages.tune import tune

    names = dict(model=args.model or cfg.model.name, study_name=args.study, timeout_min=args.timeout)
    summary = tune(
        cfg, **names, base_config=args.config, **stage_options(args, "dataset", "trials", "storage", "out", "force")
    )
    yield from summary.lines()


if __name__ == "__main__":
    sys.exit(run(main, parser))
