#!/usr/bin/env python3
"""Issue 18's tables: the new best recipe against the peers, its ablations, and its learning curve.

Every run is trained and scored by the ordinary scripts, run as subprocesses in ``--work`` (what a user
types there; stage 03 skips a run that is up to date):

1. ``features/best`` and ``datasets/best`` with ``configs/best.yaml`` (stages 01 and 02, the commands of
   ``benchmarks/corpus_table.py``), when absent.
2. Stage 03 with ``configs/best.yaml`` for: ``best`` (the config unchanged: the last point of the
   learning curve), the shorter budgets of :data:`CURVE`, and every ablation of :data:`ABLATIONS` (the
   recipe with one ingredient turned off) at ``--ablation-minutes``, next to the full recipe at that
   budget (``push_<minutes>``, which is ``push_6`` of the curve at the default 6 min). A run whose
   stage 03 fails (e.g. a key not in the config yet) is reported as "not trained", with the reason.
3. ``--previous DIR`` (the previous best run) is linked as ``WORK/models/previous_best``.
4. Stage 05, once, on the unseen test split: every trained run, the previous best, the noisy input, the
   classical baselines and the peers (``--baselines all``: DeepFilterNet3 and RNNoise when the ``peers``
   extra is installed), PESQ-WB, STOI, ESTOI, SI-SDR and DNSMOS P.835 SIG / BAK / OVRL, per input SNR;
   per-file scores in ``WORK/reports/push/results.csv``.
5. Parameters, MMAC/s (:func:`speech_dae.models.cost.mmac_per_second` at the run's frame rate, 125
   frames/s for the 16 kHz / 128-sample hop STFT) and the × real time of every main-table system alone on
   the machine (``corpus_table.alone_rtf``).

Writes sections ``push`` (the main table), ``push-ablation`` (each ablation against the full recipe at
the same budget: paired per-file differences, mean and 95 % t-interval) and ``push-curve`` (6 / 12 min
and the best run's budget) of ``benchmarks/BENCHMARKS.md``. Which ingredients to keep is decided on the
validation split (``benchmarks/val_score.py``), never on these test figures.

    python benchmarks/push.py --data CORPUS --work WORK --jobs 2 --max-files 40 --previous OLD/models/best
    python benchmarks/push.py --data CORPUS --work WORK --dry-run     # print the commands only
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import corpus_table  # noqa: E402
from benchmarks._paired import format_difference, paired_difference, significant  # noqa: E402
from benchmarks._report import machine_line, publish  # noqa: E402
from speech_dae.artifacts import read_csv, read_json  # noqa: E402
from speech_dae.errors import ArtifactError, ConfigError  # noqa: E402
from speech_dae.runinfo import RunInfo  # noqa: E402
from speech_dae.scores import LABELS, digits, format_stat  # noqa: E402

CONFIG = "configs/best.yaml"
#: Metrics stage 05 computes (corpus_table's) and the five every table shows.
METRICS = corpus_table.METRICS
SHOWN = ("pesq", "stoi", "estoi", "si_sdr", "dnsmos_ovrl")
BEST, PREVIOUS = "best", "previous_best"
REPORT = "reports/push"
#: Learning curve: run name -> training budget (min) with configs/best.yaml; its last point is ``best``.
CURVE = {"push_6": 6, "push_12": 12}
#: Ablations: run name -> (the ingredient turned off, ``--set`` overrides on top of configs/best.yaml),
#: each trained at ``--ablation-minutes`` and compared with the full recipe at that budget.
#: The ingredients issue 18 added to configs/best.yaml, each chosen on the validation split
#: (benchmarks/val_score.py), and ``erbnet``: the GTCRN-style model in place of the TCN, same recipe.
ABLATIONS: dict[str, tuple[str, list[str]]] = {
    "no_lookahead": ("look-ahead: 2 frames -> a causal TCN", ["model.hparams.tcn.lookahead=0"]),
    "no_schedule": (
        "learning-rate schedule: warm-up + cosine from 3e-3 -> a constant 1e-3 (the previous recipe's)",
        ["training.lr_schedule=constant", "training.learning_rate=0.001"],
    ),
    "no_augment": (
        "augmentation: speed, EQ, band limit, synthetic noise, babble, remix -> none",
        ["training.augment={}"],
    ),
    "erbnet": (
        "model: the TCN -> erbnet (ERB bands, Conv2D, grouped temporal convolutions), same look-ahead",
        ["model.name=erbnet", "model.hparams.erbnet.lookahead=2"],
    ),
}


def reference_name(minutes: float) -> str:
    """The full recipe at ``minutes`` of training, the reference of the ablations: ``push_6`` for 6."""
    return f"push_{minutes:g}"


def planned_runs(ablation_minutes: float) -> dict[str, list[str]]:
    """Run name -> ``--set`` overrides on top of configs/best.yaml: best, the curve, the ablations' reference,
    the ablations (in that order; the reference is the curve's run of the same budget when there is one)."""
    runs: dict[str, list[str]] = {BEST: []}
    runs.update({name: [f"training.max_minutes={m:g}"] for name, m in CURVE.items()})
    runs.setdefault(reference_name(ablation_minutes), [f"training.max_minutes={ablation_minutes:g}"])
    for name, (_, overrides) in ABLATIONS.items():
        runs[name] = [f"training.max_minutes={ablation_minutes:g}", *overrides]
    return runs


def train_command(name: str, overrides: Sequence[str], *, force: bool = False) -> list[str]:
    """Stage 03's command line for run ``name`` (relative to the repository and ``--work``)."""
    sets = [a for o in overrides for a in ("--set", o)]
    cmd = ["python", "03_train_autoencoder.py", "--config", CONFIG, "--dataset", "datasets/best", "--run", name]
    return cmd + sets + (["--force"] if force else [])


def eval_command(models: Sequence[str], max_files: int, jobs: int) -> list[str]:
    """Stage 05's command line: ``models`` (run names under models/), the baselines and peers, every metric."""
    return corpus_table.evaluate_command(models, max_files=max_files, jobs=jobs, out=REPORT)


def failure(out) -> str:
    """The one-line reason a stage script gave for failing (its last output line), shortened."""
    lines = [ln.strip() for ln in (out.stderr + "\n" + out.stdout).splitlines() if ln.strip()]
    text = lines[-1] if lines else f"exit code {out.returncode}"
    return text if len(text) <= 200 else text[:197] + "..."


def link_previous(work: Path, previous: Path) -> str:
    """Link ``previous`` as ``work/models/previous_best``; return "" or why it cannot be scored."""
    target = previous.resolve()
    link = work / "models" / PREVIOUS
    if target == (work / "models" / BEST).resolve():
        return f"--previous {previous} is this script's own best run; pass the earlier run's folder"
    if not (target / "model.keras").is_file():
        return f"--previous {previous} has no model.keras (a models/<run>/ folder of stage 03 is needed)"
    try:
        RunInfo.load(target)
    except ArtifactError as exc:
        return str(exc)
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        return f"{link} exists and is not a link; move it away"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
    return ""


def model_mmac(run_dir: Path, info: RunInfo, inference: str | None, patch_hop: int | None) -> float | None:
    """MMAC/s of a run as stage 05 ran it: per-frame MACs (:mod:`speech_dae.models.cost`) x frames per second,
    x ``context / patch_hop`` in patch inference (each frame is computed in that many patches). None for a
    waveform run or a model with a layer the counter does not know (printed)."""
    if info.waveform:
        return None
    import keras

    from speech_dae.models.cost import mmac_per_second

    fps = info.sample_rate / int(info.features["hop_length"])
    try:
        mmac = mmac_per_second(keras.saving.load_model(run_dir / "model.keras", compile=False), fps)
    except ConfigError as exc:
        print(f"{run_dir.name}: no MMAC/s ({exc})", flush=True)
        return None
    return mmac * (info.context / patch_hop if inference == "patch" and patch_hop else 1.0)


# --- rendering (pure: the tests call these on fake score tables) -------------------------------------------


def snr_list(summary: Mapping) -> list[str]:
    """The input SNRs of a stage-05 summary, ascending."""
    return sorted(next(iter(summary.values()))["by_snr"], key=float) if summary else []


def header(title: str, command: str, machine: str, summary: Mapping, n_files: int, max_files: int) -> list[str]:
    """Title, command, machine (with commit and date) and test files of a section."""
    snrs = snr_list(summary)
    return [
        f"### {title}",
        "",
        f"Command: `{command}` (CORPUS: the corpus of `../shared/tools/build_corpus.sh`)  ",
        f"Machine: {machine}  ",
        f"Test: {n_files} files of the corpus's unseen test split (a speaker and noise recordings no system "
        f"trained on), {max_files} per input SNR of {', '.join(f'{float(s):+g}' for s in snrs)} dB, 16 kHz; "
        f"stage 05's report and per-file scores in `WORK/{REPORT}/`.",
    ]


def not_trained(name: str, status: Mapping[str, str]) -> str:
    """The cell of a run that has no scores: why."""
    reason = status.get(name)
    word = "not scored" if name == PREVIOUS else "not trained"
    if reason is None:
        return word
    return f"{word} ({reason})".replace("|", "\\|") if reason else "not scored"


def run_cols(info: RunInfo | None) -> list[str]:
    """epochs (best) and train min of a run; dashes for a system that is not a run."""
    if info is None:
        return ["–", "–"]
    return [f"{info.epochs_run} ({info.best_epoch})", f"{info.train_seconds / 60:.1f}"]


def main_section(
    head: Sequence[str],
    summary: Mapping,
    infos: Mapping[str, RunInfo],
    mmac: Mapping[str, float | None],
    rtf: Mapping[str, float],
    status: Mapping[str, str],
    *,
    hidden: Sequence[str] = (),
    commands: Sequence[str] = (),
) -> str:
    """Section ``push``: mean ± 95 % CI of every main-table system, params, MMAC/s, × real time; per input SNR.

    Parameters
    ----------
    head : list of str
        :func:`header` lines.
    summary : dict
        Stage 05's ``summary.json`` ``systems`` (:func:`speech_dae.scores.summarise`).
    infos : dict
        ``run.json`` of every scored run.
    mmac : dict
        MMAC/s per run (None: not counted).
    rtf : dict
        × real time alone per system.
    status : dict
        Run name -> "" (trained) or why not; :data:`BEST` and :data:`PREVIOUS` get a "not trained" row
        when absent from ``summary``.
    hidden : list of str
        Systems left to the other sections (the curve and ablation runs).
    commands : list of str
        Markdown lines listing the commands of the rows.
    """
    snrs = snr_list(summary)
    names = [s for s in summary if s not in hidden]
    missing = [s for s in (BEST, PREVIOUS) if s not in summary]
    n = {m: next(iter(summary.values()))["overall"][m][2] for m in METRICS} if summary else {}
    md = [
        *head,
        "",
        "Mean ± 95 % CI over the files (the same files for every system and metric: "
        + ", ".join(f"{LABELS[m]} {n[m]}" for m in METRICS if m in n)
        + "). MMAC/s: multiply-accumulates of the network per second of audio, counted from its layers "
        "(`speech_dae.models.cost`; STFT models at 125 frames/s; DeepFilterNet3 and RNNoise are not Keras "
        "models and are not counted here). `× real time alone`: best of 3 over the timing files, one system "
        "at a time, whole file per call, after a warm-up; `in 05`: measured inside stage 05 while its metric "
        "workers shared the cores.",
        "",
        "| system | params | MMAC/s | epochs (best) | train min | "
        + " | ".join(LABELS[m] for m in METRICS)
        + " | × real time alone | in 05 |",
        "|" + "---|" * (len(METRICS) + 7),
    ]
    for name in names:
        e, info = summary[name], infos.get(name)
        params = f"{info.n_params:,}" if info else "–"
        cost = f"{mmac[name]:.1f}" if mmac.get(name) is not None else "–"
        cells = [format_stat(e["overall"][m], m) for m in METRICS]
        alone = f"{rtf[name]:.0f}" if name in rtf else "–"
        in05 = f"{e['x_real_time']:.0f}" if e["kind"] != "input" and e.get("x_real_time") else "–"
        label = f"**{name}**" if name == BEST else name
        md.append(f"| {label} | " + " | ".join([params, cost, *run_cols(info), *cells, alone, in05]) + " |")
    for name in missing:
        md.append(f"| {name} | {not_trained(name, status)} |" + " – |" * (len(METRICS) + 5))
    md += ["", "Per input SNR (mean over the files of each SNR):", ""]
    md += ["| system | " + " | ".join(f"{LABELS[m]} {float(s):+g}" for m in SHOWN for s in snrs) + " |"]
    md += ["|" + "---|" * (1 + len(SHOWN) * len(snrs))]
    for name in names:
        by = summary[name]["by_snr"]
        md.append(f"| {name} | " + " | ".join(f"{by[s][m][0]:.{digits(m)}f}" for m in SHOWN for s in snrs) + " |")
    if commands:
        md += ["", "Rows and commands (run in `WORK`; `configs/best.yaml` of this repository):", "", *commands]
    return "\n".join(md)


def ablation_section(
    head: Sequence[str],
    rows: Sequence[Mapping],
    summary: Mapping,
    infos: Mapping[str, RunInfo],
    status: Mapping[str, str],
    *,
    reference: str,
    ablations: Mapping[str, tuple[str, list[str]]],
    minutes: float,
    commands: Sequence[str] = (),
) -> str:
    """Section ``push-ablation``: each ablation minus the full recipe at the same budget, file by file.

    Parameters
    ----------
    rows : list of dict
        Stage 05's ``results.csv`` (one row per file x system).
    reference : str
        The full recipe's run at ``minutes`` (:func:`reference_name`).
    ablations : dict
        :data:`ABLATIONS`-like: name -> (what is turned off, overrides).

    Each Δ cell is :func:`benchmarks._paired.paired_difference` (mean ± 95 % t-interval over the files both
    were scored on), marked ``*`` when the interval leaves out 0. A negative Δ on a higher-is-better metric
    means turning the ingredient off hurts (the ingredient helps).
    """
    md = [
        *head,
        "",
        f"Every row is configs/best.yaml trained for {minutes:g} min with one ingredient turned off; "
        f"Δ = ablation − full recipe ({reference}, the same budget) per test file, mean ± 95 % Student-t interval "
        "of the paired differences (`*`: the interval leaves out 0). Negative Δ: the ingredient helps. "
        "Which ingredients to keep was decided on the validation split (`benchmarks/val_score.py`), not on "
        "these test figures.",
        "",
    ]
    if reference in summary:
        ref = summary[reference]["overall"]
        md.append(
            f"Full recipe at {minutes:g} min ({reference}): "
            + ", ".join(f"{LABELS[m]} {format_stat(ref[m], m)}" for m in SHOWN)
            + "."
        )
    else:
        md.append(f"Full recipe at {minutes:g} min ({reference}): {not_trained(reference, status)}; no Δ.")
    md += [
        "",
        "| run | turned off | epochs (best) | train min | " + " | ".join(f"Δ {LABELS[m]}" for m in SHOWN) + " |",
        "|" + "---|" * (4 + len(SHOWN)),
    ]
    for name, (what, _) in ablations.items():
        if name not in summary:
            md.append(f"| {name} | {what} | {not_trained(name, status)} | – |" + " – |" * len(SHOWN))
            continue
        cells = []
        for m in SHOWN:
            d = paired_difference(rows, name, reference, m) if reference in summary else (math.nan, math.nan, 0)
            cells.append(format_difference(d, m) + (" *" if significant(d) else ""))
        md.append(f"| {name} | {what} | " + " | ".join([*run_cols(infos.get(name)), *cells]) + " |")
    if commands:
        md += ["", "Commands (run in `WORK`, after the push section's 01 and 02):", "", *commands]
    return "\n".join(md)


def curve_section(
    head: Sequence[str],
    summary: Mapping,
    infos: Mapping[str, RunInfo],
    status: Mapping[str, str],
    *,
    curve: Mapping[str, float],
    commands: Sequence[str] = (),
) -> str:
    """Section ``push-curve``: the best recipe at each budget of ``curve`` and the ``best`` run itself.

    Rows in ``curve`` order then :data:`BEST`; the budget of ``best`` is its run.json ``training.max_minutes``.
    """
    md = [
        *head,
        "",
        "configs/best.yaml trained with each budget (`training.max_minutes`), one run after another; the last "
        "row is the `best` run of the push section (the config unchanged). Mean ± 95 % CI over the test files.",
        "",
        "| budget (min) | run | train min | epochs (best) | stopped | " + " | ".join(LABELS[m] for m in SHOWN) + " |",
        "|" + "---|" * (5 + len(SHOWN)),
    ]
    for name in [*curve, BEST]:
        info = infos.get(name)
        budget = curve.get(name)
        if budget is None:  # the best run: its own budget, from run.json when it was trained
            budget = (info.training.get("max_minutes") if info else None) or "configs/best.yaml's"
        budget = f"{budget:g}" if isinstance(budget, (int, float)) else str(budget)
        if name not in summary or info is None:
            md.append(f"| {budget} | {name} | {not_trained(name, status)} | – | – |" + " – |" * len(SHOWN))
            continue
        cells = [format_stat(summary[name]["overall"][m], m) for m in SHOWN]
        epochs, minutes = run_cols(info)
        md.append(
            f"| {budget} | {name} | {minutes} | {epochs} | {info.stop_reason or '–'} | " + " | ".join(cells) + " |"
        )
    if commands:
        md += ["", "Commands (run in `WORK`, after the push section's 01 and 02):", "", *commands]
    return "\n".join(md)


# --- the script ----------------------------------------------------------------------------------------------


def command_line(args) -> str:
    """This script's command as a reader types it (machine folders as CORPUS / WORK / PREVIOUS)."""
    parts = ["python benchmarks/push.py --data CORPUS --work WORK", f"--jobs {args.jobs}"]
    parts += [f"--max-files {args.max_files}", f"--ablation-minutes {args.ablation_minutes:g}"]
    if args.previous:
        parts.append("--previous PREVIOUS")
    parts += [f"--set {shlex.quote(s)}" for s in args.sets]
    return " ".join(parts)


def code(cmd: list[str]) -> str:
    return "`" + shlex.join(cmd) + "`"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="CORPUS: train/ and test/ (../shared/tools/build_corpus.sh)")
    ap.add_argument("--work", required=True, help="folder for every artifact (the scripts' working directory)")
    ap.add_argument("--max-files", type=int, default=40, help="test files per input SNR (default 40)")
    ap.add_argument("--jobs", type=int, default=2, help="processes for stage 01 and the metrics (default 2)")
    ap.add_argument("--ablation-minutes", type=float, default=6.0, help="training budget of each ablation (6)")
    ap.add_argument("--previous", metavar="DIR", help="the previous best run (models/<run>/), row previous_best")
    ap.add_argument("--rtf-files", type=int, default=20, help="test mixtures timed per system alone (default 20)")
    ap.add_argument(
        "--retrain",
        nargs="+",
        default=[],
        metavar="RUN",
        help="runs to retrain with stage 03 --force (e.g. after an ablation's overrides changed), or all",
    )
    ap.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override for every stage-03 run, before its own (to try the script on a tiny dataset, e.g. "
        "training.epochs=1; the published sections are made without it)",
    )
    ap.add_argument("--dry-run", action="store_true", help="print the commands it would run, run nothing")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    work = Path(args.work).resolve()
    data = str(Path(args.data).resolve())
    previous = Path(args.previous).resolve() if args.previous else None
    runs = planned_runs(args.ablation_minutes)
    unknown = sorted(set(args.retrain) - set(runs) - {"all"})
    if unknown:
        raise SystemExit(f"--retrain {' '.join(unknown)}: not a run of this script ({', '.join(runs)}, or all)")
    force = set(runs) if "all" in args.retrain else set(args.retrain)
    prepare = corpus_table.commands(BEST, data, args.jobs)[:2]
    markers = [work / "features" / "best" / "params.json", work / "datasets" / "best" / "dataset.json"]
    trains = {name: train_command(name, [*args.sets, *sets], force=name in force) for name, sets in runs.items()}
    if args.dry_run:
        for cmd, marker in zip(prepare, markers):
            print("$ " + shlex.join(cmd) + ("    # skipped: exists" if marker.is_file() else ""))
        for cmd in trains.values():
            print("$ " + shlex.join(cmd))
        if previous:
            print(f"$ ln -s {previous} models/{PREVIOUS}")
        models = [*runs, *([PREVIOUS] if previous else [])]
        print("$ " + shlex.join(eval_command(models, args.max_files, args.jobs)))
        print(
            f"then: every main-table system timed alone on {args.rtf_files} test mixtures; sections push, "
            "push-ablation and push-curve of benchmarks/BENCHMARKS.md"
        )
        return 0
    work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    for cmd, marker in zip(prepare, markers):
        if not marker.is_file():
            corpus_table.run(cmd, work)
    status: dict[str, str] = {}
    for name, cmd in trains.items():
        out = corpus_table.run(cmd, work, check=False)
        status[name] = failure(out) if out.returncode else ""
    if previous:
        status[PREVIOUS] = link_previous(work, previous)
        if status[PREVIOUS]:
            print(f"previous best not scored: {status[PREVIOUS]}", flush=True)
    else:
        status[PREVIOUS] = "no --previous given"
    models = [name for name in [*runs, PREVIOUS] if status.get(name) == ""]
    evaluate = eval_command(models, args.max_files, args.jobs)
    out = corpus_table.run(evaluate, work, check=False)
    if out.returncode and "another configuration" in failure(out):  # this script owns reports/push: replace it
        out = corpus_table.run([*evaluate, "--force"], work, check=False)
    if out.returncode:
        raise SystemExit(f"05_evaluate.py failed: {failure(out)}")
    ev = read_json(work / REPORT / "summary.json")
    rows = read_csv(work / REPORT / "results.csv")
    summary = ev["systems"]
    infos = {n: RunInfo.load(work / "models" / n) for n, e in summary.items() if e["kind"] == "model"}
    hidden = [n for n in runs if n != BEST]
    mmac = {
        n: model_mmac(work / "models" / n, i, ev.get("inference", {}).get(n), ev.get("patch_hop", {}).get(n))
        for n, i in infos.items()
    }
    rtf = corpus_table.alone_rtf(work, {n: e for n, e in summary.items() if n not in hidden}, args.rtf_files)
    machine = f"{machine_line()}; trained and timed by this script one run after another, started {started}"
    cmdline = command_line(args)
    prep_cmds = ["- features/best and datasets/best: `" + " && ".join(shlex.join(c) for c in prepare) + "`"]
    prev = f"`ln -s PREVIOUS models/{PREVIOUS}` (PREVIOUS: `--previous`, the previous best run's folder)"
    main_cmds = [
        *prep_cmds,
        f"- best: {code(trains[BEST])}",
        f"- previous_best: {prev}",
        "- the scores of every row of the three sections (noisy, spectral_subtraction, wiener, noisereduce_*, "
        f"deepfilternet3 and rnnoise with the `peers` extra): {code(evaluate)}",
    ]
    ref = reference_name(args.ablation_minutes)

    def head(title: str) -> list[str]:
        return header(title, cmdline, machine, summary, ev["n_files"], args.max_files)

    sections = {
        "push": main_section(
            head(
                "The new best against DeepFilterNet3, RNNoise, the previous best and the classical baselines (issue 18)"
            ),
            summary,
            infos,
            mmac,
            rtf,
            status,
            hidden=hidden,
            commands=main_cmds,
        ),
        "push-ablation": ablation_section(
            head(f"Ablations of the best recipe at {args.ablation_minutes:g} min of training (issue 18)"),
            rows,
            summary,
            infos,
            status,
            reference=ref,
            ablations=ABLATIONS,
            minutes=args.ablation_minutes,
            commands=[f"- {n}: {code(trains[n])}" for n in [ref, *ABLATIONS]],
        ),
        "push-curve": curve_section(
            head("Learning curve of the best recipe (issue 18)"),
            summary,
            infos,
            status,
            curve=CURVE,
            commands=[f"- {n}: {code(trains[n])}" for n in [*CURVE, BEST]],
        ),
    }
    for name, text in sections.items():
        if previous:
            text = text.replace(str(previous), "PREVIOUS")
        publish(name, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
