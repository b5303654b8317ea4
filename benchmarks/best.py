#!/usr/bin/env python3
"""Issue 8's table: ``configs/best.yaml`` trained by the ordinary scripts, its ablations, baselines and references.

1. ``01_extract_features.py`` / ``02_build_dataset.py`` / ``03_train_autoencoder.py`` with
   ``--config configs/best.yaml`` (subprocesses, cwd ``--work``: what a user types), training
   budget ``training.max_minutes`` of the config (or ``--minutes``).
2. One ablation per ingredient, each the same recipe with one ingredient switched off and a
   shorter budget (``--ablation-minutes``), next to the full recipe at that budget: dynamic
   mixing, loss, temporal context, regularisation (:data:`ABLATIONS`).
3. Stage 05 on the corpus test split (unseen speakers and noise recordings): the best model and
   ablations, the noisy input, spectral subtraction, Wiener and noisereduce, and the
   ``--references`` runs (each with its own ``reconstruct.patch_hop``), PESQ-WB, STOI, ESTOI and
   SI-SDR per input SNR.
4. Inference real-time factor of every model measured alone (``rtf_runs.time_run``).

Writes section ``best`` of ``benchmarks/BENCHMARKS.md``.

    python benchmarks/best.py --data CORPUS --work WORK --max-files 40 --jobs 2 \\
        --references fbank_type2=WORK/models/fbank_type2 logmel_dense_ln=WORK/models/logmel_dense_ln
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import machine_line, publish  # noqa: E402
from benchmarks.rtf_runs import time_run  # noqa: E402
from speech_dae.audio import load_audio  # noqa: E402
from speech_dae.config import load_config  # noqa: E402
from speech_dae.runinfo import RunInfo  # noqa: E402
from speech_dae.scores import LABELS  # noqa: E402
from speech_dae.stages.evaluate import evaluate  # noqa: E402

CONFIG = ROOT / "configs" / "best.yaml"
METRICS = ("pesq", "stoi", "estoi", "si_sdr")
GOALS = {"si_sdr": 12.0, "pesq": 1.8, "stoi": 0.92}
#: name -> (what is switched off, --set overrides on top of configs/best.yaml)
ABLATIONS = {
    "full": ("nothing (the full recipe at the ablation budget)", []),
    "no_dynamic": ("dynamic mixing: the fixed stage-01 mixtures", ["training.mixing=fixed"]),
    "no_loss": ("cmse + SI-SDR loss: MSE on the ratio mask", ["training.loss=mse", "training.loss_weights=null"]),
    "no_context": (
        "temporal context: TCN kernel 1 (1-frame receptive field, same depth)",
        ["model.hparams.tcn.kernel_size=1"],
    ),
    "no_regularisation": ("dropout and weight decay", ["model.hparams.tcn.dropout=0.0", "training.weight_decay=0.0"]),
}


def run(cmd: list[str], cwd: Path) -> None:
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    out = subprocess.run(cmd, cwd=cwd, text=True, capture_output=True)
    lines = [
        ln
        for ln in (out.stdout + out.stderr).splitlines()
        if ln.strip() and not ln.startswith(("WARNING: All log", "I0000", "To enable", "Epoch "))
    ]
    print("\n".join(lines[-4:]), flush=True)
    if out.returncode:
        raise SystemExit(f"{cmd[1]} failed with exit code {out.returncode}")


def script(name: str) -> list[str]:
    return [sys.executable, str(ROOT / name), "--config", str(CONFIG), "--no-progress"]


def sets(overrides: list[str]) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def train_all(args, work: Path) -> dict[str, Path]:
    """The best run and the ablation runs, by the ordinary scripts; returns run name -> folder."""
    feats, data = work / "features" / "best", work / "datasets" / "best"
    run(
        script("01_extract_features.py")
        + ["--data", str(Path(args.data).resolve()), "--out", str(feats), "--jobs", str(args.jobs)],
        work,
    )
    run(script("02_build_dataset.py") + ["--features", str(feats), "--out", str(data)], work)
    runs = {}
    best_sets = [f"training.max_minutes={args.minutes:g}"] if args.minutes else []
    run(script("03_train_autoencoder.py") + ["--dataset", str(data), "--run", "best"] + sets(best_sets), work)
    runs["best"] = work / "models" / "best"
    for name, (_, overrides) in ABLATIONS.items():
        if args.ablation_minutes <= 0:
            break
        run(
            script("03_train_autoencoder.py")
            + ["--dataset", str(data), "--run", f"ablation_{name}"]
            + sets([f"training.max_minutes={args.ablation_minutes:g}", *overrides]),
            work,
        )
        runs[f"ablation_{name}"] = work / "models" / f"ablation_{name}"
    return runs


def scores(args, work: Path, runs: dict[str, Path], references: dict[str, Path]) -> dict:
    """Stage 05 summaries of every system on the same test files (models at their own patch_hop)."""
    feats = work / "features" / "best"
    cfg = load_config(CONFIG)
    ev = evaluate(
        cfg,
        out=work / "reports" / "best",
        models=list(runs.values()),
        baselines="all",
        features=feats,
        max_files=args.max_files,
        jobs=args.jobs,
        progress=False,
    )
    summary, n_files = dict(ev.summary), ev.n_files
    if references:
        ref = evaluate(
            load_config(),
            out=work / "reports" / "references",
            models=list(references.values()),
            baselines="none",
            features=feats,
            max_files=args.max_files,
            jobs=args.jobs,
            progress=False,
        )
        summary.update({s: e for s, e in ref.summary.items() if e["kind"] == "model"})
    return {"summary": summary, "n_files": n_files, "out": str(ev.out)}


def real_time_factors(work: Path, models: dict[str, Path], own: set[str], n_files: int = 20) -> dict[str, float]:
    """x real time of each model alone on ``n_files`` test mixtures (best of 3), each at its own recorded
    patch_hop (``own`` is kept for the callers; the hop now comes from run.json)."""
    mixtures = sorted((work / "features" / "best" / "mixtures").glob("*.wav"))
    test = [p for p in mixtures if p.stem in _test_ids(work)][:: max(1, len(mixtures) // 200)][:n_files]
    audio = [load_audio(p, sample_rate=16000)[0] for p in test]
    seconds = sum(a.size for a in audio) / 16000
    out = {}
    for name, folder in models.items():
        out[name] = seconds / time_run(folder, audio, patch_hop=None, repeats=3)
        print(f"{name}: {out[name]:.0f}x real time", flush=True)
    return out


def _test_ids(work: Path) -> set[str]:
    import csv

    with open(work / "features" / "best" / "manifest.csv", newline="") as fh:
        return {r["id"] for r in csv.DictReader(fh) if r["split"] == "test"}


def markdown(args, work: Path, res: dict, rtf: dict, runs: dict, references: dict) -> str:
    summary = res["summary"]
    snrs = sorted(next(iter(summary.values()))["by_snr"], key=float)
    infos = {name: RunInfo.load(folder) for name, folder in {**runs, **references}.items()}
    cmd = "python benchmarks/best.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    md = [
        "### Best model (issue 8) on the corpus test split",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {machine_line()}  ",
        f"Test: {res['n_files']} files of the unseen test split of `{args.data}` (speakers and noise recordings "
        f"training never saw), {len(snrs)} input SNRs; report in `{res['out']}`. Validation (early stopping): "
        f"{infos['best'].val_frames:,} frames = {infos['best'].val_minutes:g} min of fixed "
        "validation mixtures.",
        "",
    ]
    head = (
        "| system | train min | × real time | "
        + " | ".join(f"{LABELS[m]} {float(s):+g} dB" for m in METRICS for s in snrs)
        + " | "
        + " | ".join(f"mean {LABELS[m]}" for m in METRICS)
        + " |"
    )
    md += [head, "|" + "---|" * (3 + len(METRICS) * (len(snrs) + 1))]
    for system, e in summary.items():
        info = infos.get(system)
        minutes = f"{info.train_seconds / 60:.1f}" if info else "–"
        speed = f"{rtf[system]:.0f}" if system in rtf else "–"
        cells = [
            f"{e['by_snr'][s][m][0]:.3f}" if m != "si_sdr" else f"{e['by_snr'][s][m][0]:.2f}"
            for m in METRICS
            for s in snrs
        ]
        means = [f"{e['overall'][m][0]:.3f}" if m != "si_sdr" else f"{e['overall'][m][0]:.2f}" for m in METRICS]
        label = f"**{system}**" if system == "best" else system
        md.append(f"| {label} | {minutes} | {speed} | " + " | ".join(cells + means) + " |")
    best = summary["best"]["overall"]
    md += [
        "",
        "Goals (mean over the test files): "
        + "; ".join(
            f"{LABELS[m]} {best[m][0]:.3f} (goal ≥ {g}: {'met' if best[m][0] >= g else 'not met'})"
            for m, g in GOALS.items()
        )
        + f"; inference {rtf.get('best', float('nan')):.0f}× real time (goal ≥ 100×: "
        f"{'met' if rtf.get('best', 0) >= 100 else 'not met'}).",
        "",
    ]
    md += [
        "Rows and commands (run in `--work`; `C=configs/best.yaml` of this repository):",
        "",
        f"- best: `python 01_extract_features.py --config C --data {args.data} --out features/best --jobs 2 && "
        "python 02_build_dataset.py --config C --features features/best --out datasets/best && "
        "python 03_train_autoencoder.py --config C --dataset datasets/best --run best"
        + (f" --set training.max_minutes={args.minutes:g}" if args.minutes else "")
        + "`",
    ]
    for name, (what, overrides) in ABLATIONS.items():
        if f"ablation_{name}" in runs:
            extra = " ".join(f"--set {o}" for o in [f"training.max_minutes={args.ablation_minutes:g}", *overrides])
            md.append(
                f"- ablation_{name} (off: {what}): `python 03_train_autoencoder.py --config C --dataset "
                f"datasets/best --run ablation_{name} {extra}`"
            )
    for name, folder in references.items():
        i = infos[name]
        md.append(
            f"- {name} (reference, {i.model} on {i.feature}, {i.target}, default config, patch_hop 4): `{folder}`"
        )
    md.append(
        "- noisy, spectral_subtraction, wiener, noisereduce: stage 05 baselines on the same files "
        "(`python 05_evaluate.py --features features/best --baselines all`)"
    )
    return "\n".join(md)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="corpus with train/ and test/ (../shared/tools/build_corpus.sh)")
    ap.add_argument("--work", required=True, help="folder for every artifact (the scripts' working directory)")
    ap.add_argument(
        "--minutes", type=float, help="budget of the best run (default: training.max_minutes of the config)"
    )
    ap.add_argument("--ablation-minutes", type=float, default=5.0, help="budget of each ablation run (0: none)")
    ap.add_argument(
        "--references",
        nargs="*",
        default=[],
        metavar="NAME=RUN_DIR",
        help="trained reference runs (models/<run>/) scored on the same files",
    )
    ap.add_argument("--max-files", type=int, help="score at most N test files per input SNR")
    ap.add_argument("--jobs", type=int, default=2, help="processes for stage 01 and the metrics")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    references = dict(r.split("=", 1) for r in args.references)
    references = {k: Path(v).resolve() for k, v in references.items()}
    runs = train_all(args, work)
    res = scores(args, work, runs, references)
    rtf = real_time_factors(work, {**runs, **references}, set(runs))
    publish("best", markdown(args, work, res, rtf, runs, references), write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
