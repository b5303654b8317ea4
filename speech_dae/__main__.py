"""``speech-dae`` / ``python -m speech_dae``: commands for using trained runs.

speech-dae denoise IN... -o OUT [--model models/RUN] [--engine auto|keras|onnx] [--overwrite] [--block-seconds 30]
    [--score] [--atten-lim-db DB] [--inference auto|sequence|patch]
    (no --model: the pretrained model shipped in the package, run by onnxruntime without TensorFlow)
speech-dae export --model models/RUN --format onnx|tflite|savedmodel [--audio FILE]
"""

from __future__ import annotations

import argparse
import sys

from .cli import add_inference_options, run

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speech-dae", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser(
        "denoise",
        help="denoise audio files and folders with a trained run",
        description="Denoise files or folders (recursively) with a run trained by "
        "03_train_autoencoder.py. Outputs keep the input's name, sample rate, format "
        "and subtype (mono); long recordings are processed in blocks, in flat memory.",
        epilog="examples:\n  speech-dae denoise recordings/ -o denoised/            # the pretrained model\n"
        "  speech-dae denoise recordings/ -o denoised/ --model models/fbank_type2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders (WAV, FLAC, OGG, any rate)")
    d.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
    d.add_argument(
        "--model",
        metavar="RUN_DIR",
        help="models/<run>/ written by stage 03 (default: the pretrained model shipped in the package, "
        "configs/best.yaml trained on the 1-hour corpus; 16 kHz)",
    )
    d.add_argument("--overwrite", action="store_true", help="replace existing output files")
    d.add_argument(
        "--block-seconds",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds of audio per block (bounds memory; default 30)",
    )
    add_inference_options(
        d,
        patch_hop_default="default: the hop the run was validated and scored with, recorded in run.json",
        atten_lim_default="default: no limit",
    )
    d.add_argument(
        "--engine",
        choices=("auto", "keras", "onnx"),
        default="auto",
        help="auto (default): the run's model.onnx if it was exported from its model.keras (the pretrained "
        "model has one), else keras; keras: model.keras; onnx: model.onnx (speech-dae export) with "
        "onnxruntime, without importing TensorFlow (faster start-up)",
    )
    d.add_argument(
        "--score",
        action="store_true",
        help="rate every input and output with DNSMOS P.835 (SIG, BAK, OVRL; no clean reference needed), "
        "print the before/after table with a mean row and write it to OUT/dnsmos.csv "
        "(0.2-0.3 s of CPU per second of audio, for the input and the output each)",
    )
    d.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    d.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    e = sub.add_parser(
        "export",
        help="export a trained run to ONNX, TFLite or a TensorFlow SavedModel",
        description="Export model.keras of a run trained by 03_train_autoencoder.py into the run\n"
        "folder (model.onnx, model.tflite or saved_model/), then check it against Keras\n"
        "on real features: patches of the run's dataset (run.json), or of --audio FILE.\n"
        "The largest difference must be < 1e-4; otherwise the export is kept as\n"
        "model.parity-failed.<ext> for inspection, the final name is not written, and\n"
        "the command exits with status 2. Prints the file size and one batched forward\n"
        "pass timed in Keras and in the exported engine.",
        epilog="examples:\n  speech-dae export --model models/fbank_type2 --format onnx\n"
        "  speech-dae denoise recordings/ -o denoised/ --model models/fbank_type2 "
        "--engine onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    e.add_argument("--model", required=True, metavar="RUN_DIR", help="models/<run>/ written by stage 03")
    e.add_argument(
        "--format",
        required=True,
        choices=("onnx", "tflite", "savedmodel"),
        dest="fmt",
        help="onnx -> model.onnx, tflite -> model.tflite, savedmodel -> saved_model/",
    )
    e.add_argument(
        "--audio",
        metavar="FILE",
        help="recording whose features check the export (default: patches of the run's dataset)",
    )
    e.add_argument(
        "--patches",
        type=int,
        default=1024,
        metavar="N",
        help="patches in the parity check and the timed forward pass (default 1024)",
    )
    e.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    return parser


def _denoise(args):
    from .errors import ConfigError
    from .inference.files import denoise_paths

    if args.block_seconds <= 0:
        raise ConfigError("--block-seconds must be > 0")
    summary = denoise_paths(
        args.model,
        args.inputs,
        args.out,
        overwrite=args.overwrite,
        block_s=args.block_seconds,
        patch_hop=args.patch_hop,
        atten_lim_db=args.atten_lim_db,
        engine=args.engine,
        progress=not args.no_progress,
        score=args.score,
        inference=args.inference or "auto",
    )
    yield from summary.lines()
    yield f"wrote {args.out}/"


def _export(args):
    from .errors import ArtifactError
    from .inference.export import PARITY_TOL, export_run
    from .inference.runtimes import FORMATS

    summary = export_run(args.model, args.fmt, audio=args.audio, n_patches=args.patches)
    yield from summary.lines()
    if not summary.ok:
        raise ArtifactError(
            f"parity check failed: the {args.fmt} export differs from model.keras by up to "
            f"{summary.max_abs_diff:.2e} (>= {PARITY_TOL:g}); it is kept for inspection as "
            f"{summary.path}, and {summary.path.parent / FORMATS[args.fmt]} was not written or "
            "replaced"
        )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    commands = {"denoise": _denoise, "export": _export}
    args = parser.parse_args(argv)
    return run(commands[args.command], parser, argv)


if __name__ == "__main__":
    sys.exit(main())
