#!/usr/bin/env python3
"""Train every (feature, model) pair on a corpus's train split and score them against the baselines on its test split.

Runs the package functions behind 01 -> 02 -> 03 -> 05 (default config unless
``--set`` overrides are given), writes every artifact under ``--work`` (finished
stages are reused, so an interrupted run continues), prints markdown tables and
writes them into ``benchmarks/BENCHMARKS.md`` (section ``quality-<name>``).

    # the corpus of ../shared/tools/build_corpus.sh (train/ and test/ with clean/ and noise/)
    python benchmarks/quality.py --data CORPUS --name corpus --work WORK --epochs 6 \\
        --max-files 60 --jobs 2
    # the README's table on data_sample
    python benchmarks/quality.py --data data_sample --name sample --work /tmp/speech-dae-bench

The test split holds speakers and noise recordings that training never saw
(the corpus's test/ folder). ``--max-files`` scores an evenly spaced subset per
input SNR, which keeps PESQ/STOI on 2 cores to minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import machine_line, publish  # noqa: E402
from speech_dae.config import load_config  # noqa: E402
from speech_dae.scores import LABELS, format_stat  # noqa: E402
from speech_dae.stages.dataset import build_dataset  # noqa: E402
from speech_dae.stages.evaluate import evaluate  # noqa: E402
from speech_dae.stages.extract import extract_features  # noqa: E402
from speech_dae.stages.train import train  # noqa: E402

TABLE_METRICS = ("pesq", "stoi", "estoi", "si_sdr")
GOALS = {"si_sdr": 10.0, "pesq": 1.6, "stoi": 0.92}  # issue 3's targets on the corpus test split


def goal_lines(summary: dict) -> list[str]:
    """Where the best model stands against issue 3's goals, computed from the evaluation."""
    models = {s: e for s, e in summary.items() if e["kind"] == "model"}
    if not models:
        return []
    best = max(models, key=lambda s: models[s]["overall"]["si_sdr"][0])
    e = models[best]
    out = [f"Best model by mean SI-SDR: **{best}**."]
    for m, goal in GOALS.items():
        v = e["overall"][m][0]
        out.append(f"- mean {LABELS[m]} {v:.3f} (goal ≥ {goal}): {'met' if v >= goal else 'not met'}")
    losses = []
    for s, b in summary.items():
        if b["kind"] != "baseline":
            continue
        for m in ("pesq", "stoi", "si_sdr"):
            for snr, stats in e["by_snr"].items():
                if not stats[m][0] > b["by_snr"][snr][m][0]:
                    losses.append(f"{LABELS[m]} at {float(snr):+g} dB vs {s}")
    n_cmp = 3 * len(e["by_snr"]) * sum(b["kind"] == "baseline" for b in summary.values())
    verdict = "yes" if not losses else f"no ({len(losses)} of {n_cmp} comparisons lost: {'; '.join(losses)})"
    out.append("- beats every baseline on PESQ, STOI and SI-SDR at every SNR: " + verdict)
    rt = e["x_real_time"]
    out.append(f"- inference {rt:.0f}x real time (goal ≥ 100x): {'met' if rt >= 100 else 'not met'}")
    return out


def markdown(summary: dict, runs: dict, args, n_files: int, data_line: str, *, goals: bool = True) -> str:
    snrs = list(next(iter(summary.values()))["by_snr"])
    cmd = f"python benchmarks/{Path(sys.argv[0]).name} " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    md = [
        f"### Quality on `{args.name}` ({args.data})",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {machine_line()}  ",
        data_line,
        "",
    ]
    md += [
        "| system | params | epochs (best) | train min | "
        + " | ".join(LABELS[m] for m in TABLE_METRICS)
        + " | × real time |",
        "|" + "---|" * (5 + len(TABLE_METRICS)),
    ]
    for s, e in summary.items():
        info = runs.get(s)
        train_cols = (
            (f"{info.n_params:,} | {info.epochs_run} ({info.best_epoch}) | {info.train_seconds / 60:.1f}")
            if info
            else "- | - | -"
        )
        rt = "-" if e["kind"] == "input" else f"{e['x_real_time']:.0f}"
        md.append(
            f"| {s} | {train_cols} | "
            + " | ".join(format_stat(e["overall"][m], m) for m in TABLE_METRICS)
            + f" | {rt} |"
        )
    md += ["", "Per input SNR (mean over files):", ""]
    md += [
        "| system | " + " | ".join(f"{LABELS[m]} {float(s):+g}" for m in TABLE_METRICS for s in snrs) + " |",
        "|" + "---|" * (1 + len(TABLE_METRICS) * len(snrs)),
    ]
    for s, e in summary.items():
        md.append(
            f"| {s} | "
            + " | ".join(format_stat(e["by_snr"][snr][m], m, ci=False) for m in TABLE_METRICS for snr in snrs)
            + " |"
        )
    md += ["", *goal_lines(summary)] if goals else []
    return "\n".join(md)


def train_run(cfg, dataset: Path, run: str, work: Path):
    """Stage 03 into ``work/models/<run>`` (reused when up to date), with one printed line; returns its summary."""
    t0 = time.perf_counter()
    s = train(cfg, dataset=dataset, run=run, models_dir=work / "models", logs_dir=work / "model_logs", progress=False)
    print(
        f"{run}: {'up to date' if s.up_to_date else f'trained in {time.perf_counter() - t0:.0f} s'}, "
        f"{s.info.epochs_run} epochs, best {s.info.best_epoch} ({s.info.stop_reason})",
        flush=True,
    )
    return s


def parse_runs(args) -> list[tuple[str, str, str]]:
    """``(feature, model, target)`` per run: ``--runs`` specs, else every ``--features`` x ``--models`` (mapping)."""
    if not args.runs:
        return [(f, m, "mapping") for f in args.features for m in args.models]
    out = []
    for spec in args.runs:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise SystemExit(f"--runs {spec!r}: expected FEATURE:MODEL[:TARGET], e.g. logmag:dense_ln:mask")
        out.append((parts[0], parts[1], parts[2] if len(parts) == 3 else "mapping"))
    return out


def stage_commands(runs: dict, work: Path, overrides: list[str]) -> list[str]:
    """The 01 -> 03 commands equivalent to each row's training (same config keys)."""
    sets = "".join(f" --set {shlex.quote(o)}" for o in overrides)
    out = [
        "Each row's model, trained with the ordinary scripts (after `01_extract_features.py --feature F` and "
        "`02_build_dataset.py` into the folders below):",
        "",
    ]
    for run, info in runs.items():
        target = f" --target {info['target']}" if info["target"] != "mapping" else ""
        out.append(
            f"- {run}: `python 03_train_autoencoder.py --dataset {work}/datasets/{info['feature']} "
            f"--model {info['model']}{target} --run {run}{sets}`"
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data_sample", help="corpus with train/ and test/ (default: data_sample)")
    ap.add_argument("--name", default="sample", help="label of this benchmark in BENCHMARKS.md (default: sample)")
    ap.add_argument("--work", default="/tmp/speech-dae-bench", help="folder for every artifact")
    ap.add_argument("--features", nargs="+", default=["fbank", "logmag"])
    ap.add_argument("--models", nargs="+", default=["type1", "type2"])
    ap.add_argument(
        "--runs",
        nargs="+",
        metavar="FEATURE:MODEL[:TARGET]",
        help="explicit runs instead of --features x --models, e.g. logmag:dense_ln:mask waveform:conv1d_time",
    )
    ap.add_argument("--epochs", type=int, help="maximum training epochs (default: training.epochs)")
    ap.add_argument("--minutes", type=float, help="training budget per run (training.max_minutes)")
    ap.add_argument("--max-files", type=int, help="score at most N test files per input SNR")
    ap.add_argument("--jobs", type=int, default=1, help="processes computing the metrics")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    work = Path(args.work)
    specs = parse_runs(args)
    extra = [f"training.epochs={args.epochs}"] if args.epochs else []
    extra += [f"training.max_minutes={args.minutes:g}"] if args.minutes else []
    train_sets = [*extra, *args.overrides]
    runs, model_dirs = {}, []
    for feature in dict.fromkeys(f for f, _, _ in specs):
        cfg = load_config(overrides=[f"features.type={feature}", *train_sets])
        feats, data = work / "features" / feature, work / "datasets" / feature
        ex = extract_features(cfg, out=feats, data=args.data, progress=False)
        print("\n".join(ex.lines()), flush=True)
        build_dataset(cfg, features=feats, out=data, progress=False)
    for feature, model, target in specs:
        cfg = load_config(
            overrides=[f"features.type={feature}", f"model.name={model}", f"training.target={target}", *train_sets]
        )
        run = f"{feature}_{model}" + ("_mask" if target == "mask" else "")
        s = train_run(cfg, work / "datasets" / feature, run, work)
        runs[run] = s.info
        model_dirs.append(s.run_dir)
    eval_features = work / "features" / specs[0][0]
    cfg = load_config(overrides=[f"features.type={specs[0][0]}", *args.overrides])
    ev = evaluate(
        cfg,
        out=work / "reports" / args.name,
        models=model_dirs,
        baselines="all",
        features=eval_features,
        max_files=args.max_files,
        jobs=args.jobs,
        progress=False,
    )
    print("\n".join(ev.lines()), flush=True)
    splits = json.loads((work / "datasets" / specs[0][0] / "dataset.json").read_text())["splits"]
    snr_list = sorted({float(k) for k in next(iter(ev.summary.values()))["by_snr"]})
    data_line = (
        f"Training: train split of {args.data} ({splits['train']['utterances']} mixtures, "
        f"{splits['train']['minutes']:.0f} min; validation {splits['val']['minutes']:.0f} min held out "
        f"by utterance and noise recording). Test: {ev.n_files} files of the unseen test split "
        f"(input SNRs {', '.join(f'{s:+g}' for s in snr_list)} dB), report in `{ev.out}`."
    )
    text = (
        markdown(ev.summary, runs, args, ev.n_files, data_line)
        + "\n\n"
        + "\n".join(stage_commands(runs, work, train_sets))
    )
    print()
    publish(f"quality-{args.name}", text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
