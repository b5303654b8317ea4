#!/usr/bin/env python3
"""Issue 16's table: our models, the peers (DeepFilterNet3, RNNoise) and the classical baselines on the corpus.

Every row is trained and scored by the ordinary scripts, run as subprocesses in ``--work`` (what a
user types there; the stages skip work that is up to date):

1. ``configs/best.yaml`` (01 -> 02 -> 03 at its own budget) and the four reference models of the zoo
   (4 minutes each, default config): :data:`RECIPES`.
2. Stage 05 on the unseen test split (speakers and noise recordings training never saw): every model
   as ``Denoiser`` runs it (whole sequences for the causal TCN, patches at the run's recorded
   ``patch_hop`` for the others), the noisy input, the classical baselines and the peers, on
   PESQ-WB, STOI, ESTOI, SI-SDR and DNSMOS P.835 SIG / BAK / OVRL, per input SNR.
3. The real-time factor of every system alone on the machine (best of 3 over ``--rtf-files`` test
   mixtures, whole file per call, after a warm-up), next to the one stage 05 measured while its metric
   workers shared the cores.

Writes section ``corpus`` of ``benchmarks/BENCHMARKS.md``.

    python benchmarks/corpus_table.py --data CORPUS --work WORK --max-files 40 --jobs 2
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._report import machine_line, publish  # noqa: E402
from benchmarks.rtf_runs import time_run  # noqa: E402
from benchmarks.speed import best_time  # noqa: E402
from speech_dae.artifacts import read_json  # noqa: E402
from speech_dae.audio import load_audio  # noqa: E402
from speech_dae.baselines import run_baseline  # noqa: E402
from speech_dae.inputs import manifest_items  # noqa: E402
from speech_dae.runinfo import RunInfo  # noqa: E402
from speech_dae.scores import (  # noqa: E402
    LABELS,
    digits,
    format_stat,
    inference_note,  # noqa: E402
)
from speech_dae.stages.evaluate import select_items  # noqa: E402

METRICS = ("pesq", "stoi", "estoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
REF_SETS = [
    "training.epochs=100",
    "training.max_minutes=4",
    "training.steps_per_epoch=300",
    "training.val_max_patches=4096",
]
#: run name -> (features folder name, stage-01 options, stage-02/03 ``--config`` or None, stage-03 options)
RECIPES = {
    "best": ("best", [], "configs/best.yaml", []),
    "fbank_type2": ("fbank", ["--feature", "fbank"], None, ["--model", "type2", *REF_SETS]),
    "logmel_dense_ln": ("logmel", ["--feature", "logmel"], None, ["--model", "dense_ln", *REF_SETS]),
    "logmel_unet_mask": (
        "logmel",
        ["--feature", "logmel"],
        None,
        ["--model", "unet", "--target", "mask", *REF_SETS, "model.hparams.unet.base_filters=16"],
    ),
    "waveform_conv1d_time": ("waveform", ["--feature", "waveform"], None, ["--model", "conv1d_time", *REF_SETS]),
}


def _args(options: list[str]) -> list[str]:
    """``--set`` in front of every ``key=value`` override."""
    out = []
    for o in options:
        out += ["--set", o] if "=" in o and not o.startswith("--") else [o]
    return out


def commands(name: str, data: str, jobs: int) -> list[list[str]]:
    """The 01, 02 and 03 command lines of one run, relative to the repository (``python NN_script.py ...``)."""
    feats, opts01, config, opts03 = RECIPES[name]
    cfg = ["--config", config] if config else []
    return [
        ["python", "01_extract_features.py", *cfg, "--data", data, *opts01, "--out", f"features/{feats}"]
        + ["--jobs", str(jobs)],
        ["python", "02_build_dataset.py", *cfg, "--features", f"features/{feats}", "--out", f"datasets/{feats}"],
        ["python", "03_train_autoencoder.py", *cfg, "--dataset", f"datasets/{feats}", "--run", name, *_args(opts03)],
    ]


def evaluate_command(models, *, max_files: int, jobs: int, out: str) -> list[str]:
    """Stage 05's command line: ``models`` (run names under models/), the baselines and peers, every metric."""
    return [
        "python",
        "05_evaluate.py",
        *(["--models", *(f"models/{m}" for m in models)] if models else []),
        "--features",
        "features/best",
        "--baselines",
        "all",
        "--metrics",
        *METRICS,
        "--max-files",
        str(max_files),
        "--jobs",
        str(jobs),
        "--out",
        out,
    ]


def eval_command(args) -> list[str]:
    return evaluate_command(RECIPES, max_files=args.max_files, jobs=args.jobs, out="reports/corpus")


def run(cmd: list[str], work: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    """Run a repository script (``cmd[1]``) with this Python in ``work``; stop on failure (``check``), else
    return the finished process (its output captured)."""
    full = [sys.executable, str(ROOT / cmd[1]), *[str(ROOT / c) if c.startswith("configs/") else c for c in cmd[2:]]]
    print("$ " + shlex.join(cmd), flush=True)
    out = subprocess.run([*full, "--no-progress"], cwd=work, text=True, capture_output=True)
    print("\n".join([ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()][-3:]), flush=True)
    if out.returncode and check:
        raise SystemExit(f"{cmd[1]} failed with exit code {out.returncode}")
    return out


def test_audio(work: Path, n: int) -> list:
    """About ``n`` test mixtures of features/best, as many at every input SNR, evenly spaced (as 05 picks)."""
    test = manifest_items(work / "features" / "best")
    per = max(1, n // len({it.snr_db for it in test}))
    return [load_audio(it.noisy, sample_rate=16000)[0] for it in select_items(test, per)]


def alone_rtf(work: Path, summary: dict, n_files: int) -> dict[str, float]:
    """× real time of every system alone: models as stage 05 runs them, baselines and peers as in stage 05."""
    audio = test_audio(work, n_files)
    seconds = sum(a.size for a in audio) / 16000
    out = {}
    for name, e in summary.items():
        if e["kind"] == "model":
            t = time_run(work / "models" / name, audio, patch_hop=None, repeats=3)
        elif e["kind"] == "baseline":
            run_baseline(name, audio[0], sample_rate=16000)  # warm-up: imports, library loads
            t = best_time(lambda name=name: [run_baseline(name, y, sample_rate=16000) for y in audio], 3, warmup=False)
        else:
            continue
        out[name] = seconds / t
        print(f"{name}: {out[name]:.0f}x real time alone", flush=True)
    return out


def markdown(args, work: Path, ev: dict, rtf: dict, started: str) -> str:
    summary = ev["systems"]
    snrs = sorted(next(iter(summary.values()))["by_snr"], key=float)
    infos = {n: RunInfo.load(work / "models" / n) for n, e in summary.items() if e["kind"] == "model"}
    data = "CORPUS"
    md = [
        "### Our models against DeepFilterNet3, RNNoise and the classical baselines (issue 16)",
        "",
        f"Command: `python benchmarks/corpus_table.py --data {data} --work WORK --max-files {args.max_files} "
        f"--jobs {args.jobs}` (CORPUS: the corpus of `../shared/tools/build_corpus.sh`)  ",
        f"Machine: {machine_line()}; training and timing with the machine otherwise idle, started {started}  ",
        f"Test: {ev['n_files']} files of the corpus's unseen test split (a speaker and noise recordings no "
        f"system trained on), {args.max_files} per input SNR of {', '.join(f'{float(s):+g}' for s in snrs)} dB; "
        "16 kHz. DeepFilterNet3 and RNNoise run at 48 kHz on the resampled input and are shifted back by "
        "their fixed delay. "
        + inference_note(
            {n: ev.get("inference", {}).get(n, "patch") for n, i in infos.items() if not i.waveform}, ev["patch_hop"]
        )
        + " Waveform runs overlap-add their chunks by half.",
        "",
        "Mean ± 95 % CI over the files (the same files for every system and metric: "
        + ", ".join(f"{LABELS[m]} {next(iter(summary.values()))['overall'][m][2]}" for m in METRICS)
        + "). `× real time alone`: best of 3 over "
        f"{args.rtf_files} test mixtures, one system at a time, whole file per call, after a warm-up; `in 05`: "
        "the same measured inside stage 05 while its 2 metric workers shared the cores.",
        "",
        "| system | params | epochs (best) | train min | "
        + " | ".join(LABELS[m] for m in METRICS)
        + " | × real time alone | in 05 |",
        "|" + "---|" * (len(METRICS) + 6),
    ]
    for name, e in summary.items():
        i = infos.get(name)
        run_cols = (
            [f"{i.n_params:,}", f"{i.epochs_run} ({i.best_epoch})", f"{i.train_seconds / 60:.1f}"]
            if i
            else ["–", "–", "–"]
        )
        cells = [format_stat(e["overall"][m], m) for m in METRICS]
        alone = f"{rtf[name]:.0f}" if name in rtf else "–"
        in05 = f"{e['x_real_time']:.0f}" if e["kind"] != "input" and e["x_real_time"] else "–"
        label = f"**{name}**" if name == "best" else name
        md.append(f"| {label} | " + " | ".join([*run_cols, *cells, alone, in05]) + " |")
    md += ["", "Per input SNR (mean over the files of each SNR):", ""]
    head = "| system | " + " | ".join(f"{LABELS[m]} {float(s):+g}" for m in METRICS for s in snrs) + " |"
    md += [head, "|" + "---|" * (1 + len(METRICS) * len(snrs))]
    for name, e in summary.items():
        cells = [f"{e['by_snr'][s][m][0]:.{digits(m)}f}" for m in METRICS for s in snrs]
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    md += ["", "Rows and commands (run from the repository root, or any folder with these paths):", ""]
    for name in RECIPES:
        md.append(f"- {name}: `" + " && ".join(shlex.join(c) for c in commands(name, data, args.jobs)) + "`")
    md.append(
        "- noisy, spectral_subtraction, wiener, noisereduce_*, deepfilternet3, rnnoise (the `peers` extra), and "
        "the scores of every row: `" + shlex.join(eval_command(args)) + "`"
    )
    return "\n".join(md)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="CORPUS: train/ and test/ (../shared/tools/build_corpus.sh)")
    ap.add_argument("--work", required=True, help="folder for every artifact (the scripts' working directory)")
    ap.add_argument("--max-files", type=int, default=40, help="test files per input SNR (default 40)")
    ap.add_argument("--jobs", type=int, default=2, help="processes for stage 01 and the metrics (default 2)")
    ap.add_argument("--rtf-files", type=int, default=20, help="test mixtures timed per system alone (default 20)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    data = str(Path(args.data).resolve())
    for name in RECIPES:
        for cmd in commands(name, data, args.jobs):
            run(cmd, work)
    run(eval_command(args), work)
    ev = read_json(work / "reports" / "corpus" / "summary.json")
    rtf = alone_rtf(work, ev["systems"], args.rtf_files)
    publish("corpus", markdown(args, work, ev, rtf, started), write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
