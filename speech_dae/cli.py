"""Shared command-line plumbing of the numbered scripts.

Each script builds its parser with :func:`make_parser` (which adds
``--config``, ``--set``, ``--force`` and ``-v``), then calls :func:`run` with a
function that does the work and returns the lines to print. User errors
(:class:`~speech_dae.errors.SpeechDAEError`) are printed on one line and the
process exits with status 2; ``-v`` shows the traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable

from .config import Config, load_config
from .errors import SpeechDAEError

__all__ = ["make_parser", "add_inference_options", "inference_overrides", "run", "config_from_args", "stage_options"]


def make_parser(prog: str, description: str, *, epilog: str | None = None) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with the options every stage shares."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = parser.add_argument_group("common options")
    common.add_argument("--config", metavar="FILE", help="YAML file merged over configs/default.yaml")
    common.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override one config value, e.g. --set training.epochs=5 (repeatable)",
    )
    common.add_argument("--force", action="store_true", help="rebuild even if the output is up to date")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    common.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def add_inference_options(parser, *, patch_hop_default: str, atten_lim_default: str | None) -> None:
    """``--inference``, ``--patch-hop N`` and ``--atten-lim-db DB``: how a trained run denoises (04, 05, denoise).

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
    patch_hop_default, atten_lim_default : str
        What happens without the option, for the help text; ``atten_lim_default`` None: no
        ``--atten-lim-db`` (stage 05 takes it as ``--set reconstruct.atten_lim_db=DB``).
    """
    parser.add_argument(
        "--inference",
        choices=("auto", "sequence", "patch"),
        help="auto (default, reconstruct.inference): whole sequences, every frame through the network once, for "
        "models that take any number of frames and were trained on patches covering their context (the best "
        "recipe's causal tcn); overlap-averaged patches otherwise; sequence / patch force one",
    )
    parser.add_argument(
        "--patch-hop",
        metavar="N",
        type=int,
        help=f"patch inference: frames between patches ({patch_hop_default}; 1 = a patch at every frame, slower)",
    )
    if atten_lim_default is None:
        return
    parser.add_argument(
        "--atten-lim-db",
        metavar="DB",
        type=float,
        help="strength: attenuate no frequency bin by more than DB dB, e.g. 12 (keeps some noise, loses less "
        f"speech; {atten_lim_default})",
    )


def inference_overrides(args: argparse.Namespace) -> list[str]:
    """Config overrides from the options of :func:`add_inference_options`: ``--inference`` ->
    ``reconstruct.inference``, ``--atten-lim-db`` -> ``reconstruct.atten_lim_db`` (``--patch-hop`` is passed as is)."""
    out = []
    if getattr(args, "inference", None):
        out.append(f"reconstruct.inference={args.inference}")
    if getattr(args, "atten_lim_db", None) is not None:
        out.append(f"reconstruct.atten_lim_db={args.atten_lim_db}")
    return out


def config_from_args(args: argparse.Namespace, extra: Iterable[str] = ()) -> Config:
    """Load the config from ``--config``, then ``extra`` overrides (from script options), the options of
    :func:`add_inference_options` where the script has them (:func:`inference_overrides`), then ``--set``."""
    return load_config(args.config, [*extra, *inference_overrides(args), *args.overrides])


def stage_options(args: argparse.Namespace, *names: str) -> dict:
    """Keyword arguments of a stage function from parsed options: ``{name: args.<name>}`` for each of
    ``names`` (where option and parameter share a name, e.g. ``max_files`` for ``--max-files``), plus
    ``progress`` (false with ``--no-progress``).

    Raises
    ------
    AttributeError
        If the parser has no option of one of ``names`` (a programming error of the script).
    """
    return {**{n: getattr(args, n) for n in names}, "progress": not args.no_progress}


def run(
    main: Callable[[argparse.Namespace], Iterable[str]], parser: argparse.ArgumentParser, argv: list[str] | None = None
) -> int:
    """Parse ``argv``, call ``main(args)`` and print the lines it returns.

    Returns the exit status: 0 on success, 2 on a user error, 130 on Ctrl-C.
    """
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        for noisy in ("tensorflow", "absl", "numba", "matplotlib", "h5py"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        for line in main(args):
            print(line, flush=True)
    except SpeechDAEError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished artifacts are kept, re-run the same command to continue", file=sys.stderr)
        return 130
    return 0
