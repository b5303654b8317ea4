"""Shared helpers of the benchmark scripts: paired differences between systems from stage 05's per-file scores.

Stage 05 writes one row per file x system to ``<report>/results.csv`` (``id``, ``snr_db``, ``system``,
``kind``, one column per metric, ``seconds``, ``audio_s``). Two systems scored in the same call saw the
same files, so their difference can be taken file by file: the paired t-interval is much narrower than
the two unpaired ones when the files vary more than the systems (Student's paired t-test; the interval
is :func:`speech_dae.scores.ci95` of the per-file differences).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from speech_dae.scores import ci95, format_stat


def per_file(rows: Sequence[Mapping], system: str, metric: str) -> dict[str, float]:
    """``{file id: value}`` of ``metric`` for ``system`` in stage 05's ``results.csv`` rows (NaN kept)."""

    def value(r) -> float:
        try:
            return float(r[metric])
        except (KeyError, TypeError, ValueError):
            return math.nan

    return {r["id"]: value(r) for r in rows if r["system"] == system}


def paired_difference(rows: Sequence[Mapping], system: str, reference: str, metric: str) -> tuple[float, float, int]:
    """Mean and 95 % t-interval of ``system - reference`` over the files both were scored on.

    Parameters
    ----------
    rows : sequence of dict
        Stage 05's ``results.csv`` rows (values as strings or floats).
    system, reference : str
        Names in the ``system`` column.
    metric : str
        A metric column, e.g. ``si_sdr``.

    Returns
    -------
    (mean, half, n) : (float, float, int)
        As :func:`speech_dae.scores.ci95` of the per-file differences: files where either value is
        missing or not finite are left out (n counts the rest); the interval is ``mean ± half``
        with ``half = t.ppf(0.975, n - 1) * std(ddof=1) / sqrt(n)`` (NaN for n < 2); ``(nan, nan, 0)``
        when either system has no row.
    """
    a, b = per_file(rows, system, metric), per_file(rows, reference, metric)
    return ci95([a[i] - b[i] for i in a if i in b])


def format_difference(stat: Sequence, metric: str) -> str:
    """``"+0.123 ± 0.045"`` (an explicit sign, the metric's decimals); ``"–"`` when there is no file."""
    if not stat[2]:
        return "–"
    text = format_stat(stat, metric)
    return text if text.startswith("-") else "+" + text


def significant(stat: Sequence) -> bool:
    """True when the 95 % interval ``mean ± half`` leaves out 0 (a finite half-width is needed)."""
    mean, half, n = stat
    return bool(n >= 2 and math.isfinite(half) and abs(mean) > half)
