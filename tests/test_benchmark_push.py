"""benchmarks/push.py and benchmarks/_paired.py: paired intervals by hand, the three sections on a fake score table.

Fast: no training, no stage 05; the sections are rendered from a small ``results.csv``-like table.
"""

from __future__ import annotations

import math
import re

import pytest
from scipy import stats

from benchmarks import push
from benchmarks._paired import format_difference, paired_difference, per_file, significant
from speech_dae.runinfo import RunInfo
from speech_dae.scores import summarise

SNRS = ("-5.0", "0.0", "5.0", "10.0")
#: push_6's value of every metric on the 4 files, and what each other system adds to it per file.
BASE = [1.0, 2.0, 3.0, 4.0]
SHIFT = {
    "push_6": [0.0, 0.0, 0.0, 0.0],
    "noisy": [-1.0, -1.0, -1.0, -1.0],
    "best": [0.3, 0.2, 0.4, 0.3],
    "push_12": [0.1, 0.1, 0.1, 0.1],
    "no_ema": [-0.5, 0.0, -0.7, -1.0],  # per-file differences to push_6: mean -0.55
    "deepfilternet3": [0.5, 0.5, 0.5, 0.5],
}
KIND = {"noisy": "input", "deepfilternet3": "baseline"}


def fake_rows(systems=tuple(SHIFT)) -> list[dict]:
    """``results.csv`` rows (strings, as read back) of 4 files x ``systems``, every metric equal."""
    rows = []
    for i, snr in enumerate(SNRS):
        for s in systems:
            v = BASE[i] + SHIFT[s][i]
            row = {"id": f"f{i}", "snr_db": snr, "system": s, "kind": KIND.get(s, "model")}
            row.update({m: str(v) for m in push.METRICS})
            rows.append(row | {"seconds": "0.01", "audio_s": "2.0"})
    return rows


def info(minutes: float, epochs: int = 5) -> RunInfo:
    return RunInfo(
        model="tcn",
        feature="logmag",
        sample_rate=16000,
        features={"hop_length": 128},
        context=64,
        n_bins=257,
        n_params=462_209,
        epochs_run=epochs,
        best_epoch=epochs - 1,
        train_seconds=minutes * 60.0 + 6.0,
        stop_reason=f"time budget of {minutes:g} min reached",
        training={"max_minutes": minutes},
    )


# --- paired differences ---------------------------------------------------------------------------------------


def test_paired_difference_is_the_t_interval_of_the_per_file_differences():
    rows = fake_rows()
    mean, half, n = paired_difference(rows, "no_ema", "push_6", "si_sdr")
    # differences -0.5, 0, -0.7, -1.0: mean -0.55, squared deviations 0.0025 + 0.3025 + 0.0225 + 0.2025 = 0.53
    assert n == 4
    assert mean == pytest.approx(-0.55)
    assert half == pytest.approx(stats.t.ppf(0.975, 3) * math.sqrt(0.53 / 3) / math.sqrt(4))
    assert half == pytest.approx(0.66886, abs=1e-4)  # t(0.975, 3) = 3.1824


def test_paired_difference_drops_files_without_a_finite_value_on_either_side():
    rows = fake_rows()
    for r in rows:
        if r["id"] == "f1" and r["system"] == "no_ema":
            r["si_sdr"] = "nan"
    mean, half, n = paired_difference(rows, "no_ema", "push_6", "si_sdr")
    assert n == 3 and mean == pytest.approx((-0.5 - 0.7 - 1.0) / 3)
    assert paired_difference(rows, "absent", "push_6", "si_sdr")[2] == 0
    assert per_file(rows, "push_6", "pesq") == {"f0": 1.0, "f1": 2.0, "f2": 3.0, "f3": 4.0}


def test_format_and_significance_of_a_difference():
    assert format_difference((0.25, 0.1, 4), "pesq") == "+0.250 ± 0.100"
    assert format_difference((-1.234, 0.5, 4), "si_sdr") == "-1.23 ± 0.50"
    assert format_difference((math.nan, math.nan, 0), "si_sdr") == "–"
    assert significant((-0.55, 0.4, 4)) and not significant((-0.55, 0.67, 4))
    assert not significant((1.0, math.nan, 1))


# --- the plan ---------------------------------------------------------------------------------------------


def test_planned_runs_share_the_reference_with_the_curve_and_keep_the_best_config_unchanged():
    runs = push.planned_runs(6)
    assert runs["best"] == []
    assert runs["push_6"] == ["training.max_minutes=6"] and runs["push_12"] == ["training.max_minutes=12"]
    assert list(runs)[:3] == ["best", "push_6", "push_12"]
    for name, (_, overrides) in push.ABLATIONS.items():
        assert runs[name] == ["training.max_minutes=6", *overrides]
    assert "push_4" in push.planned_runs(4) and push.reference_name(4) == "push_4"
    cmd = push.train_command("no_ema", ["training.max_minutes=6", "training.ema=0"], force=True)
    assert cmd[cmd.index("--run") + 1] == "no_ema"
    assert cmd[-5:] == ["--set", "training.max_minutes=6", "--set", "training.ema=0", "--force"]


def test_dry_run_prints_every_command_and_writes_nothing(tmp_path, capsys):
    work = tmp_path / "work"
    assert push.main(["--data", str(tmp_path / "corpus"), "--work", str(work), "--dry-run", "--max-files", "3"]) == 0
    out = capsys.readouterr().out
    assert not work.exists()
    for name in [*push.CURVE, *push.ABLATIONS, "best"]:
        assert f"--run {name}" in out
    assert "01_extract_features.py" in out and "02_build_dataset.py" in out
    evaluate = next(line for line in out.splitlines() if "05_evaluate.py" in line)
    assert "--max-files 3" in evaluate and "models/no_schedule" in evaluate and "previous_best" not in evaluate


def test_retrain_rejects_a_run_the_script_does_not_have(tmp_path):
    with pytest.raises(SystemExit, match="--retrain nope"):
        push.main(["--data", str(tmp_path), "--work", str(tmp_path), "--dry-run", "--retrain", "nope"])


# --- the sections -----------------------------------------------------------------------------------------


HEAD = ["### title", "", "Command: `c`  "]


def test_ablation_section_rows_are_paired_differences_and_a_failed_run_says_why():
    rows = fake_rows()
    summary = summarise(rows, push.METRICS)
    ablations = {
        "no_ema": ("weight averaging", ["training.ema=0"]),
        "no_schedule": ("learning-rate schedule", ["training.lr_schedule=constant"]),
    }
    status = {"no_schedule": "error: unknown config key 'training.lr_schedule' | x"}
    text = push.ablation_section(
        HEAD, rows, summary, {"no_ema": info(6)}, status, reference="push_6", ablations=ablations, minutes=6
    )
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("| no_ema |"))
    half = stats.t.ppf(0.975, 3) * math.sqrt(0.53 / 3) / 2
    assert f"-0.550 ± {half:.3f}" in row  # PESQ-WB, STOI, ESTOI, DNSMOS OVRL: 3 decimals
    assert f"-0.55 ± {half:.2f}" in row  # SI-SDR: 2
    assert " *" not in row  # the interval (±0.67) includes 0
    assert row.startswith("| no_ema | weight averaging | 5 (4) | 6.1 |")
    failed = next(line for line in lines if line.startswith("| no_schedule |"))
    assert "not trained (error: unknown config key 'training.lr_schedule' \\| x)" in failed
    cells = re.compile(r"(?<!\\)\|")  # a cell border: a pipe not escaped
    assert len(cells.findall(failed)) == len(cells.findall(row))
    assert "Full recipe at 6 min (push_6): PESQ-WB 2.500 ±" in text


def test_ablation_section_without_its_reference_gives_no_difference():
    rows = fake_rows(("noisy", "no_ema"))
    summary = summarise(rows, push.METRICS)
    text = push.ablation_section(
        HEAD,
        rows,
        summary,
        {},
        {"push_6": "error: boom"},
        reference="push_6",
        ablations={"no_ema": ("x", [])},
        minutes=6,
    )
    assert "(push_6): not trained (error: boom); no Δ." in text
    assert "| no_ema | x | – | – | – | – | – | – | – |" in text


def test_curve_section_lists_the_budgets_then_best_and_marks_a_missing_run():
    rows = fake_rows(("noisy", "push_6", "push_12"))
    summary = summarise(rows, push.METRICS)
    infos = {"push_6": info(6, 5), "push_12": info(12, 9)}
    text = push.curve_section(HEAD, summary, infos, {"best": "error: no"}, curve={"push_6": 6, "push_12": 12})
    lines = [line for line in text.splitlines() if line.startswith("| ")][1:]  # below the header
    assert [line.split(" | ")[1] for line in lines] == ["push_6", "push_12", "best"]
    assert lines[0].startswith("| 6 | push_6 | 6.1 | 5 (4) | time budget of 6 min reached | 2.500 ± ")
    assert lines[1].startswith("| 12 | push_12 | 12.1 | 9 (8) |")
    # push_12 = push_6 + 0.1 on every file: the same spread, means 0.1 higher
    assert summary["push_12"]["overall"]["si_sdr"][0] == pytest.approx(2.6)
    assert "2.60 ± " in lines[1]
    assert lines[2].startswith("| configs/best.yaml's | best | not trained (error: no) |")


def test_main_section_shows_best_and_peers_hides_the_other_runs_and_marks_previous_missing():
    rows = fake_rows()
    summary = summarise(rows, push.METRICS)
    text = push.main_section(
        HEAD,
        summary,
        {"best": info(25), "push_6": info(6), "push_12": info(12), "no_ema": info(6)},
        {"best": 57.408},
        {"best": 440.0, "deepfilternet3": 6.4},
        {"previous_best": "no --previous given"},
        hidden=["push_6", "push_12", "no_ema"],
    )
    lines = text.splitlines()
    table = [line for line in lines if line.startswith("| ")]
    names = [line.split(" | ")[0][2:] for line in table]
    assert "push_6" not in names and "no_ema" not in names
    best = next(line for line in table if line.startswith("| **best** |"))
    assert best.startswith("| **best** | 462,209 | 57.4 | 5 (4) | 25.1 | ")
    assert best.split(" | ")[-2] == "440"
    dfn = next(line for line in table if line.startswith("| deepfilternet3 |"))
    assert dfn.startswith("| deepfilternet3 | – | – | – | – | ") and dfn.split(" | ")[-2] == "6"
    prev = next(line for line in table if line.startswith("| previous_best |"))
    assert "not scored (no --previous given)" in prev
    assert prev.count("|") == best.count("|")
    snr = next(line for line in table if line.startswith("| best |"))  # the per-SNR table: means per file here
    cells = snr.strip("| ").split(" | ")[1:]
    assert len(cells) == len(push.SHOWN) * len(SNRS)
    assert cells[:4] == ["1.300", "2.200", "3.400", "4.300"]  # PESQ-WB at -5, 0, +5, +10 dB


def test_header_names_the_files_and_snrs():
    summary = summarise(fake_rows(("noisy", "best")), push.METRICS)
    head = push.header("T", "python benchmarks/push.py", "machine, commit abc, 2026-01-01", summary, 4, 1)
    text = "\n".join(head)
    assert "4 files" in text and "1 per input SNR of -5, +0, +5, +10 dB" in text
    assert "commit abc" in text and "`python benchmarks/push.py`" in text


def test_val_score_table_has_means_and_paired_differences_to_the_first_run():
    from benchmarks.val_score import run_table

    rows = fake_rows(("noisy", "push_6", "no_ema"))
    metrics = ["si_sdr", "pesq", "stoi"]
    md, figures = run_table(rows, summarise(rows, metrics), metrics, {"push_6": info(6)})
    assert md[0].split(" | ")[-3:] == ["Δ SI-SDR (dB) vs push_6", "Δ PESQ-WB vs push_6", "Δ STOI vs push_6 |"]
    first, ablation, noisy = md[2:]
    assert first.startswith("| push_6 | 6.1 | 5 (4) | 2.50 ± ") and first.endswith("(reference) |")
    half = stats.t.ppf(0.975, 3) * math.sqrt(0.53 / 3) / 2
    assert f"| -0.55 ± {half:.2f} | -0.550 ± {half:.3f} |" in ablation
    assert noisy.startswith("| noisy (input) | – | – |") and "-1.00 ± 0.00 *" in noisy  # every file 1 lower
    assert figures["no_ema"]["paired_vs_first"]["si_sdr"][0] == pytest.approx(-0.55)
    assert figures["push_6"]["paired_vs_first"] == {}
