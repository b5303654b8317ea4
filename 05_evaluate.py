#!/usr/bin/env python3
"""Stage 05: score models and classical baselines on the same files with PESQ, STOI, SI-SDR and more."""

import sys
from pathlib import Path

from speech_dae.baselines import BASELINES
from speech_dae.cli import add_inference_options, config_from_args, make_parser, run, stage_options
from speech_dae.peers import PEERS

parser = make_parser(
    "05_evaluate.py",
    __doc__,
    epilog=(
        "writes reports/<name>/results.csv (file x system), summary.md (mean ± 95% CI, overall and per input SNR)\n"
        "metrics_by_snr.png and report.html (tables, audio players, spectrograms; open it in a browser);\n"
        "with no --features/--input, the test split the first model was trained on is used\n"
        "examples:\n  python 05_evaluate.py --models models/fbank_type2 --baselines all --out reports/fbank\n"
        "  python 05_evaluate.py --models models/a models/b --input my_noisy/ --clean my_clean/ --out reports/mine"
    ),
)
parser.add_argument("--models", metavar="DIR", nargs="*", default=[], help="run folders written by 03")
baselines_help = (
    f"all (default), none, or names: {' '.join([*BASELINES, *PEERS])} "
    "(deepfilternet3 and rnnoise need the 'peers' extra: pip install -e '.[peers]')"
)
parser.add_argument("--baselines", metavar="NAME", nargs="*", default=["all"], help=baselines_help)
src = parser.add_argument_group("files to score (default: the test split the first model was trained on)")
src.add_argument("--features", metavar="DIR", help="a folder written by 01: score its test mixtures")
src.add_argument("--input", metavar="NOISY_DIR", help="noisy audio file or folder")
src.add_argument("--clean", metavar="CLEAN_DIR", help="clean references for --input, matched by relative path")
parser.add_argument("--out", metavar="DIR", help="report folder (default: reports/<first model or features name>)")
parser.add_argument("--metrics", metavar="NAME", nargs="+", help="subset of the metrics (default: all)")
parser.add_argument("--max-files", metavar="N", type=int, help="score at most N files per input SNR, evenly spaced")
parser.add_argument("--jobs", metavar="N", type=int, default=1, help="processes computing metrics (default: 1)")
parser.add_argument("--save-audio", action="store_true", help="also write every system's output WAVs")
add_inference_options(
    parser,
    patch_hop_default="for every model; default: each run's own, recorded in run.json",
    atten_lim_default=None,
)
snr_bin_help = "paired recordings (01 --noisy/--clean): group their measured SNRs in bins this wide (default: 5 dB)"
parser.add_argument("--snr-bin", metavar="DB", type=float, default=5.0, dest="snr_bin_db", help=snr_bin_help)
parser.add_argument(
    "--report-examples",
    metavar="N",
    type=int,
    help="files with players in report.html (default: one per input SNR, at most 8; 0: none)",
)

#: Options passed to ``evaluate`` under their own names.
OPTIONS = ("models", "baselines", "features", "clean", "metrics", "max_files", "jobs", "save_audio", "force")
OPTIONS += ("patch_hop", "snr_bin_db")


def main(args):
    cfg = config_from_args(args)
    from speech_dae.stages.evaluate import evaluate

    out = args.out or f"reports/{Path(args.models[0] if args.models else args.features or args.input or '.').name}"
    options = stage_options(args, *OPTIONS)
    summary = evaluate(cfg, out=out, inputs=args.input, report_examples=args.report_examples, **options)
    yield from summary.lines()
    yield f"next: open {summary.out}/report.html in a browser, or read {summary.out}/summary.md"


if __name__ == "__main__":
    sys.exit(run(main, parser))
