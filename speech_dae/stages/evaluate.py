"""Stage 05: score trained models and classical baselines on the same noisy files.

Every system (the unprocessed ``noisy`` input, each ``models/<run>/`` through
:class:`~speech_dae.reconstruct.Denoiser`, each baseline of
:mod:`speech_dae.baselines`) denoises every file; each output is scored in the
waveform domain against the clean reference with :func:`speech_dae.metrics.score`
(plus the feature-domain MSE), and timed. The report folder holds:

``results.csv``
    One row per file x system: id, input SNR, system, kind, every metric,
    processing seconds and audio seconds.
``summary.md``
    Mean ± 95 % confidence interval (Student t over files) per system, overall
    and per input SNR, the paired improvement over the noisy input, and the
    real-time factor of each system.
``summary.json``
    The same figures, machine-readable.
``metrics_by_snr.png``
    One panel per metric, one line per system, x = input SNR.

The folder is built under ``<out>.partial`` and renamed when complete, like the
other stages; an unchanged evaluation is not recomputed (``--force`` does).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import report
from ..artifacts import STAGE04, STAGE05, StagedOutput, atomic_path, fingerprint, read_json, write_csv, write_json
from ..audio import file_stat_key, load_audio, validate_audio, write_audio
from ..baselines import BASELINES, run_baseline
from ..config import Config
from ..errors import AudioError, ConfigError
from ..features import FeatureExtractor
from ..folders import trained_on_items
from ..framing import even_indices
from ..inference import Denoiser
from ..inputs import Item, folder_items, manifest_items
from ..metrics import HIGHER_IS_BETTER, METRICS, feature_mse, score
from ..plots import pyplot
from ..version import __version__

__all__ = [
    "evaluate",
    "EvalSummary",
    "System",
    "summarise",
    "select_items",
    "resolve_baselines",
    "ALL_METRICS",
    "MAIN_METRICS",
    "format_stat",
]

log = logging.getLogger(__name__)

#: Every metric 05 can report: the waveform metrics of :mod:`speech_dae.metrics` and ``feature_mse``.
ALL_METRICS: tuple = (*METRICS, "feature_mse")
#: The metrics shown first (tables, plots, console).
MAIN_METRICS: tuple = ("pesq", "stoi", "estoi", "si_sdr", "snr", "segsnr")
_HIGHER = {**HIGHER_IS_BETTER, "feature_mse": False}
LABELS = {
    "snr": "SNR (dB)",
    "segsnr": "segSNR (dB)",
    "si_sdr": "SI-SDR (dB)",
    "pesq": "PESQ-WB",
    "stoi": "STOI",
    "estoi": "ESTOI",
    "mse": "MSE",
    "mae": "MAE",
    "rmse": "RMSE",
    "pearson": "Pearson r",
    "feature_mse": "feature MSE",
}
NOISY = "noisy"


@dataclass
class System:
    """Something that turns a noisy waveform into an estimate of the clean one.

    Attributes
    ----------
    name : str
        Row label in every table (run folder name, baseline name, or ``noisy``).
    kind : str
        ``input``, ``model`` or ``baseline``.
    fn : callable
        ``fn(noisy: np.ndarray[float32, (n,)]) -> np.ndarray[float32, (n,)]`` at the evaluation sample rate.
    """

    name: str
    kind: str
    fn: Callable[[np.ndarray], np.ndarray]


def resolve_baselines(names: str | Iterable[str] | None) -> list[str]:
    """``"all"`` -> every baseline; ``None``/``"none"`` -> none; else validated names (comma lists allowed).

    Raises
    ------
    ConfigError
        For an unknown name (the message lists the valid ones).
    """
    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    flat = [n.strip() for item in names for n in item.split(",") if n.strip()]
    if flat == ["none"] or not flat:
        return []
    if "all" in flat:
        return list(BASELINES)
    unknown = [n for n in flat if n not in BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline {', '.join(unknown)}; choose from all, none, {', '.join(BASELINES)}")
    return list(dict.fromkeys(flat))


def _resolve_metrics(metrics: Iterable[str] | None) -> list[str]:
    if metrics is None:
        return list(ALL_METRICS)
    flat = [
        n.strip() for item in ([metrics] if isinstance(metrics, str) else metrics) for n in item.split(",") if n.strip()
    ]
    unknown = [m for m in flat if m not in ALL_METRICS]
    if unknown or not flat:
        raise ConfigError(
            f"unknown metric {', '.join(unknown) or '(none given)'}; choose from {', '.join(ALL_METRICS)}"
        )
    return list(dict.fromkeys(flat))


def select_items(items: Sequence[Item], max_files: int | None) -> list[Item]:
    """At most ``max_files`` items *per input SNR*, evenly spaced through each SNR's list (deterministic).

    Spacing the picks through the manifest order keeps every speaker and noise
    recording represented instead of the first few.
    """
    if not max_files or max_files <= 0:
        return list(items)
    groups: dict[str, list[Item]] = {}
    for it in items:
        groups.setdefault(it.snr_db, []).append(it)
    keep = set()
    for group in groups.values():
        if len(group) <= max_files:
            keep.update(it.uid for it in group)
        else:
            idx = even_indices(len(group), max_files)
            keep.update(group[i].uid for i in idx)
    return [it for it in items if it.uid in keep]


def _ci95(values: np.ndarray) -> tuple[float, float, int]:
    """Mean, half-width of the 95 % Student-t confidence interval, and n (NaNs dropped)."""
    v = values[np.isfinite(values)]
    n = int(v.size)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n == 1:
        return float(v[0]), float("nan"), 1
    from scipy.stats import t

    return float(v.mean()), float(t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)), n


def summarise(rows: Sequence[dict], metrics: Sequence[str]) -> dict:
    """Aggregate ``results.csv`` rows.

    Parameters
    ----------
    rows : sequence of dict
        One per file x system with keys ``id``, ``snr_db``, ``system``, the metrics, ``seconds``, ``audio_s``.
    metrics : sequence of str

    Returns
    -------
    dict
        ``{system: {"kind", "n_files", "x_real_time", "overall": {metric: [mean, ci95, n]},
        "by_snr": {snr: {metric: [mean, ci95, n]}}, "delta": {metric: [mean, ci95, n]}}}`` where
        ``delta`` is the paired difference to the ``noisy`` row of the same file.
    """
    systems = list(dict.fromkeys(r["system"] for r in rows))
    noisy = {r["id"]: r for r in rows if r["system"] == NOISY}
    snrs = sorted({str(r["snr_db"]) for r in rows if str(r["snr_db"]) != ""}, key=float)
    out = {}
    for name in systems:
        mine = [r for r in rows if r["system"] == name]

        def stats(sub, m):
            return list(_ci95(np.array([float(r[m]) for r in sub], dtype=np.float64)))

        secs = sum(float(r["seconds"]) for r in mine)
        entry = {
            "kind": mine[0]["kind"],
            "n_files": len(mine),
            "x_real_time": (sum(float(r["audio_s"]) for r in mine) / secs) if secs > 0 else None,
            "overall": {m: stats(mine, m) for m in metrics},
            "by_snr": {s: {m: stats([r for r in mine if str(r["snr_db"]) == s], m) for m in metrics} for s in snrs},
        }
        if noisy and name != NOISY:
            paired = [r for r in mine if r["id"] in noisy]
            entry["delta"] = {
                m: list(_ci95(np.array([float(r[m]) - float(noisy[r["id"]][m]) for r in paired]))) for m in metrics
            }
        out[name] = entry
    return out


def format_stat(stat, metric: str, *, ci: bool = True) -> str:
    """``[mean, ci95, n]`` as ``"mean ± ci"`` with the metric's digits (``"n/a"`` when n = 0, no ``±`` when n = 1)."""
    mean, half, n = stat
    if n == 0:
        return "n/a"
    d = _digits(metric)
    return f"{mean + 0.0:.{d}f}" if not (ci and np.isfinite(half)) else f"{mean:.{d}f} ± {half:.{d}f}"


def _digits(metric: str) -> int:
    return 3 if metric in ("pesq", "stoi", "estoi", "pearson") else (2 if metric in ("snr", "segsnr", "si_sdr") else 5)


def _best(summary: dict, metric: str, key=lambda e, m: e["overall"][m][0]) -> str | None:
    vals = {s: key(e, metric) for s, e in summary.items() if np.isfinite(key(e, metric))}
    if not vals:
        return None
    return (max if _HIGHER[metric] else min)(vals, key=vals.get)


def _table(header: Sequence[str], lines: Iterable[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cells) + " |" for cells in lines),
    ]


def summary_markdown(summary: dict, metrics: Sequence[str], *, title: str, notes: Sequence[str] = ()) -> str:
    """The ``summary.md`` text: overall table, paired improvement, one table per metric by input SNR."""
    shown = [m for m in MAIN_METRICS if m in metrics] + [m for m in metrics if m not in MAIN_METRICS]
    md = [f"# {title}", "", *notes, ""]
    main = [m for m in shown if m in MAIN_METRICS]
    rest = [m for m in shown if m not in MAIN_METRICS]
    for title, cols in (
        ("Overall (mean ± 95 % CI over files; best in bold)", main or rest),
        ("Other metrics (mean ± 95 % CI over files)", rest if main else []),
    ):
        if not cols:
            continue
        bests = {m: _best(summary, m) for m in cols}
        md += [f"## {title}", ""]
        md += _table(
            ["system", "kind", "files", *(LABELS[m] for m in cols), "× real time"],
            (
                [
                    s,
                    e["kind"],
                    str(e["n_files"]),
                    *(
                        (f"**{format_stat(e['overall'][m], m)}**" if bests[m] == s else format_stat(e["overall"][m], m))
                        for m in cols
                    ),
                    "-" if e["x_real_time"] is None or e["kind"] == "input" else f"{e['x_real_time']:.0f}",
                ]
                for s, e in summary.items()
            ),
        )
        md += [""]
    delta_metrics = [m for m in MAIN_METRICS if m in metrics]
    if any("delta" in e for e in summary.values()) and delta_metrics:
        md += ["## Improvement over the noisy input (paired, same files; mean ± 95 % CI)", ""]
        md += _table(
            ["system", *(f"Δ {LABELS[m]}" for m in delta_metrics)],
            ([s, *(format_stat(e["delta"][m], m) for m in delta_metrics)] for s, e in summary.items() if "delta" in e),
        )
    snrs = list(next(iter(summary.values()))["by_snr"]) if summary else []
    if snrs:
        md += ["", "## By input SNR (mean ± 95 % CI; best per column in bold)"]
        for m in shown:
            md += ["", f"### {LABELS[m]} ({'higher' if _HIGHER[m] else 'lower'} is better)", ""]
            col_best = {s: _best(summary, m, key=lambda e, mm, s=s: e["by_snr"][s][mm][0]) for s in snrs}
            md += _table(
                ["system", *(f"{float(s):+g} dB" for s in snrs)],
                (
                    [
                        name,
                        *(
                            (
                                f"**{format_stat(e['by_snr'][s][m], m)}**"
                                if col_best[s] == name
                                else format_stat(e["by_snr"][s][m], m)
                            )
                            for s in snrs
                        ),
                    ]
                    for name, e in summary.items()
                ),
            )
    return "\n".join(md) + "\n"


def plot_metrics_by_snr(summary: dict, metrics: Sequence[str], path: str | Path) -> Path:
    """One panel per main metric (and feature MSE), one line per system (mean ± 95 % CI), x = input SNR.

    The PNG is written atomically. The waveform error metrics (MSE, MAE, RMSE,
    Pearson) stay in the tables: they add panels but little to read.
    """
    plt = pyplot()
    shown = [m for m in (*MAIN_METRICS, "feature_mse") if m in metrics] or list(metrics)
    snrs = list(next(iter(summary.values()))["by_snr"])
    ncol = min(3, len(shown))
    nrow = math.ceil(len(shown) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.3 * nrow + 0.8), squeeze=False)
    x = np.array([float(s) for s in snrs]) if snrs else np.array([0.0])
    styles = {
        "input": dict(color="black", ls="--", marker="o"),
        "baseline": dict(ls=":", marker="s"),
        "model": dict(ls="-", marker="o", lw=2),
    }
    for ax, m in zip(axes.flat, shown):
        for name, e in summary.items():
            stats = [e["by_snr"][s][m] for s in snrs] if snrs else [e["overall"][m]]
            mean = np.array([st[0] for st in stats], dtype=float)
            ci = np.nan_to_num(np.array([st[1] for st in stats], dtype=float))
            ax.errorbar(x, mean, yerr=ci, capsize=3, label=name, **styles.get(e["kind"], {}))
        ax.set_title(f"{LABELS[m]} ({'higher' if _HIGHER[m] else 'lower'} is better)", fontsize=10)
        ax.set_xlabel("input SNR (dB)" if snrs else "all files")
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.02 * (len(labels) > 5), 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(path)


@dataclass
class EvalSummary:
    out: Path
    summary: dict
    metrics: list
    n_files: int = 0
    skipped: list = field(default_factory=list)
    up_to_date: bool = False

    def lines(self) -> list[str]:
        if self.up_to_date:
            head = [f"{self.out} is up to date ({self.n_files} files); pass --force to score again"]
        else:
            head = [
                f"scored {self.n_files} files x {len(self.summary)} systems"
                + (f" ({len(self.skipped)} skipped, see summary.md)" if self.skipped else "")
            ]
        shown = [m for m in ("pesq", "stoi", "si_sdr") if m in self.metrics] or self.metrics[:3]
        width = max(len(s) for s in self.summary)
        for name, e in self.summary.items():
            vals = ", ".join(f"{LABELS[m]} {format_stat(e['overall'][m], m)}" for m in shown)
            rt = "" if e["x_real_time"] is None or e["kind"] == "input" else f", {e['x_real_time']:.0f}x real time"
            head.append(f"  {name:<{width}}  {vals}{rt}")
        head.append(f"wrote {self.out}/results.csv, summary.md and metrics_by_snr.png")
        return head


def _model_systems(model_dirs: Sequence[str | Path], cfg: Config) -> list:
    r = cfg.reconstruct
    dens = [Denoiser(d, patch_hop=r.patch_hop, batch_size=r.batch_size, max_gain=r.max_gain) for d in model_dirs]
    names = [d.name for d in dens]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"two --models share the run name {', '.join(sorted(dupes))}; rename one folder")
    rates = {d.sample_rate for d in dens}
    if len(rates) > 1:
        raise ConfigError(f"the --models run at different sample rates ({sorted(rates)} Hz); evaluate them separately")
    return dens


def _items(features, inputs, clean, dens) -> list[Item]:
    if features is not None and inputs is not None:
        raise ConfigError("pass either --features or --input/--clean, not both")
    if inputs is not None:
        if clean is None:
            raise ConfigError(
                f"{STAGE05} scores against clean references: pass --clean DIR with --input "
                f"(to only denoise, use {STAGE04})"
            )
        return folder_items(inputs, clean)
    if features is None:
        if not dens:
            raise ConfigError("nothing to evaluate on: pass --features features/NAME or --input DIR --clean DIR")
        return trained_on_items(
            dens[0].info.features_dir, run=dens[0].name, instead="--features DIR or --input DIR --clean DIR"
        )
    return manifest_items(features)


def _fingerprint(cfg, dens, baselines, metrics, items, sr) -> str:
    models = [(str(d.run_dir.resolve()), file_stat_key(d.run_dir / "model.keras"), d.info.fingerprint) for d in dens]
    files = [
        (it.uid, it.snr_db, file_stat_key(it.noisy), file_stat_key(it.clean) if it.clean else None) for it in items
    ]
    return fingerprint(
        "evaluate",
        __version__,
        models,
        baselines,
        metrics,
        files,
        sr,
        asdict(cfg.reconstruct),
        asdict(cfg.features),
        cfg.audio.silence_rms_db,
    )


def evaluate(
    cfg: Config,
    *,
    out: str | Path,
    models: Sequence[str | Path] = (),
    baselines: str | Iterable[str] | None = "all",
    features: str | Path | None = None,
    inputs: str | Path | None = None,
    clean: str | Path | None = None,
    metrics: Iterable[str] | None = None,
    max_files: int | None = None,
    jobs: int = 1,
    save_audio: bool = False,
    force: bool = False,
    progress: bool = True,
    report_examples: int | None = None,
) -> EvalSummary:
    """Run stage 05: denoise every file with every system, score, summarise, plot and write ``report.html``.

    Parameters
    ----------
    cfg : Config
        ``reconstruct`` settings apply to the models; ``features`` picks the domain of ``feature_mse``.
    out : str or Path
        Report folder (``reports/<name>``).
    models : sequence of path
        ``models/<run>/`` folders written by stage 03.
    baselines : str or list of str, optional
        ``"all"`` (default), ``"none"``/``None``, or names from :data:`speech_dae.baselines.BASELINES`.
    features : path, optional
        A stage-01 folder: its test split (mixtures, references, input SNRs) is scored.
    inputs, clean : path, optional
        Noisy file/folder and clean references matched by relative path (instead of ``features``).
        Default when neither is given: the features folder the first model was trained on.
    metrics : list of str, optional
        Subset of :data:`ALL_METRICS` (default: all).
    max_files : int, optional
        Score at most this many files per input SNR (evenly spaced, see :func:`select_items`).
    jobs : int
        Worker processes for the metrics (denoising stays in this process).
    save_audio : bool
        Also write every system's output to ``out/audio/<system>/<id>.wav``.
    report_examples : int, optional
        Files shown in ``out/report.html`` with the noisy input, every system's output and the clean
        reference as players and spectrograms (default: one per input SNR, at most 8, see
        :func:`speech_dae.report.pick_examples`; 0: tables only). Not part of the fingerprint: an
        up-to-date evaluation keeps its report (``force`` rebuilds it).

    Returns
    -------
    EvalSummary

    Raises
    ------
    ConfigError
        Nothing to evaluate, unknown baseline or metric, conflicting inputs, models at different rates,
        negative ``report_examples``.
    ArtifactError
        A model folder is incomplete, or ``out`` holds another evaluation (without ``force``).
    AudioError
        No file could be scored.
    """
    base_names = resolve_baselines(baselines)
    metric_names = _resolve_metrics(metrics)
    dens = _model_systems(models, cfg)
    if not dens and not base_names:
        raise ConfigError("nothing to score: pass --models models/RUN ... and/or --baselines all")
    sr = dens[0].sample_rate if dens else cfg.audio.sample_rate
    all_items = _items(features, inputs, clean, dens)
    skipped = [f"{it.noisy}: no clean reference" for it in all_items if it.clean is None]
    items = select_items([it for it in all_items if it.clean is not None], max_files)
    if not items:
        raise AudioError(f"no file has a clean reference to score against ({len(all_items)} noisy files)")
    examples = {it.uid: k for k, it in enumerate(report.pick_examples(items, report_examples))}
    stage = StagedOutput(
        out, _fingerprint(cfg, dens, base_names, metric_names, items, sr), marker="evaluation.json", force=force
    )
    if stage.is_current():
        info = read_json(Path(out) / "summary.json")
        recorded = read_json(Path(out) / "evaluation.json").get("report_examples")
        if recorded != len(examples) or not (Path(out) / report.REPORT_HTML).is_file():
            log.warning(
                "%s/report.html was written with %s example(s), not %d; pass --force to rebuild it",
                out,
                recorded,
                len(examples),
            )
        return EvalSummary(
            Path(out), info["systems"], info["metrics"], info["n_files"], info["skipped"], up_to_date=True
        )
    work = stage.begin()
    systems = [System(NOISY, "input", lambda y: y)]
    systems += [System(d.name, "model", d) for d in dens]
    systems += [System(b, "baseline", lambda y, b=b: run_baseline(b, y, sample_rate=sr)) for b in base_names]
    for s in systems[1:]:  # warm-up (graph tracing, JIT, FFT plans) stays out of the timings
        s.fn(np.random.default_rng(0).standard_normal(sr).astype(np.float32) * 0.1)
    fx = FeatureExtractor(cfg.features, sr) if "feature_mse" in metric_names else None
    wave_metrics = [m for m in metric_names if m != "feature_mse"]
    rows, pending, shown = [], [], []
    pool = ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) if jobs > 1 and wave_metrics else None
    try:
        for it in tqdm(items, desc="05 evaluate", unit="file", disable=not progress):
            try:
                noisy, _ = load_audio(it.noisy, sample_rate=sr)
                noisy = validate_audio(noisy, sample_rate=sr, min_duration_s=0.25, name=str(it.noisy))
                ref, _ = load_audio(it.clean, sample_rate=sr)
                # a silent reference would give NaN scores: skip the file (listed in summary.md) instead
                ref = validate_audio(ref, sample_rate=sr, silence_rms_db=cfg.audio.silence_rms_db, name=str(it.clean))
            except AudioError as exc:
                skipped.append(str(exc))
                log.warning("skipped: %s", exc)
                continue
            n = min(ref.size, noisy.size)
            ref_feats = fx(ref[:n]) if fx else None
            outputs = []
            for s in systems:
                t0 = time.perf_counter()
                est = np.asarray(s.fn(noisy), dtype=np.float32)
                row = {
                    "id": it.uid,
                    "snr_db": it.snr_db,
                    "system": s.name,
                    "kind": s.kind,
                    "seconds": time.perf_counter() - t0,
                    "audio_s": noisy.size / sr,
                }
                if fx is not None:
                    row["feature_mse"] = feature_mse(ref_feats, fx(est[:n]))
                if save_audio:
                    write_audio(work / "audio" / s.name / f"{it.uid}.wav", est, sr)
                if it.uid in examples:
                    outputs.append((s.name, "noisy input" if s.kind == "input" else f"{s.name} ({s.kind})", est, None))
                if wave_metrics:
                    args = (ref[:n], est[:n])
                    kw = dict(sample_rate=sr, metrics=wave_metrics)
                    pending.append((row, pool.submit(score, *args, **kw) if pool else score(*args, **kw)))
                rows.append(row)
            if it.uid in examples:
                outputs.append((None, "clean reference", ref[:n], None))
                cards = report.save_example(
                    work, examples[it.uid], outputs, sample_rate=sr, image_max_s=cfg.reconstruct.image_max_s
                )
                shown.append({"id": it.uid, "snr_db": it.snr_db, "cards": cards, "k": examples[it.uid]})
        for row, res in pending:
            row.update(res.result() if isinstance(res, Future) else res)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if not rows:
        raise AudioError(f"no file could be scored ({len(skipped)} skipped; first: {skipped[0]})")
    n_files = len(rows) // len(systems)
    summary = summarise(rows, metric_names)
    fields = ["id", "snr_db", "system", "kind", *metric_names, "seconds", "audio_s"]
    write_csv(
        work / "results.csv",
        [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
        fields,
    )
    src = (
        f"the test split of {features}"
        if features
        else (f"{inputs} against {clean}" if inputs else f"the test split of {dens[0].info.features_dir}")
    )
    notes = [
        f"{n_files} files from {src}, scored at {sr} Hz against the clean references; "
        f"systems: {', '.join(s.name for s in systems)}.",
        "`× real time` = audio seconds / processing seconds of that system on this machine (one file at a "
        "time, whole file per call, warm-up excluded).",
        f"feature MSE is measured on {cfg.features.type} features of the waveforms." if fx else "",
    ]
    if skipped:
        notes += ["", f"Skipped {len(skipped)} file(s):", *(f"- {s}" for s in skipped)]
    (work / "summary.md").write_text(
        summary_markdown(summary, metric_names, title=f"Evaluation: {Path(out).name}", notes=notes), encoding="utf-8"
    )
    write_json(
        work / "summary.json",
        {"systems": summary, "metrics": metric_names, "n_files": n_files, "skipped": skipped, "sample_rate": sr},
    )
    plot_metrics_by_snr(summary, metric_names, work / "metrics_by_snr.png")
    by_key = {(r["id"], r["system"]): r for r in rows}
    for ex in shown:
        for cd in ex["cards"]:
            cd["scores"] = report.scores_text(by_key.get((ex["id"], cd["key"]), {}), metric_names)
    report.evaluation_report(
        work,
        summary,
        metric_names,
        sorted(shown, key=lambda e: e["k"]),
        title=f"Evaluation: {Path(out).name}",
        notes=notes[:3],
        n_files=n_files,
        skipped=skipped,
    )
    write_json(
        work / "evaluation.json",
        {
            "fingerprint": stage.fingerprint,
            "version": __version__,
            "models": [str(d.run_dir) for d in dens],
            "baselines": base_names,
            "metrics": metric_names,
            "n_files": n_files,
            "source": src,
            "report_examples": len(examples),
        },
    )
    final = stage.commit()
    return EvalSummary(final, summary, metric_names, n_files, skipped)
