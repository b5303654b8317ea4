#!/usr/bin/env python3
"""Score trained runs on the VALIDATION utterances of a stage-02 dataset, to choose ingredients honestly.

The test split is for the final table only; an ingredient is kept or dropped on the validation split
(the fixed validation mixtures stage 03 stops early on). This script:

1. picks ``--files`` validation mixtures with a clean reference, evenly spaced through the dataset's
   list (:func:`speech_dae.folders.referenced_pairs`, :func:`speech_dae.framing.even_indices`: every
   validation speaker and noise recording represented), from the stage-01 folder the dataset was
   built from;
2. runs stage 05 on them (:func:`speech_dae.stages.evaluate.evaluate`, in this process: each run
   through :class:`speech_dae.inference.Denoiser`, whole file per call, as the run's ``run.json``
   says; the metrics in ``--jobs`` worker processes; the noisy input as a reference row), scoring
   SI-SDR, PESQ-WB, STOI and with ``--dnsmos`` DNSMOS P.835 OVRL;
3. prints a Markdown table, mean ± 95 % CI per run and the paired difference to the FIRST run
   (mean ± 95 % Student-t interval of the per-file differences; ``*`` where it leaves out 0), and
   writes it to ``--out`` with the figures as JSON next to it (``.json``). Stage 05's folder
   (``results.csv`` per file, ``summary.md``) is ``--out`` without its suffix; an unchanged
   scoring is not redone.

    python benchmarks/val_score.py --dataset WORK/datasets/best \\
        --models WORK/models/push_6 WORK/models/no_ema --files 120 --jobs 2 --out WORK/reports/val_ema.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._paired import format_difference, paired_difference, significant  # noqa: E402
from benchmarks._report import machine_line  # noqa: E402
from speech_dae.artifacts import read_csv, write_json  # noqa: E402
from speech_dae.config import load_config  # noqa: E402
from speech_dae.errors import ArtifactError, ConfigError  # noqa: E402
from speech_dae.folders import load_dataset, referenced_pairs  # noqa: E402
from speech_dae.framing import even_indices  # noqa: E402
from speech_dae.runinfo import RunInfo  # noqa: E402
from speech_dae.scores import LABELS, NOISY, format_stat  # noqa: E402

METRICS = ("si_sdr", "pesq", "stoi")
DNSMOS = "dnsmos_ovrl"


def validation_files(dataset: Path, n: int | None) -> list[tuple[str, Path, Path]]:
    """``n`` ``(id, mixture, reference)`` validation pairs of ``dataset``, evenly spaced, files present.

    Raises
    ------
    ArtifactError
        The dataset is missing or stale (:func:`speech_dae.folders.load_dataset`), or no validation
        utterance with a clean reference has its WAV files in the stage-01 folder.
    """
    info = load_dataset(dataset)
    pairs = [p for p in referenced_pairs(dataset, info, "val") if p[1].is_file() and p[2].is_file()]
    if not pairs:
        raise ArtifactError(
            f"{dataset} has no validation mixture with a clean reference under {info.get('source', '?')} "
            "(mixtures/, references/); re-run 01_extract_features.py into it, or build the dataset with "
            "a validation split (mixing.val_fraction > 0)"
        )
    return [pairs[i] for i in even_indices(len(pairs), n)]


def link_files(pairs: list[tuple[str, Path, Path]], folder: Path) -> tuple[Path, Path]:
    """``folder/noisy/<id>.wav`` and ``folder/clean/<id>.wav`` as links to the pairs (stage 05's ``--input`` /
    ``--clean`` layout: matched by relative path, ids kept)."""
    noisy, clean = folder / "noisy", folder / "clean"
    for d in (noisy, clean):
        d.mkdir(parents=True, exist_ok=True)
    for uid, mix, ref in pairs:
        (noisy / f"{uid}.wav").symlink_to(mix.resolve())
        (clean / f"{uid}.wav").symlink_to(ref.resolve())
    return noisy, clean


def score_runs(args, pairs) -> tuple[Path, dict]:
    """Stage 05 on the linked validation files; returns (its folder, its summary)."""
    from speech_dae.stages.evaluate import evaluate

    metrics = [*METRICS, *([DNSMOS] if args.dnsmos else [])]
    out = Path(args.out).with_suffix("")
    with tempfile.TemporaryDirectory(prefix="val_score_") as tmp:
        noisy, clean = link_files(pairs, Path(tmp))
        ev = evaluate(
            load_config(args.config),
            out=out,
            models=args.models,
            baselines="none",
            inputs=noisy,
            clean=clean,
            metrics=metrics,
            jobs=args.jobs,
            force=args.force,
            progress=not args.no_progress,
            report_examples=0,
        )
    return ev.out, {"systems": ev.summary, "metrics": ev.metrics, "n_files": ev.n_files}


def run_table(rows: list[dict], summary: dict, metrics: list[str], infos: dict) -> tuple[list[str], dict]:
    """Markdown lines of the table and its figures: mean ± CI per system, paired Δ to the first run."""
    systems = list(summary)
    runs = [s for s in systems if summary[s]["kind"] == "model"]
    first = runs[0]
    head = (
        ["run", "train min", "epochs (best)"]
        + [LABELS[m] for m in metrics]
        + [f"Δ {LABELS[m]} vs {first}" for m in metrics]
    )
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    figures = {}
    for s in [*runs, *(x for x in systems if x == NOISY)]:
        e = summary[s]
        diffs = {m: paired_difference(rows, s, first, m) for m in metrics} if s != first else {}
        figures[s] = {"overall": {m: e["overall"][m] for m in metrics}, "paired_vs_first": diffs}
        info = infos.get(s)
        cols = [f"{info.train_seconds / 60:.1f}", f"{info.epochs_run} ({info.best_epoch})"] if info else ["–", "–"]
        cells = [format_stat(e["overall"][m], m) for m in metrics]
        deltas = [
            "(reference)" if s == first else format_difference(diffs[m], m) + (" *" if significant(diffs[m]) else "")
            for m in metrics
        ]
        label = "noisy (input)" if s == NOISY else s
        md.append(f"| {label} | " + " | ".join([*cols, *cells, *deltas]) + " |")
    return md, figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="a stage-02 folder (datasets/NAME) the runs were trained on")
    ap.add_argument(
        "--models", nargs="+", required=True, metavar="DIR", help="models/<run>/ folders; the first is the reference"
    )
    ap.add_argument("--files", type=int, default=120, help="validation mixtures scored, evenly spaced (default 120)")
    ap.add_argument("--jobs", type=int, default=2, help="processes computing the metrics (default 2)")
    ap.add_argument("--dnsmos", action="store_true", help="also DNSMOS P.835 OVRL (slower)")
    ap.add_argument(
        "--config", help="YAML whose reconstruct section the runs are denoised with (default: the defaults)"
    )
    ap.add_argument(
        "--out",
        help="Markdown file of the table (default: WORK/reports/val_<dataset name>.md); JSON next to it, "
        "stage 05's folder at the same name without suffix",
    )
    ap.add_argument("--force", action="store_true", help="score again, or replace a scoring of other runs at --out")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    dataset = Path(args.dataset)
    if args.files is not None and args.files < 1:
        raise SystemExit(f"--files {args.files}: score at least 1 validation mixture, e.g. --files 120")
    args.out = args.out or str(dataset.resolve().parent.parent / "reports" / f"val_{dataset.name}.md")
    try:
        pairs = validation_files(dataset, args.files)
        folder, res = score_runs(args, pairs)
    except (ConfigError, ArtifactError) as exc:
        raise SystemExit(f"val_score: {exc}") from None
    rows = read_csv(folder / "results.csv")
    infos = {Path(d).name: RunInfo.load(Path(d)) for d in args.models}
    table, figures = run_table(rows, res["systems"], res["metrics"], infos)
    cmd = "python benchmarks/val_score.py " + " ".join(sys.argv[1:] if argv is None else argv)
    text = "\n".join(
        [
            f"### Validation scores: {', '.join(infos)}",
            "",
            f"Command: `{cmd}`  ",
            f"Machine: {machine_line()}  ",
            f"Files: {res['n_files']} validation mixtures of `{dataset}` (of its fixed validation split, evenly "
            "spaced; never the test split), whole file per call, each run as its run.json says. Mean ± 95 % CI "
            "over the files; Δ: paired difference to the first run over the same files, mean ± 95 % t-interval "
            f"(`*`: the interval leaves out 0). Per-file scores: `{folder}/results.csv`.",
            "",
            *table,
        ]
    )
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n", encoding="utf-8")
    write_json(
        out.with_suffix(".json"),
        {
            "dataset": str(dataset),
            "files": [uid for uid, _, _ in pairs],
            "n_files": res["n_files"],
            "metrics": res["metrics"],
            "reference": next(iter(figures)),
            "runs": figures,
        },
    )
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
