"""``report.html``: a self-contained listening report for stages 04 and 05.

The page is written into the stage's output folder, beside a ``report_files/``
folder holding, for a few example files only, 16-bit WAV clips and small
spectrogram images (one per player, all panels of an example on one colour
scale). Every ``src``/``href`` is a relative link inside the folder, the CSS is
inline and there is no script, so the folder can be moved, zipped or opened
from disk (``file://``) in any browser. All text is escaped with
:func:`html.escape`; file names in links are percent-encoded.

Building blocks: :func:`page` (the skeleton), :func:`table`, :func:`card` and
:func:`example_block`; :func:`pick_examples` chooses the examples,
:func:`save_example` writes their clips and images, and
:func:`reconstruct_report` / :func:`evaluation_report` assemble the two pages.
"""

from __future__ import annotations

import html
import math
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np

from .artifacts import atomic_path
from .errors import ConfigError
from .plots import pyplot, spectrograms_db
from .scores import (
    BY_SNR_TITLE,
    MAIN_METRICS,
    OVERALL_TITLE,
    ScoreTable,
    better_label,
    by_snr_tables,
    delta_table,
    fmt_number,
    means_by_snr,
    overall_table,
    shown_metrics,
    snr_key,
)

__all__ = [
    "REPORT_HTML",
    "ASSETS",
    "strong",
    "page",
    "table",
    "card",
    "example_block",
    "rel_url",
    "pick_examples",
    "save_example",
    "spectrogram_images",
    "write_report",
    "clear_assets",
    "reconstruct_report",
    "evaluation_report",
    "plot_metrics_by_snr",
]

#: File name of the report inside the stage's output folder.
REPORT_HTML = "report.html"
#: Folder (beside the report) holding the example clips and spectrograms.
ASSETS = "report_files"
#: Most examples chosen by default (one per input SNR).
MAX_DEFAULT_EXAMPLES = 8
#: Examples chosen by default when the files have no input SNR (the user's own folders).
DEFAULT_EXAMPLES_WITHOUT_SNR = 4
#: Most players side by side in an example.
MAX_COLUMNS = 4
#: Example clips are cut to this many seconds (the players of a long recording stay small).
CLIP_MAX_S = 30.0

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1f2328;
 background:#fff;max-width:1240px;margin:0 auto;padding:12px 24px 32px}
h1{font-size:22px;margin:6px 0 4px}
h2{font-size:17px;margin:24px 0 8px;padding-bottom:3px;border-bottom:1px solid #d0d7de}
h3{font-size:14px;margin:12px 0 4px}
p{margin:3px 0}.meta{color:#57606a}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:3px 8px;white-space:nowrap}
th{background:#f6f8fa;text-align:center;font-weight:600}
td{text-align:right}td:first-child{text-align:left}
tbody tr:nth-child(even){background:#f9fafb}
td strong{color:#0a5c2d}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:0 28px}
.example{border:1px solid #d0d7de;border-radius:6px;padding:6px 12px 10px;margin:10px 0;background:#fcfcfd}
.example h3{margin:4px 0 6px}
.cards{display:grid;grid-template-columns:repeat(var(--cols,3),minmax(0,1fr));gap:8px 12px}
@media (max-width:760px){.cards{grid-template-columns:minmax(0,1fr)}}
.card{margin:0;min-width:0}.card figcaption{font-size:13px;line-height:1.3}
.card .label,.card .scores{display:block;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.card .label{font-weight:600}.card .scores{color:#57606a;font-size:12px}
.card img{display:block;width:100%;height:auto;border:1px solid #e1e4e8}
audio{display:block;width:100%;height:34px;margin:3px 0}
img.figure{max-width:100%;height:auto}
footer{margin-top:24px;color:#57606a;font-size:12px}
"""


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


class strong(str):
    """A table cell rendered in bold (the best value of a column)."""


def rel_url(path: str | Path, root: str | Path) -> str:
    """``path`` relative to ``root`` as a percent-encoded URL (``#``, ``?``, spaces and quotes are safe).

    Raises
    ------
    ValueError
        If ``path`` is not inside ``root`` (the report must stay self-contained).
    """
    return quote(Path(path).relative_to(root).as_posix())


def page(title: str, body: Iterable[str], *, meta: Sequence[str] = (), footer: str = "") -> str:
    """The whole HTML document: escaped ``title`` and ``meta`` lines, then the ``body`` fragments (already HTML)."""
    lines = "".join(f'<p class="meta">{_esc(m)}</p>\n' for m in meta if m)
    foot = f"<footer>{footer}</footer>\n" if footer else ""
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_esc(title)}</title>\n'
        f"<style>{_CSS}</style>\n</head>\n<body>\n<h1>{_esc(title)}</h1>\n{lines}"
        + "\n".join(body)
        + f"\n{foot}</body>\n</html>\n"
    )


def table(header: Sequence[str], rows: Iterable[Sequence], *, caption: str | None = None, cls: str = "") -> str:
    """A ``<table>`` (in a horizontally scrolling ``<div>``): one ``<th>`` per header cell, every cell escaped;
    :class:`strong` cells in bold."""

    def cell(c) -> str:
        return f"<td><strong>{_esc(c)}</strong></td>" if isinstance(c, strong) else f"<td>{_esc(c)}</td>"

    cap = f"<caption>{_esc(caption)}</caption>" if caption else ""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    klass = f' class="{_esc(cls)}"' if cls else ""
    return (
        f'<div class="scroll"><table{klass}>{cap}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
        "</tbody>\n</table></div>"
    )


def card(label: str, audio_src: str | None, image_src: str | None = None, scores: str = "") -> str:
    """One player: label, scores (a blank line when none, so players align), ``<audio controls>`` (with a
    download link inside as fallback), spectrogram.

    ``audio_src`` and ``image_src`` are relative URLs (see :func:`rel_url`).
    """
    parts = [
        f'<figure class="card"><figcaption><span class="label" title="{_esc(label)}">{_esc(label)}</span>'
        + f'<span class="scores" title="{_esc(scores)}">{_esc(scores) or "&nbsp;"}</span></figcaption>'
    ]
    if audio_src:
        parts.append(
            f'<audio controls preload="metadata" src="{_esc(audio_src)}">'
            f'<a href="{_esc(audio_src)}">{_esc(label)} (WAV)</a></audio>'
        )
    if image_src:
        parts.append(f'<img src="{_esc(image_src)}" alt="{_esc("spectrogram: " + label)}" loading="lazy">')
    return "".join(parts) + "</figure>"


def example_block(title: str, cards: Sequence[str], *, note: str = "") -> str:
    """A boxed example: escaped ``title`` and ``note``, then the ``cards`` (from :func:`card`) in a grid."""
    n = f'<p class="meta">{_esc(note)}</p>' if note else ""
    cols = max(1, min(len(cards), MAX_COLUMNS))
    return (
        f'<section class="example"><h3>{_esc(title)}</h3>{n}<div class="cards" style="--cols:{cols}">\n'
        + "\n".join(cards)
        + "\n</div></section>"
    )


def write_report(path: str | Path, text: str) -> Path:
    """Write the page atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def pick_examples(items: Sequence, n: int | None = None) -> list:
    """Choose the example files of a report: spread over the input SNRs, evenly spaced within each.

    Parameters
    ----------
    items : sequence of :class:`~speech_dae.inputs.Item`
        Anything with ``snr_db`` (str, ``""`` when unknown).
    n : int, optional
        How many. Default: one per input SNR, at most :data:`MAX_DEFAULT_EXAMPLES`
        (:data:`DEFAULT_EXAMPLES_WITHOUT_SNR` when no file has an SNR); 0: none.

    Returns
    -------
    list
        The chosen items, by input SNR then list order (deterministic).

    Raises
    ------
    ConfigError
        If ``n`` is negative.
    """
    if n is not None and n < 0:
        raise ConfigError(f"--report-examples must be 0 or more, not {n}")
    groups: dict[str, list] = {}
    for it in items:
        groups.setdefault(str(it.snr_db), []).append(it)
    keys = sorted(groups, key=snr_key)
    if n is None:
        n = min(MAX_DEFAULT_EXAMPLES, len(keys)) if keys != [""] else DEFAULT_EXAMPLES_WITHOUT_SNR
    counts = dict.fromkeys(keys, 0)
    left = min(n, len(items))
    while left:  # round robin over the SNRs that still have files
        for k in keys:
            if left and counts[k] < len(groups[k]):
                counts[k] += 1
                left -= 1
    out = []
    for k in keys:
        size, c = len(groups[k]), counts[k]
        out += [groups[k][int((i + 0.5) * size / c)] for i in range(c)]  # centred, evenly spaced
    return out


def spectrogram_images(
    signals: Sequence[np.ndarray],
    paths: Sequence[str | Path],
    *,
    sample_rate: int,
    n_fft: int = 512,
    hop_length: int = 128,
    max_s: float | None = None,
    dynamic_range_db: float = 80.0,
) -> list[Path]:
    """One small log-magnitude spectrogram PNG per signal, all on one colour scale (written atomically).

    Parameters
    ----------
    signals : sequence of np.ndarray [shape=(n_samples,)], float, at ``sample_rate``
    paths : sequence of path
        One PNG per signal.
    max_s : float, optional
        Show at most this many seconds from the start.
    dynamic_range_db : float
        The colour scale spans ``[peak - dynamic_range_db, peak]`` dB, peak over all signals.

    Returns
    -------
    list of Path
    """
    import librosa.display

    plt = pyplot()
    specs, vmax = spectrograms_db(signals, n_fft=n_fft, hop_length=hop_length, max_s=max_s, sample_rate=sample_rate)
    for S_db, path in zip(specs, paths):
        fig, ax = plt.subplots(figsize=(4.4, 1.9))
        librosa.display.specshow(
            S_db,
            sr=sample_rate,
            hop_length=hop_length,
            x_axis="time",
            y_axis="hz",
            ax=ax,
            vmin=vmax - dynamic_range_db,
            vmax=vmax,
            cmap="magma",
        )
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(labelsize=7, length=2, pad=1)
        fig.tight_layout(pad=0.25)
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
    return [Path(p) for p in paths]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:40] or "x"


def save_example(
    root: str | Path,
    index: int,
    signals: Sequence[tuple],
    *,
    sample_rate: int,
    n_fft: int = 512,
    hop_length: int = 128,
    image_max_s: float | None = None,
) -> list[dict]:
    """Write one example's clips and spectrograms under ``root/report_files/exNN/``.

    Parameters
    ----------
    root : path
        The report's folder.
    index : int
        Example number (0-based), names the sub-folder.
    signals : sequence of (key, label, y, audio)
        ``y`` np.ndarray [shape=(n_samples,)], float; ``audio`` an existing file under ``root`` to play
        instead of writing a clip, or None: a 16-bit WAV clip (first :data:`CLIP_MAX_S` s) is written.
    image_max_s : float, optional
        Seconds shown in the spectrograms.

    Returns
    -------
    list of dict
        Per signal: ``key``, ``label``, ``audio`` and ``image`` (relative URLs).
    """
    from .audio import write_audio

    root = Path(root)
    folder = root / ASSETS / f"ex{index + 1:02d}"
    names = [f"{k}_{_slug(str(label if key is None else key))}" for k, (key, label, *_) in enumerate(signals)]
    images = spectrogram_images(
        [y for _, _, y, _ in signals],
        [folder / f"{n}.png" for n in names],
        sample_rate=sample_rate,
        n_fft=n_fft,
        hop_length=hop_length,
        max_s=image_max_s,
    )
    out = []
    for name, img, (key, label, y, audio) in zip(names, images, signals):
        if audio is None:
            audio = write_audio(
                folder / f"{name}.wav", np.asarray(y)[: int(CLIP_MAX_S * sample_rate)], sample_rate, subtype="PCM_16"
            )
        out.append({"key": key, "label": label, "audio": rel_url(audio, root), "image": rel_url(img, root)})
    return out


def clear_assets(root: str | Path) -> None:
    """Remove an earlier ``report.html`` and its ``report_files/`` from ``root`` (the new examples may differ)."""
    (Path(root) / REPORT_HTML).unlink(missing_ok=True)
    shutil.rmtree(Path(root) / ASSETS, ignore_errors=True)


def _snr_title(uid: str, snr_db: str) -> str:
    snr = snr_key(snr_db)
    return f"{uid} (input SNR {snr:+g} dB)" if np.isfinite(snr) else uid


def _listen(examples: Sequence[Mapping], n_files: int) -> list[str]:
    """The "Listen" section: a note, then one :func:`example_block` per example (nothing when there is none)."""
    if not examples:
        return []
    note = (
        f"{len(examples)} of {n_files} files, spread over the input SNRs. Each spectrogram is drawn under its "
        "player; the panels of one example share one colour scale (peak − 80 dB … peak). "
        f"Clips are 16-bit WAV, at most {CLIP_MAX_S:g} s."
    )
    return [
        "<h2>Listen</h2>",
        f'<p class="meta">{_esc(note)}</p>',
        *(
            example_block(
                _snr_title(e["id"], e.get("snr_db", "")),
                [card(c["label"], c["audio"], c["image"], c.get("scores", "")) for c in e["cards"]],
            )
            for e in examples
        ),
    ]


# ------------------------------------------------------------------ stage 04
def reconstruct_report(
    out_dir: str | Path, rows: Sequence[Mapping], examples: Sequence[Mapping], *, title: str, meta: Sequence[str] = ()
) -> Path:
    """Write ``out_dir/report.html`` of stage 04: per-file scores, means by input SNR, example players.

    Parameters
    ----------
    out_dir : path
        ``outputs/<run>/``.
    rows : sequence of dict
        Stage 04's rows: ``id``, ``snr_db`` and, when scored, ``snr_in``, ``snr_out``, ``si_sdr_in``,
        ``si_sdr_out`` (dB).
    examples : sequence of dict
        ``id``, ``snr_db`` and ``cards`` (from :func:`save_example`, with ``scores`` text).

    Returns
    -------
    Path
    """
    keys = ("snr_in", "snr_out", "si_sdr_in", "si_sdr_out")
    scored = [r for r in rows if r.get("si_sdr_out") not in (None, "")]
    body = []
    if scored:

        def line(r):
            snr_in, snr_out, sdr_in, sdr_out = (float(r[k]) for k in keys)
            return [fmt_number(v) for v in (snr_in, snr_out, snr_out - snr_in, sdr_in, sdr_out, sdr_out - sdr_in)]

        header = ["SNR in", "SNR out", "Δ SNR", "SI-SDR in", "SI-SDR out", "Δ SI-SDR"]
        means = [
            [
                strong("all") if k is None else (f"{float(k):+g} dB" if k else "files"),
                str(n),
                *line(m),
            ]
            for k, n, m in means_by_snr(scored, keys)
        ]
        body += ["<h2>Mean scores (dB)</h2>", table(["input SNR", "files", *header], means)]
    body += _listen(examples, len(rows))
    body += [
        "<h2>Per file (dB)</h2>",
        table(
            ["file", "input SNR", "SNR in", "SNR out", "Δ SNR", "SI-SDR in", "SI-SDR out", "Δ SI-SDR"],
            (
                [
                    r["id"],
                    f"{float(r['snr_db']):+g}" if r.get("snr_db") not in (None, "") else "–",
                    *(line(r) if r.get("si_sdr_out") not in (None, "") else ["–"] * 6),
                ]
                for r in rows
            ),
        ),
    ]
    footer = "Denoised WAVs: <code>*_denoised.wav</code> in this folder" + (
        ' · scores: <a href="metrics.csv">metrics.csv</a>' if (Path(out_dir) / "metrics.csv").is_file() else ""
    )
    return write_report(Path(out_dir) / REPORT_HTML, page(title, body, meta=meta, footer=footer))


# ------------------------------------------------------------------ stage 05
#: Heading of the table of the other metrics in ``report.html`` (``summary.md``: :data:`speech_dae.scores.OTHER_TITLE`).
OTHER_HTML_TITLE = "Other metrics (mean ± 95 % CI over files; best in bold)"


def _score_table(t: ScoreTable, *, cls: str = "", heading: bool = True) -> list[str]:
    """A :class:`~speech_dae.scores.ScoreTable` as HTML (``<h2>`` title, then :func:`table`): best cells in
    bold, a missing value as ``–``."""
    rows = (
        [strong(c) if b else ("–" if c is None else c) for c, b in zip(cells, best)]
        for cells, best in zip(t.rows, t.best)
    )
    return [f"<h2>{_esc(t.title)}</h2>"] * heading + [table(t.header, rows, cls=cls)]


def evaluation_report(
    out_dir: str | Path,
    summary: Mapping,
    metrics: Sequence[str],
    examples: Sequence[Mapping],
    *,
    title: str,
    notes: Sequence[str] = (),
    n_files: int = 0,
    skipped: Sequence[str] = (),
    by_snr_title: str = BY_SNR_TITLE,
) -> Path:
    """Write ``out_dir/report.html`` of stage 05: the tables of ``summary.md``, example players, the SNR plot.

    Parameters
    ----------
    out_dir : path
        The report folder (its staging folder while stage 05 runs).
    summary : dict
        :func:`speech_dae.scores.summarise` output.
    metrics : sequence of str
    examples : sequence of dict
        ``id``, ``snr_db`` and ``cards`` (from :func:`save_example`, with ``scores`` text).
    notes : sequence of str
        Plain-text lines shown under the title (Markdown backticks are dropped).
    n_files : int
        Files scored (for the note above the examples).
    skipped : sequence of str
        Files left out and why, listed at the end.
    by_snr_title : str
        Heading of the per-SNR tables (:func:`speech_dae.scores.by_snr_title`).

    Returns
    -------
    Path
    """
    out_dir = Path(out_dir)
    main, rest = shown_metrics(metrics)
    body = []
    if main or rest:
        body += _score_table(overall_table(summary, main or rest, title=OVERALL_TITLE))
    delta = delta_table(summary, main)
    if delta is not None:
        body += _score_table(delta, cls="delta")
    body += _listen(examples, n_files)
    if main and rest:
        body += _score_table(overall_table(summary, rest, title=OTHER_HTML_TITLE, speed=False))
    if (out_dir / "metrics_by_snr.png").is_file():
        body += [
            "<h2>Metrics by input SNR</h2>",
            '<img class="figure" src="metrics_by_snr.png" alt="metrics by input SNR, one line per system">',
        ]
    by_snr = by_snr_tables(summary, main + rest)
    if by_snr:
        body += [f"<h2>{_esc(by_snr_title)}</h2>", '<div class="grid">']
        for t in by_snr:
            body += [
                f"<div><h3>{_esc(t.title)}</h3>",
                _score_table(t, cls=f"by-snr {t.metric}", heading=False)[0] + "</div>",
            ]
        body.append("</div>")
    if skipped:
        body += [
            f"<h2>Skipped {len(skipped)} file(s)</h2>",
            "<ul>" + "".join(f"<li>{_esc(s)}</li>" for s in skipped) + "</ul>",
        ]
    files = [f for f in ("results.csv", "summary.md", "summary.json") if (out_dir / f).is_file()]
    footer = "Files: " + " · ".join(f'<a href="{quote(f)}">{_esc(f)}</a>' for f in files) if files else ""
    return write_report(
        out_dir / REPORT_HTML, page(title, body, meta=[n.replace("`", "") for n in notes], footer=footer)
    )


def plot_metrics_by_snr(summary: dict, metrics: Sequence[str], path: str | Path) -> Path:
    """One panel per main metric (and feature MSE), one line per system (mean ± 95 % CI), x = input SNR.

    The waveform error metrics (MSE, MAE, RMSE, Pearson) stay in the tables: they add panels but little to read.

    Parameters
    ----------
    summary : dict
        :func:`speech_dae.scores.summarise` output.
    metrics : sequence of str
    path : str or Path
        PNG to write (atomically).

    Returns
    -------
    Path
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
        ax.set_title(better_label(m), fontsize=10)
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
