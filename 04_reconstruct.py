#!/usr/bin/env python3
"""Stage 04: denoise audio with models/<run>/ and write outputs/<run>/ (WAVs, metrics, report.html) and images."""

import sys

from speech_dae.cli import add_inference_options, config_from_args, make_parser, run, stage_options

parser = make_parser(
    "04_reconstruct.py",
    __doc__,
    epilog=(
        "with no --input, the test mixtures of the features the model was trained on are denoised and scored\n"
        "examples:\n  python 04_reconstruct.py --model models/logmag_type2\n"
        "  python 04_reconstruct.py --model models/logmag_type2 --input my_noisy/ --clean my_clean/"
    ),
)
parser.add_argument("--model", metavar="DIR", required=True, help="a run folder written by 03_train_autoencoder.py")
parser.add_argument("--input", metavar="WAV_OR_DIR", help="noisy audio file or folder (default: test mixtures)")
parser.add_argument("--clean", metavar="DIR", help="clean references for --input, matched by relative path")
parser.add_argument("--outputs", metavar="DIR", default="outputs", help="root of the denoised WAVs (default: outputs)")
parser.add_argument("--images", metavar="DIR", default="images", help="root of the images (default: images)")
add_inference_options(
    parser,
    patch_hop_default="default: the hop the run was validated with, recorded in run.json",
    atten_lim_default="default: reconstruct.atten_lim_db, no limit",
)
parser.add_argument(
    "--report-examples",
    metavar="N",
    type=int,
    help="files with players in outputs/<run>/report.html (default: one per input SNR; 0: none)",
)


def main(args):
    cfg = config_from_args(args)
    from speech_dae.stages.reconstruct import reconstruct

    paths = dict(model_dir=args.model, inputs=args.input, out_root=args.outputs, images_root=args.images)
    summary = reconstruct(cfg, **paths, **stage_options(args, "clean", "report_examples", "patch_hop"))
    yield from summary.lines()
    yield (
        f"next: open {summary.report} in a browser (players, spectrograms, scores), and score it "
        f"against the baselines: python 05_evaluate.py --models {args.model} --baselines all"
    )


if __name__ == "__main__":
    sys.exit(run(main, parser))
