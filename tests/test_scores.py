"""speech_dae.scores: labels, number formatting, the 95 % CI, best systems, grouping by SNR, the tables.

Every expected value is worked out by hand (or with scipy, independently of the code under test).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from speech_dae.errors import ConfigError
from speech_dae.scores import (
    ALL_METRICS,
    best_system,
    by_snr_tables,
    ci95,
    delta_table,
    digits,
    fmt_number,
    format_stat,
    means_by_snr,
    overall_table,
    resolve_metrics,
    scores_text,
    shown_metrics,
    summarise,
)

NAN = float("nan")


def test_digits_per_metric():
    assert [digits(m) for m in ("pesq", "stoi", "estoi", "pearson")] == [3, 3, 3, 3]
    assert [digits(m) for m in ("snr", "segsnr", "si_sdr")] == [2, 2, 2]
    assert [digits(m) for m in ("mse", "mae", "rmse", "feature_mse")] == [5, 5, 5, 5]


def test_format_stat_digits_and_small_samples():
    assert format_stat([1.23456, 0.5, 10], "pesq") == "1.235 ± 0.500"
    assert format_stat([1.23456, 0.5, 10], "si_sdr") == "1.23 ± 0.50"
    assert format_stat([1.23456, 0.5, 10], "mse") == "1.23456 ± 0.50000"
    assert format_stat([1.23456, 0.5, 10], "stoi", ci=False) == "1.235"
    assert format_stat([NAN, NAN, 0], "pesq") == "n/a"  # no value
    assert format_stat([2.0, NAN, 1], "stoi") == "2.000"  # one value: no interval
    assert format_stat([-0.0, NAN, 1], "snr") == "0.00"


def test_fmt_number():
    assert fmt_number(3.14159) == "3.14" and fmt_number("3.14159", 3) == "3.142"
    assert fmt_number(-1.26, 1) == "-1.3"
    assert fmt_number(-0.001) == "0.00"  # never "-0.00"
    assert fmt_number(None) == fmt_number("") == fmt_number(NAN) == fmt_number(math.inf) == "–"


def test_ci95_of_a_known_sample_matches_scipy():
    mean, half, n = ci95(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    # sd = sqrt(2.5), sem = sqrt(0.5) = 0.70711, t(0.975, 4) = 2.77645 -> 1.96324
    assert (mean, n) == (3.0, 5)
    assert half == pytest.approx(2.7764451 * math.sqrt(0.5), rel=1e-6)
    lo, hi = stats.t.interval(0.95, 4, loc=3.0, scale=stats.sem([1, 2, 3, 4, 5]))
    assert half == pytest.approx((hi - lo) / 2, rel=1e-12)
    assert ci95([1.0, NAN, 2.0, 3.0, math.inf, 4.0, 5.0]) == (mean, half, n)  # non-finite values dropped


def test_ci95_of_one_and_no_value():
    mean, half, n = ci95([7.5, NAN])
    assert mean == 7.5 and math.isnan(half) and n == 1
    mean, half, n = ci95([NAN])
    assert math.isnan(mean) and math.isnan(half) and n == 0


def _entry(kind, overall, by_snr=None, delta=None, rt=None):
    e = {"kind": kind, "n_files": 2, "x_real_time": rt, "overall": overall, "by_snr": by_snr or {}}
    return e if delta is None else {**e, "delta": delta}


SUMMARY = {
    "noisy": _entry(
        "input",
        {"mse": [0.5, 0.1, 2], "si_sdr": [1.0, 0.5, 2]},
        {"0": {"mse": [0.7, NAN, 1], "si_sdr": [0.0, NAN, 1]}, "10": {"mse": [0.3, NAN, 1], "si_sdr": [2.0, NAN, 1]}},
    ),
    "m": _entry(
        "model",
        {"mse": [0.2, 0.1, 2], "si_sdr": [4.0, 1.0, 2]},
        {"0": {"mse": [0.1, NAN, 1], "si_sdr": [5.0, NAN, 1]}, "10": {"mse": [0.3, NAN, 1], "si_sdr": [3.0, NAN, 1]}},
        delta={"mse": [-0.3, 0.2, 2], "si_sdr": [3.0, 1.0, 2]},
        rt=41.6,
    ),
    "b": _entry(
        "baseline",
        {"mse": [NAN, NAN, 0], "si_sdr": [2.0, 0.25, 2]},
        {"0": {"mse": [NAN, NAN, 0], "si_sdr": [1.0, NAN, 1]}, "10": {"mse": [NAN, NAN, 0], "si_sdr": [3.0, NAN, 1]}},
        delta={"mse": [NAN, NAN, 0], "si_sdr": [1.0, 0.5, 2]},
        rt=None,
    ),
}


def test_best_system_lower_and_higher_is_better():
    assert best_system(SUMMARY, "mse") == "m"  # lowest MSE; b's NaN is left out
    assert best_system(SUMMARY, "si_sdr") == "m"
    assert best_system(SUMMARY, "mse", snr="10") == "noisy"  # tie at 0.3: the first system
    assert best_system(SUMMARY, "si_sdr", snr="10") == "m"  # tie at 3.0: the first system
    assert best_system(SUMMARY, "si_sdr", snr="0") == "m"
    assert best_system({"b": SUMMARY["b"]}, "mse") is None


def test_overall_table_contents():
    t = overall_table(SUMMARY, ["si_sdr", "mse"], title="T")
    assert t.title == "T"
    assert t.header == ["system", "kind", "files", "SI-SDR (dB)", "MSE", "× real time"]
    assert t.rows == [
        ["noisy", "input", "2", "1.00 ± 0.50", "0.50000 ± 0.10000", None],
        ["m", "model", "2", "4.00 ± 1.00", "0.20000 ± 0.10000", "42"],
        ["b", "baseline", "2", "2.00 ± 0.25", "n/a", None],
    ]
    assert t.best == [[False] * 6, [False, False, False, True, True, False], [False] * 6]
    assert overall_table(SUMMARY, ["mse"], title="T", speed=False).header == ["system", "kind", "files", "MSE"]


def test_delta_and_by_snr_tables():
    d = delta_table(SUMMARY, ["si_sdr"])
    assert d.header == ["system", "Δ SI-SDR (dB)"]
    assert d.rows == [["m", "3.00 ± 1.00"], ["b", "1.00 ± 0.50"]]
    assert delta_table(SUMMARY, []) is None
    assert delta_table({"noisy": SUMMARY["noisy"]}, ["si_sdr"]) is None
    mse, sdr = by_snr_tables(SUMMARY, ["mse", "si_sdr"])
    assert mse.title == "MSE (lower is better)" and sdr.title == "SI-SDR (dB) (higher is better)"
    assert mse.metric == "mse" and mse.header == ["system", "+0 dB", "+10 dB"]
    assert mse.rows == [["noisy", "0.70000", "0.30000"], ["m", "0.10000", "0.30000"], ["b", "n/a", "n/a"]]
    assert mse.best == [[False, False, True], [False, True, False], [False, False, False]]
    assert sdr.best == [[False, False, False], [False, True, True], [False, False, False]]
    no_snr = {s: {**e, "by_snr": {}} for s, e in SUMMARY.items()}
    assert by_snr_tables(no_snr, ["mse"]) == [] and by_snr_tables({}, ["mse"]) == []


def test_shown_metrics_puts_the_main_ones_first():
    assert shown_metrics(["mse", "si_sdr", "feature_mse", "pesq"]) == (["pesq", "si_sdr"], ["mse", "feature_mse"])


def test_means_by_snr_groups_sorted_unknown_last_then_all():
    rows = [
        {"snr_db": "10", "a": 1.0, "b": 0.0},
        {"snr_db": "-5", "a": 2.0, "b": 1.0},
        {"snr_db": "10", "a": 3.0, "b": 2.0},
        {"snr_db": "", "a": 4.0, "b": 3.0},
        {"a": 6.0, "b": 4.0},  # no SNR at all: with the unknown ones
    ]
    assert means_by_snr(rows, ["a", "b"]) == [
        ("-5", 1, {"a": 2.0, "b": 1.0}),
        ("10", 2, {"a": 2.0, "b": 1.0}),
        ("", 2, {"a": 5.0, "b": 3.5}),
        (None, 5, {"a": 3.2, "b": 2.0}),
    ]
    assert means_by_snr([], ["a"]) == []


def test_summarise_orders_snrs_numerically():
    rows = [
        {"id": f"f{s}", "snr_db": s, "system": "noisy", "kind": "input", "x": 1.0, "seconds": 0.0, "audio_s": 1.0}
        for s in ("10", "-5", "5")
    ]
    out = summarise(rows, ["x"])
    assert list(out["noisy"]["by_snr"]) == ["-5", "5", "10"] and out["noisy"]["x_real_time"] is None


def test_resolve_metrics():
    assert resolve_metrics(None) == [m for m in ALL_METRICS if m != "pesq_nb"]  # narrow-band PESQ only on request
    assert resolve_metrics("pesq_nb") == ["pesq_nb"]
    assert resolve_metrics("pesq, stoi") == ["pesq", "stoi"]
    assert resolve_metrics(["stoi,stoi", "feature_mse", "stoi"]) == ["stoi", "feature_mse"]
    with pytest.raises(ConfigError) as err:
        resolve_metrics(["pesq", "loudness"])
    assert str(err.value) == (
        "unknown metric loudness; choose from snr, segsnr, si_sdr, pesq, stoi, estoi, mse, mae, rmse, pearson, "
        "dnsmos_sig, dnsmos_bak, dnsmos_ovrl, pesq_nb, feature_mse"
    )
    with pytest.raises(ConfigError, match=r"unknown metric \(none given\); choose from snr"):
        resolve_metrics([" , "])


def test_scores_text():
    row = {"pesq": 1.2344, "stoi": 0.81249, "si_sdr": 5.6249, "mse": 0.1}
    assert scores_text(row, ["mse", "si_sdr", "stoi", "pesq"]) == "PESQ 1.234 · STOI 0.812 · SI-SDR 5.62 dB"
    assert scores_text({**row, "stoi": NAN}, ["pesq", "stoi"]) == "PESQ 1.234"  # a failed metric is left out
    assert scores_text({"mse": 0.1, "snr": -3.0}, ["mse", "snr"]) == "MSE 0.10000 · SNR -3.00 dB"


def test_inference_note_names_sequence_and_patch_models():
    from speech_dae.scores import inference_note

    modes, hops = {"best": "sequence", "a": "patch", "b": "patch"}, {"best": 32, "a": 4, "b": 1}
    assert inference_note(modes, hops) == (
        "Whole-sequence inference (every frame through the network once): best. "
        "Patch models at their own patch_hop (recorded in run.json): a 4, b 1."
    )
    assert inference_note({"a": "patch"}, hops, 2) == "Every patch model at patch_hop 2 (--patch-hop)."
    assert inference_note({}, {}) == ""
