"""``speech-dae`` / ``python -m speech_dae``: commands for using trained runs.

    speech-dae denoise IN... -o OUT --model models/RUN [--overwrite] [--block-seconds 30]
"""

from __future__ import annotations

import argparse
import sys

from .cli import run

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speech-dae", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = sub.add_parser("denoise", help="denoise audio files and folders with a trained run",
                       description="Denoise files or folders (recursively) with a run trained by "
                                   "03_train_autoencoder.py. Outputs keep the input's name, sample rate, format "
                                   "and subtype (mono); long recordings are processed in blocks, in flat memory.",
                       epilog="example:\n  speech-dae denoise recordings/ -o denoised/ --model models/fbank_type2",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    d.add_argument("inputs", nargs="+", metavar="IN", help="audio files or folders (WAV, FLAC, OGG, any rate)")
    d.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
    d.add_argument("--model", required=True, metavar="RUN_DIR", help="models/<run>/ written by stage 03")
    d.add_argument("--overwrite", action="store_true", help="replace existing output files")
    d.add_argument("--block-seconds", type=float, default=30.0, metavar="S",
                   help="seconds of audio per block (bounds memory; default 30)")
    d.add_argument("--patch-hop", type=int, default=1, metavar="N",
                   help="frames between inference patches (1 = every frame, the most accurate; default 1)")
    d.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    d.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def _denoise(args):
    from .denoise import denoise_paths
    from .errors import ConfigError

    if args.block_seconds <= 0 or args.patch_hop < 1:
        raise ConfigError("--block-seconds must be > 0 and --patch-hop >= 1")
    summary = denoise_paths(args.model, args.inputs, args.out, overwrite=args.overwrite,
                            block_s=args.block_seconds, patch_hop=args.patch_hop, progress=not args.no_progress)
    yield from summary.lines()
    yield f"wrote {args.out}/"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    commands = {"denoise": _denoise}
    args = parser.parse_args(argv)
    return run(commands[args.command], parser, argv)


if __name__ == "__main__":
    sys.exit(main())
