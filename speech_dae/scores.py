"""Score labels, number formatting, statistics and tables: one place for every report of the scores.

Used by ``summary.md`` and the console lines of stage 05, the console lines of
stage 04, and ``report.html`` of both (:mod:`speech_dae.report`). Nothing here
writes a file or draws: the table builders (:func:`overall_table`,
:func:`delta_table`, :func:`by_snr_tables`) return a :class:`ScoreTable` (header,
cell texts and which cells are best) that the Markdown and HTML writers only render.

Statistics are over files: :func:`ci95` gives the mean and the half-width of the
95 % Student-t confidence interval, :func:`summarise` aggregates the rows of
``results.csv`` per system, overall, per input SNR and paired against the noisy
input; :func:`means_by_snr` averages stage 04's per-file scores per input SNR.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .metrics import EXTRA_METRICS, HIGHER_IS_BETTER, METRICS, resolve_metric_names

__all__ = [
    "inference_note",
    "ALL_METRICS",
    "DEFAULT_METRICS",
    "MAIN_METRICS",
    "HIGHER",
    "LABELS",
    "NOISY",
    "OVERALL_TITLE",
    "OTHER_TITLE",
    "DELTA_TITLE",
    "BY_SNR_TITLE",
    "by_snr_title",
    "ScoreTable",
    "resolve_metrics",
    "shown_metrics",
    "digits",
    "fmt_number",
    "format_stat",
    "ci95",
    "summarise",
    "count_notes",
    "best_system",
    "snr_key",
    "means_by_snr",
    "scores_text",
    "better_label",
    "overall_table",
    "delta_table",
    "by_snr_tables",
]

#: Every metric stage 05 can report: the waveform metrics of :mod:`speech_dae.metrics` and ``feature_mse``.
ALL_METRICS: tuple = (*METRICS, *EXTRA_METRICS, "feature_mse")
#: What stage 05 computes when no metric is named: all but the extra ones (``pesq_nb``).
DEFAULT_METRICS: tuple = tuple(m for m in ALL_METRICS if m not in EXTRA_METRICS)
#: The metrics shown first (tables, plots, console).
MAIN_METRICS: tuple = (
    "pesq",
    "pesq_nb",
    "stoi",
    "estoi",
    "si_sdr",
    "dnsmos_sig",
    "dnsmos_bak",
    "dnsmos_ovrl",
    "snr",
    "segsnr",
)
#: For each name in :data:`ALL_METRICS`, whether a larger value is better.
HIGHER: dict = {**HIGHER_IS_BETTER, "feature_mse": False}
#: Column label of each metric (the unit in brackets where it has one).
LABELS: dict = {
    "snr": "SNR (dB)",
    "segsnr": "segSNR (dB)",
    "si_sdr": "SI-SDR (dB)",
    "pesq": "PESQ-WB",
    "pesq_nb": "PESQ-NB",
    "stoi": "STOI",
    "estoi": "ESTOI",
    "mse": "MSE",
    "mae": "MAE",
    "rmse": "RMSE",
    "pearson": "Pearson r",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "dnsmos_ovrl": "DNSMOS OVRL",
    "feature_mse": "feature MSE",
}
#: System name of the unprocessed noisy input (the reference of the paired improvement).
NOISY = "noisy"

#: Headings of the tables (Markdown and HTML alike).
OVERALL_TITLE = "Overall (mean ± 95 % CI over files; best in bold)"
OTHER_TITLE = "Other metrics (mean ± 95 % CI over files)"
DELTA_TITLE = "Improvement over the noisy input (paired, same files; mean ± 95 % CI)"
BY_SNR_TITLE = "By input SNR (mean ± 95 % CI; best per column in bold)"


def by_snr_title(snr_bin_db: float | None = None) -> str:
    """Heading of the per-SNR tables: :data:`BY_SNR_TITLE`, or, for measured SNRs grouped in bins of
    ``snr_bin_db`` dB (paired recordings), a heading that says so."""
    if not snr_bin_db:
        return BY_SNR_TITLE
    return (
        f"By input SNR, measured per recording and grouped in {snr_bin_db:g} dB bins (column = bin centre; "
        "mean ± 95 % CI; best per column in bold)"
    )


@dataclass
class ScoreTable:
    """The contents of one table, for a renderer (Markdown or HTML) to lay out.

    Attributes
    ----------
    title : str
        Heading of the table.
    header : list of str
        One label per column.
    rows : list of list of (str or None)
        Cell texts; None for a value that does not exist (each renderer shows its own dash).
    best : list of list of bool
        Same shape as ``rows``: True where the cell is the best of its column (shown in bold).
    metric : str or None
        The metric of a by-SNR table (None for the others).
    """

    title: str
    header: list
    rows: list = field(default_factory=list)
    best: list = field(default_factory=list)
    metric: str | None = None


def inference_note(modes: Mapping[str, str], hops: Mapping[str, int], forced_hop: int | None = None) -> str:
    """The line of ``summary.md`` (and BENCHMARKS.md) saying how each spectral model covered the frames.

    Parameters
    ----------
    modes : mapping of str to {"sequence", "patch"}
        Each spectral model's inference (``Denoiser.inference``), in table order.
    hops : mapping of str to int
        Each model's ``patch_hop``.
    forced_hop : int, optional
        ``--patch-hop`` given for every model.

    Returns
    -------
    str
        E.g. ``"Whole-sequence inference (every frame through the network once): best. Patch models at
        their own patch_hop (recorded in run.json): fbank_type2 4."``; "" for no model.
    """
    sequence = [n for n, m in modes.items() if m == "sequence"]
    patched = [n for n, m in modes.items() if m == "patch"]
    parts = []
    if sequence:
        parts.append(f"Whole-sequence inference (every frame through the network once): {', '.join(sequence)}.")
    if patched and forced_hop is not None:
        parts.append(f"Every patch model at patch_hop {forced_hop} (--patch-hop).")
    elif patched:
        own = ", ".join(f"{n} {hops.get(n, '–')}" for n in patched)
        parts.append(f"Patch models at their own patch_hop (recorded in run.json): {own}.")
    return " ".join(parts)


def resolve_metrics(metrics: str | Iterable[str] | None) -> list[str]:
    """Validate metric names for stage 05.

    Parameters
    ----------
    metrics : str or iterable of str or None
        Names from :data:`ALL_METRICS`; each item may be a comma-separated list (``"pesq,stoi"``).
        None: :data:`DEFAULT_METRICS`.

    Returns
    -------
    list of str
        The names in the given order, duplicates dropped.

    Raises
    ------
    ConfigError
        For an unknown name or an empty list (the message lists the valid names).
    """
    if metrics is None:
        return list(DEFAULT_METRICS)
    return list(resolve_metric_names(metrics, valid=ALL_METRICS))


def shown_metrics(metrics: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``metrics`` into the main ones (in :data:`MAIN_METRICS` order) and the rest (in their order).

    Returns
    -------
    main, rest : list of str
    """
    main = [m for m in MAIN_METRICS if m in metrics]
    return main, [m for m in metrics if m not in MAIN_METRICS]


def digits(metric: str) -> int:
    """Decimals shown for ``metric``: 3 for PESQ, STOI, ESTOI, Pearson r and DNSMOS, 2 for the dB metrics, else 5."""
    if metric in ("pesq", "pesq_nb", "stoi", "estoi", "pearson", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"):
        return 3
    return 2 if metric in ("snr", "segsnr", "si_sdr") else 5


def fmt_number(v, digits: int = 2) -> str:
    """``v`` with ``digits`` decimals; ``"–"`` for a missing or non-finite value; never ``"-0.00"``.

    Parameters
    ----------
    v : float, str or None
        Anything :class:`float` accepts.
    digits : int

    Returns
    -------
    str
    """
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    if not np.isfinite(v):
        return "–"
    text = f"{v:.{digits}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.00"


def format_stat(stat: Sequence, metric: str, *, ci: bool = True) -> str:
    """``[mean, ci95, n]`` (from :func:`ci95`) as ``"mean ± ci"`` with the metric's :func:`digits`.

    Parameters
    ----------
    stat : sequence of (float, float, int)
        Mean, half-width of the confidence interval (NaN when unknown) and number of values.
    metric : str
        Picks the number of decimals.
    ci : bool
        Show the ``± ci`` part (when it is finite).

    Returns
    -------
    str
        ``"n/a"`` when n = 0; the mean alone when the half-width is not finite (n = 1) or ``ci`` is False.
    """
    mean, half, n = stat
    if n == 0:
        return "n/a"
    d = digits(metric)
    return f"{mean + 0.0:.{d}f}" if not (ci and np.isfinite(half)) else f"{mean:.{d}f} ± {half:.{d}f}"


def ci95(values) -> tuple[float, float, int]:
    """Mean, half-width of the 95 % Student-t confidence interval of the mean, and n (NaN/Inf dropped).

    Parameters
    ----------
    values : np.ndarray [shape=(n,)], float

    Returns
    -------
    mean : float
        NaN when no value is finite.
    half : float
        ``t.ppf(0.975, n - 1) * std(ddof=1) / sqrt(n)``; NaN when n < 2.
    n : int
        Finite values used.
    """
    values = np.asarray(values, dtype=np.float64)
    v = values[np.isfinite(values)]
    n = int(v.size)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n == 1:
        return float(v[0]), float("nan"), 1
    from scipy.stats import t

    return float(v.mean()), float(t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)), n


def summarise(rows: Sequence[Mapping], metrics: Sequence[str]) -> dict:
    """Aggregate ``results.csv`` rows per system, every system over the same files.

    For each metric, a file enters the means (overall, per input SNR and paired) only where every
    system has a finite value for it; a file where any system's value is NaN (the metric could not be
    computed, e.g. too short for STOI) is left out for all of them and counted, so that no system is
    flattered by dropping the files where it failed. (A silent estimate is not NaN: the metrics give it
    their floor, :data:`speech_dae.metrics.SCORE_FLOORS`.)

    Parameters
    ----------
    rows : sequence of dict
        One per file x system with keys ``id``, ``snr_db`` (str, ``""`` when unknown), ``system``, ``kind``,
        the metrics (float, NaN when a metric failed), ``seconds`` and ``audio_s`` (s).
    metrics : sequence of str

    Returns
    -------
    dict
        ``{system: {"kind", "n_files", "x_real_time", "failed": {metric: n}, "overall": {metric: [mean,
        ci95, n]}, "by_snr": {snr: {metric: [mean, ci95, n]}}, "delta": {metric: [mean, ci95, n]}}}``,
        systems in order of appearance, SNRs ascending. ``n`` of ``overall`` is the files averaged for that
        metric (the same for every system); ``failed`` counts this system's files whose value is NaN.
        ``x_real_time`` is audio seconds / processing seconds (None when no time was spent); ``delta`` is the
        paired difference to the :data:`NOISY` row of the same file (absent for the noisy input itself, or
        when there is no noisy row).
    """
    systems = list(dict.fromkeys(r["system"] for r in rows))
    value = {(r["id"], r["system"]): r for r in rows}
    ids = list(dict.fromkeys(r["id"] for r in rows))

    def finite(r, m) -> bool:
        try:
            return r is not None and math.isfinite(float(r[m]))
        except (KeyError, TypeError, ValueError):
            return False

    common = {m: {i for i in ids if all(finite(value.get((i, s)), m) for s in systems)} for m in metrics}
    noisy = {r["id"]: r for r in rows if r["system"] == NOISY}
    snrs = sorted({str(r["snr_db"]) for r in rows if str(r["snr_db"]) != ""}, key=float)
    out = {}
    for name in systems:
        mine = [r for r in rows if r["system"] == name]

        def stats(sub, m):
            return list(ci95(np.array([float(r[m]) for r in sub if r["id"] in common[m]], dtype=np.float64)))

        secs = sum(float(r["seconds"]) for r in mine)
        entry = {
            "kind": mine[0]["kind"],
            "n_files": len(mine),
            "x_real_time": (sum(float(r["audio_s"]) for r in mine) / secs) if secs > 0 else None,
            "failed": {m: sum(not finite(r, m) for r in mine) for m in metrics},
            "overall": {m: stats(mine, m) for m in metrics},
            "by_snr": {s: {m: stats([r for r in mine if str(r["snr_db"]) == s], m) for m in metrics} for s in snrs},
        }
        if noisy and name != NOISY:
            paired = [r for r in mine if r["id"] in noisy]
            entry["delta"] = {
                m: list(
                    ci95(np.array([float(r[m]) - float(noisy[r["id"]][m]) for r in paired if r["id"] in common[m]]))
                )
                for m in metrics
            }
        out[name] = entry
    return out


def count_notes(summary: Mapping, metrics: Sequence[str]) -> list[str]:
    """Lines saying how many files each metric's means are over, and which systems could not be scored.

    Parameters
    ----------
    summary : dict
        :func:`summarise` output.
    metrics : sequence of str

    Returns
    -------
    list of str
        One line ``"Files averaged per metric: PESQ-WB 40, STOI 38, ..."``, then, for each metric that some
        system could not be computed on, ``"STOI: not computable on 2 file(s) (noisy 2, m 2); those files
        are left out of every system's mean"``. Empty for an empty summary.
    """
    if not summary:
        return []
    first = next(iter(summary.values()))
    n_files = first["n_files"]
    lines = ["Files averaged per metric: " + ", ".join(f"{LABELS[m]} {first['overall'][m][2]}" for m in metrics)]
    for m in metrics:
        failed = {s: e.get("failed", {}).get(m, 0) for s, e in summary.items()}
        left_out = n_files - first["overall"][m][2]
        if left_out:
            who = ", ".join(f"{s} {k}" for s, k in failed.items() if k)
            lines.append(
                f"{LABELS[m]}: not computable on {left_out} of {n_files} file(s) ({who}); "
                "those files are left out of every system's mean"
            )
    return lines


def best_system(summary: Mapping, metric: str, *, snr: str | None = None) -> str | None:
    """The system with the best mean of ``metric`` (highest or lowest, see :data:`HIGHER`).

    Parameters
    ----------
    summary : dict
        :func:`summarise` output.
    metric : str
    snr : str, optional
        Compare the means at this input SNR (a key of ``by_snr``) instead of the overall ones.

    Returns
    -------
    str or None
        The first system on a tie; None when no system has a finite mean.
    """

    def mean(e) -> float:
        return (e["overall"] if snr is None else e["by_snr"][snr])[metric][0]

    vals = {s: mean(e) for s, e in summary.items() if np.isfinite(mean(e))}
    if not vals:
        return None
    return (max if HIGHER[metric] else min)(vals, key=vals.get)


def snr_key(snr_db) -> float:
    """Sort key of an input SNR label (str, dB): its value; ``inf`` (last) when unknown (``""``)."""
    try:
        return float(snr_db)
    except (TypeError, ValueError):
        return float("inf")


def means_by_snr(rows: Sequence[Mapping], keys: Sequence[str]) -> list[tuple[str | None, int, dict]]:
    """Means of ``keys`` over the rows of each input SNR, then over all rows.

    Parameters
    ----------
    rows : sequence of dict
        With ``snr_db`` (str or number, ``""``/absent when unknown) and a float for every key.
    keys : sequence of str

    Returns
    -------
    list of (snr_db, n, means)
        One entry per input SNR, ascending (the unknown one, ``""``, last), then ``(None, len(rows), ...)``
        for all rows; ``means`` is ``{key: float}``. Empty when ``rows`` is.
    """
    if not rows:
        return []
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(str(r.get("snr_db", "")), []).append(r)

    def means(sub) -> dict:
        return {k: float(np.mean([float(r[k]) for r in sub])) for k in keys}

    out = [(k, len(g), means(g)) for k, g in sorted(groups.items(), key=lambda kv: snr_key(kv[0]))]
    return out + [(None, len(rows), means(rows))]


def scores_text(row: Mapping, metrics: Sequence[str]) -> str:
    """A file's main scores in one short line, e.g. ``"PESQ 1.23 · STOI 0.812 · SI-SDR 5.62 dB"``.

    Shows PESQ, STOI and SI-SDR when among ``metrics`` (else the first three); missing values are left out.
    """
    shown = [m for m in ("pesq", "stoi", "si_sdr") if m in metrics] or list(metrics)[:3]
    parts = []
    for m in shown:
        text = fmt_number(row.get(m), digits(m))
        if text != "–":
            label = LABELS[m].replace(" (dB)", "").replace("-WB", "")
            parts.append(f"{label} {text}" + (" dB" if LABELS[m].endswith("(dB)") else ""))
    return " · ".join(parts)


def better_label(metric: str) -> str:
    """``"<label> (higher is better)"`` or ``"... (lower is better)"``, e.g. ``"SI-SDR (dB) (higher is better)"``."""
    return f"{LABELS[metric]} ({'higher' if HIGHER[metric] else 'lower'} is better)"


def overall_table(summary: Mapping, metrics: Sequence[str], *, title: str, speed: bool = True) -> ScoreTable:
    """Mean ± 95 % CI over files of every system, one column per metric; the best mean per column marked.

    Parameters
    ----------
    summary : dict
        :func:`summarise` output.
    metrics : sequence of str
        The metric columns.
    title : str
        Heading (:data:`OVERALL_TITLE` or :data:`OTHER_TITLE`).
    speed : bool
        Add a ``× real time`` column (None for the noisy input and for a system without timing).

    Returns
    -------
    ScoreTable
        Columns: system, kind, files, the metrics, [× real time].
    """
    bests = {m: best_system(summary, m) for m in metrics}
    t = ScoreTable(title, ["system", "kind", "files", *(LABELS[m] for m in metrics), *(["× real time"] * speed)])
    for s, e in summary.items():
        rt = None if e["x_real_time"] is None or e["kind"] == "input" else f"{e['x_real_time']:.0f}"
        t.rows.append([s, e["kind"], str(e["n_files"]), *(format_stat(e["overall"][m], m) for m in metrics)])
        t.rows[-1] += [rt] * speed
        t.best.append([False] * 3 + [bests[m] == s for m in metrics] + [False] * speed)
    return t


def delta_table(summary: Mapping, metrics: Sequence[str]) -> ScoreTable | None:
    """The paired improvement over the noisy input (mean ± 95 % CI), one column per metric.

    Returns
    -------
    ScoreTable or None
        Columns: system, ``Δ <label>`` per metric; one row per system with a ``delta``. None when no
        system has one or ``metrics`` is empty. No cell is marked best.
    """
    if not metrics or not any("delta" in e for e in summary.values()):
        return None
    t = ScoreTable(DELTA_TITLE, ["system", *(f"Δ {LABELS[m]}" for m in metrics)])
    for s, e in summary.items():
        if "delta" in e:
            t.rows.append([s, *(format_stat(e["delta"][m], m) for m in metrics)])
            t.best.append([False] * (len(metrics) + 1))
    return t


def by_snr_tables(summary: Mapping, metrics: Sequence[str]) -> list[ScoreTable]:
    """One table per metric: mean ± 95 % CI of every system per input SNR; the best per column marked.

    Returns
    -------
    list of ScoreTable
        Titled ``"<label> (higher|lower is better)"``, columns: system, ``"+10 dB"``-style SNRs; empty
        when the files have no input SNR.
    """
    snrs = list(next(iter(summary.values()))["by_snr"]) if summary else []
    if not snrs:
        return []
    out = []
    for m in metrics:
        col_best = {s: best_system(summary, m, snr=s) for s in snrs}
        t = ScoreTable(better_label(m), ["system", *(f"{float(s):+g} dB" for s in snrs)], metric=m)
        for name, e in summary.items():
            t.rows.append([name, *(format_stat(e["by_snr"][s][m], m) for s in snrs)])
            t.best.append([False, *(col_best[s] == name for s in snrs)])
        out.append(t)
    return out
