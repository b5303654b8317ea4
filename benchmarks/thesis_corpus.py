#!/usr/bin/env python3
"""The thesis networks on real speech: partitioned and Curro trained WITHOUT clean speech, next to the supervised ones.

With ``configs/thesis.yaml`` (single 1024-sample |STFT| frames, Lusterman 2016):

1. ``shallow`` (supervised) is trained on the corpus's mixtures and their clean references (``--data``).
2. The train/val mixtures of step 1 are copied (hard links) into a folder of noisy recordings; with the
   corpus's ``train/noise`` recordings as noise-only examples, stage 01 runs in the no-clean layout
   (``--noisy DIR --noise-only DIR``): no clean file is read, and the dataset has no clean targets.
   ``partitioned`` and ``curro`` are trained on it from the soft labels alone.
3. 05's evaluation scores all of them (plus ``--compare`` runs, e.g. the model zoo's, and the baselines)
   on the corpus's unseen test split, using the clean references only to score.

    python benchmarks/thesis_corpus.py --data CORPUS --work WORK --minutes 4 --max-files 25 \\
        --jobs 2 --compare WORK/models/fbank_type2

Writes section ``quality-thesis`` of ``benchmarks/BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import publish  # noqa: E402
from benchmarks.quality import markdown, train_run  # noqa: E402
from speech_dae.artifacts import read_json  # noqa: E402
from speech_dae.config import load_config  # noqa: E402
from speech_dae.runinfo import RunInfo  # noqa: E402
from speech_dae.stages.dataset import build_dataset  # noqa: E402
from speech_dae.stages.evaluate import evaluate  # noqa: E402
from speech_dae.stages.extract import extract_features  # noqa: E402


def link_mixtures(features: Path, out: Path, splits=("train", "val")) -> int:
    """Hard-link (copy across devices) the mixtures of ``splits`` of a stage-01 folder into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(features / "manifest.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["split"] not in splits:
                continue
            src, dst = features / "mixtures" / f"{row['id']}.wav", out / f"{row['id']}.wav"
            if not dst.exists():
                try:
                    os.link(src, dst)
                except OSError:
                    dst.write_bytes(src.read_bytes())
            n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="corpus with train/ and test/ (clean/ and noise/ in each)")
    ap.add_argument("--work", default="/tmp/speech-dae-thesis", help="folder for every artifact")
    ap.add_argument("--config", default=str(ROOT / "configs" / "thesis.yaml"))
    ap.add_argument("--minutes", type=float, help="training budget per run (training.max_minutes)")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--max-files", type=int, help="score at most N test files per input SNR")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--compare", nargs="*", default=[], metavar="RUN_DIR", help="more trained runs to score")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    args.name = "thesis"
    work, data = Path(args.work), Path(args.data)
    sets = [
        f"training.epochs={args.epochs}",
        *([f"training.max_minutes={args.minutes:g}"] if args.minutes else []),
        *args.overrides,
    ]
    cfg = load_config(args.config, overrides=sets)
    sup_f, sup_d = work / "features" / "supervised", work / "datasets" / "supervised"
    print("\n".join(extract_features(cfg, out=sup_f, data=data, progress=False).lines()), flush=True)
    build_dataset(cfg, features=sup_f, out=sup_d, progress=False)
    noisy_dir = work / "noisy_recordings"
    print(f"{link_mixtures(sup_f, noisy_dir)} noisy recordings (train/val mixtures) in {noisy_dir}", flush=True)
    nc_f, nc_d = work / "features" / "noclean", work / "datasets" / "noclean"
    print(
        "\n".join(
            extract_features(
                cfg, out=nc_f, noisy=noisy_dir, noise_only=data / "train" / "noise", progress=False
            ).lines()
        ),
        flush=True,
    )
    build_dataset(cfg, features=nc_f, out=nc_d, progress=False)
    nc_info = read_json(nc_d / "dataset.json")
    no_clean = nc_info["clean_targets"] is False and "clean" not in read_json(nc_f / "params.json")["inputs"]
    runs, dirs = {}, []
    for model, dataset in (("shallow", sup_d), ("partitioned", nc_d), ("curro", nc_d)):
        s = train_run(cfg.replace(**{"model.name": model}), dataset, f"thesis_{model}", work)
        runs[f"thesis_{model}"] = s.info
        dirs.append(s.run_dir)
    for extra in args.compare:
        runs[Path(extra).name] = RunInfo.load(extra)
        dirs.append(Path(extra))
    ev = evaluate(
        cfg,
        out=work / "reports" / "thesis",
        models=dirs,
        baselines="all",
        features=sup_f,
        max_files=args.max_files,
        jobs=args.jobs,
        progress=False,
    )
    split = nc_info["splits"]
    data_line = (
        f"partitioned / curro: trained on {split['train']['utterances']} recordings "
        f"({split['train']['minutes']:.0f} min; {split['train']['noise_only_patches']:,} of "
        f"{split['train']['patches']:,} frames noise-only) with **no clean speech** (dataset "
        f"`clean_targets: {str(not no_clean).lower()}`); shallow: the same mixtures with their clean "
        f"references. Test: {ev.n_files} files of the unseen test split, report in `{ev.out}`."
    )
    text = markdown(ev.summary, runs, args, ev.n_files, data_line, goals=False)
    print()
    publish("quality-thesis", text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
