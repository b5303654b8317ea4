#!/usr/bin/env python3
"""Stage 01: mix clean speech with noise at each SNR and extract features into features/<name>/."""

import sys

from speech_dae.cli import config_from_args, make_parser, run, stage_options
from speech_dae.config import FEATURE_TYPES

parser = make_parser(
    "01_extract_features.py",
    __doc__,
    epilog=(
        "input layouts:\n"
        "  --data DIR               train/{clean,noise}/ and test/{clean,noise}/ (like data_sample/)\n"
        "  --clean DIR --noise DIR  split into train/val/test by utterance and by noise recording\n"
        "  --noisy DIR --clean DIR  pairs matched by relative path (VoiceBank+DEMAND style)\n"
        "  --noisy DIR --noise-only DIR  no clean speech: for the partitioned and curro models\n"
        "example:\n  python 01_extract_features.py --data data_sample --feature logmag --out features/logmag"
    ),
)
src = parser.add_argument_group("inputs")
src.add_argument("--data", metavar="DIR", help="corpus with train/ and test/, each with clean/ and noise/")
src.add_argument("--clean", metavar="DIR", help="clean speech folder")
src.add_argument("--noise", metavar="DIR", help="noise recordings folder")
src.add_argument("--noisy", metavar="DIR", help="noisy recordings paired with --clean by relative path")
src.add_argument("--noise-only", metavar="DIR", help="noise-only recordings (soft label 1) for partitioned / curro")
parser.add_argument("--feature", choices=FEATURE_TYPES, help="feature type (default: features.type)")
parser.add_argument("--snr", metavar="DB", type=float, nargs="+", help="SNRs in dB (default: mixing.snr_db)")
parser.add_argument(
    "--share-noise",
    action="store_true",
    help="--clean/--noise with fewer noise recordings than splits: let train, val and test reuse them "
    "(the test scores then include noises training heard; recorded in params.json and every summary.md)",
)
parser.add_argument("--out", metavar="DIR", help="output folder (default: features/<feature>)")
jobs_help = (
    "worker processes for the per-utterance work; 0 = one per CPU core (default: 1). The output is identical whatever N"
)
parser.add_argument("--jobs", metavar="N", type=int, default=1, help=jobs_help)


def main(args):
    extra = [f"features.type={args.feature}"] if args.feature else []
    extra += [f"mixing.snr_db={list(args.snr)}"] if args.snr else []
    extra += ["mixing.share_noise=true"] if args.share_noise else []
    cfg = config_from_args(args, extra)
    from speech_dae.stages.extract import extract_features

    out = args.out or f"features/{cfg.features.type}"
    inputs = stage_options(args, "data", "clean", "noise", "noisy", "noise_only", "force", "jobs")
    summary = extract_features(cfg, out=out, **inputs)
    yield from summary.lines()
    config = f" --config {args.config}" if args.config else ""
    yield f"next: python 02_build_dataset.py{config} --features {out} --out datasets/{out.rstrip('/').split('/')[-1]}"


if __name__ == "__main__":
    sys.exit(run(main, parser))
