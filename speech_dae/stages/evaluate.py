"""Stage 05: score trained models and classical baselines on the same noisy files.

Every system (the unprocessed ``noisy`` input, each ``models/<run>/`` through
:class:`~speech_dae.inference.Denoiser`, each baseline of
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
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import report
from ..artifacts import STAGE04, STAGE05, StagedOutput, fingerprint, read_json, write_csv, write_json
from ..audio import file_stat_key, load_audio, validate_audio, write_audio
from ..baselines import BASELINES, run_baseline
from ..config import Config
from ..errors import AudioError, ConfigError
from ..features import FeatureExtractor
from ..folders import split_notes, trained_on_items
from ..framing import even_indices
from ..inference import Denoiser
from ..inputs import Item, folder_items, manifest_items, measured_snr, snr_bin
from ..metrics import PESQ_SAMPLE_RATE, check_pesq_rate, feature_mse, score
from ..scores import (
    BY_SNR_TITLE,
    LABELS,
    NOISY,
    OTHER_TITLE,
    OVERALL_TITLE,
    ScoreTable,
    by_snr_tables,
    by_snr_title,
    count_notes,
    delta_table,
    format_stat,
    inference_note,
    overall_table,
    resolve_metrics,
    scores_text,
    shown_metrics,
    summarise,
)
from ..version import __version__

__all__ = [
    "evaluate",
    "EvalSummary",
    "System",
    "select_items",
    "resolve_baselines",
    "summary_markdown",
]

log = logging.getLogger(__name__)


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
    """Baseline names to run: ``"all"``, ``None``/``"none"``, or names (comma lists allowed), validated.

    ``"all"`` is every classical baseline (:data:`speech_dae.baselines.BASELINES`) followed by every
    peer (:data:`speech_dae.peers.PEERS`: ``deepfilternet3``, ``rnnoise``) whose optional package
    loads. A peer whose package is missing, whether named or part of ``"all"``, is left out with a
    one-line warning (``skipping deepfilternet3: needs the optional 'peers' extra (pip install -e
    '.[peers]')``) and the evaluation goes on without it.

    Raises
    ------
    ConfigError
        For an unknown name (the message lists the valid ones).
    """
    from ..peers import PEERS, PeerUnavailable, check_peer

    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    flat = [n.strip() for item in names for n in item.split(",") if n.strip()]
    if flat == ["none"] or not flat:
        return []
    if "all" in flat:
        flat = list(BASELINES) + list(PEERS)
    unknown = [n for n in flat if n not in BASELINES and n not in PEERS]
    if unknown:
        raise ConfigError(
            f"unknown baseline {', '.join(unknown)}; choose from all, none, {', '.join([*BASELINES, *PEERS])}"
        )
    out = []
    for name in dict.fromkeys(flat):
        if name in PEERS:
            try:
                check_peer(name)
            except PeerUnavailable as exc:
                log.warning("%s", exc.skip_message)
                continue
        out.append(name)
    return out


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


def _table(t: ScoreTable) -> list[str]:
    """A Markdown table: best cells in bold, a missing value as ``-``."""

    def cell(text, best):
        text = "-" if text is None else text
        return f"**{text}**" if best else text

    return [
        "| " + " | ".join(t.header) + " |",
        "|" + "---|" * len(t.header),
        *("| " + " | ".join(cell(c, b) for c, b in zip(cells, best)) + " |" for cells, best in zip(t.rows, t.best)),
    ]


def summary_markdown(
    summary: dict, metrics: Sequence[str], *, title: str, notes: Sequence[str] = (), snr_title: str = BY_SNR_TITLE
) -> str:
    """The ``summary.md`` text: overall table, paired improvement, one table per metric by input SNR.

    Parameters
    ----------
    summary : dict
        :func:`speech_dae.scores.summarise` output.
    metrics : sequence of str
    title : str
        The ``#`` heading.
    notes : sequence of str
        Markdown lines under the heading.
    snr_title : str
        Heading of the per-SNR tables (:func:`speech_dae.scores.by_snr_title`).

    Returns
    -------
    str
        Includes, under the overall tables, the number of files averaged per metric and the metrics some
        system could not be computed on (:func:`speech_dae.scores.count_notes`).
    """
    main, rest = shown_metrics(metrics)
    md = [f"# {title}", "", *notes, ""]
    for t in (
        overall_table(summary, main or rest, title=OVERALL_TITLE) if main or rest else None,
        overall_table(summary, rest, title=OTHER_TITLE) if main and rest else None,
    ):
        if t is not None:
            md += [f"## {t.title}", "", *_table(t), ""]
    md += [*(f"{line}  " for line in count_notes(summary, metrics)), ""]
    delta = delta_table(summary, main)
    if delta is not None:
        md += [f"## {delta.title}", "", *_table(delta)]
    by_snr = by_snr_tables(summary, main + rest)
    if by_snr:
        md += ["", f"## {snr_title}"]
        for t in by_snr:
            md += ["", f"### {t.title}", "", *_table(t)]
    return "\n".join(md) + "\n"


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
        head += [f"  {line}" for line in count_notes(self.summary, self.metrics)[1:]]  # metrics not computable
        head.append(f"wrote {self.out}/results.csv, summary.md and metrics_by_snr.png")
        return head


def _model_systems(model_dirs: Sequence[str | Path], cfg: Config, patch_hop: int | None) -> list:
    r = cfg.reconstruct
    dens = [
        Denoiser(
            d,
            patch_hop=patch_hop,
            batch_size=r.batch_size,
            max_gain=r.max_gain,
            atten_lim_db=r.atten_lim_db,
            inference=r.inference,
        )
        for d in model_dirs
    ]
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
    models = [
        (
            str(d.run_dir.resolve()),
            file_stat_key(d.run_dir / "model.keras"),
            d.info.fingerprint,
            d.patch_hop,
            d.inference,
        )
        for d in dens
    ]
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
    patch_hop: int | None = None,
    snr_bin_db: float = 5.0,
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
        Subset of :data:`speech_dae.scores.ALL_METRICS` (default: all).
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
    patch_hop : int, optional
        Frames between inference patches for every model; default: each run's own (``run.json``
        ``patch_hop``, the hop it was validated with), so each model is scored as it will be used.
    snr_bin_db : float > 0
        Paired recordings (stage 01 ``--noisy/--clean``) have a measured SNR per file: they are grouped
        in bins of this width (dB, centred on multiples of it) for the per-SNR tables, the plot and
        ``max_files``. Default 5 dB.

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
    metric_names = resolve_metrics(metrics)
    if not snr_bin_db or snr_bin_db <= 0:
        raise ConfigError(f"snr_bin_db={snr_bin_db} must be a positive width in dB, e.g. 5")
    dens = _model_systems(models, cfg, patch_hop)
    if not dens and not base_names:
        raise ConfigError("nothing to score: pass --models models/RUN ... and/or --baselines all")
    sr = dens[0].sample_rate if dens else cfg.audio.sample_rate
    if "pesq" in metric_names and sr < PESQ_SAMPLE_RATE:
        if metrics is not None:
            check_pesq_rate(sr)  # raises: PESQ-WB of narrow-band audio was asked for by name
        metric_names = ["pesq_nb" if m == "pesq" else m for m in metric_names]
        log.info("scoring at %d Hz: narrow-band PESQ (pesq_nb, ITU-T P.862) instead of wide-band", sr)
    all_items = _items(features, inputs, clean, dens)
    source_dir = features if features is not None else (dens[0].info.features_dir if inputs is None else None)
    binned = source_dir is not None and measured_snr(source_dir)
    if binned:
        all_items = [it._replace(snr_db=snr_bin(it.snr_db, snr_bin_db)) for it in all_items]
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
        inference_note(
            {d.name: d.inference for d in dens if not d.waveform}, {d.name: d.patch_hop for d in dens}, patch_hop
        ),
        *(split_notes(source_dir) if source_dir is not None else []),
    ]
    notes = [n for n in notes if n]
    skipped_lines = ["", f"Skipped {len(skipped)} file(s):", *(f"- {s}" for s in skipped)] if skipped else []
    snr_title = by_snr_title(snr_bin_db if binned else None)
    (work / "summary.md").write_text(
        summary_markdown(
            summary,
            metric_names,
            title=f"Evaluation: {Path(out).name}",
            notes=notes + skipped_lines,
            snr_title=snr_title,
        ),
        encoding="utf-8",
    )
    write_json(
        work / "summary.json",
        {
            "systems": summary,
            "metrics": metric_names,
            "n_files": n_files,
            "skipped": skipped,
            "sample_rate": sr,
            "snr_bin_db": snr_bin_db if binned else None,
            "patch_hop": {d.name: d.patch_hop for d in dens},
            "inference": {d.name: d.inference for d in dens},
        },
    )
    report.plot_metrics_by_snr(summary, metric_names, work / "metrics_by_snr.png")
    by_key = {(r["id"], r["system"]): r for r in rows}
    for ex in shown:
        for cd in ex["cards"]:
            cd["scores"] = scores_text(by_key.get((ex["id"], cd["key"]), {}), metric_names)
    report.evaluation_report(
        work,
        summary,
        metric_names,
        sorted(shown, key=lambda e: e["k"]),
        title=f"Evaluation: {Path(out).name}",
        notes=notes,
        n_files=n_files,
        skipped=skipped,
        by_snr_title=snr_title,
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
