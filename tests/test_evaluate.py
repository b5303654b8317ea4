"""Stage 05: which files and systems are scored, the statistics, the report files, and the errors."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from conftest import PINNED_SETS, SR, error_line, identity_run_dir, run_script, speech_clip, write_wav
from scipy.stats import t as student_t

from speech_dae.config import load_config
from speech_dae.errors import ArtifactError, ConfigError
from speech_dae.inputs import Item
from speech_dae.scores import NOISY, summarise
from speech_dae.stages.evaluate import evaluate, resolve_baselines, select_items, summary_markdown

FAST = ["si_sdr", "snr", "stoi", "feature_mse"]  # PESQ is exercised once, below


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def cfg():
    return load_config(overrides=PINNED_SETS)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """noisy/ and clean/ folders: two utterances, one nested, noisy = clean + white noise at 5 dB."""
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(3)
    for i, rel in enumerate(["a.wav", "sub/b.wav"]):
        clean = speech_clip(i, 1.5)
        noise = rng.standard_normal(clean.size).astype(np.float32)
        noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10**0.5)
        write_wav(root / "clean" / rel, clean)
        write_wav(root / "noisy" / rel, np.clip(clean + noise, -1, 1))
    return root


@pytest.fixture(scope="module")
def ident(tmp_path_factory, cfg):
    return identity_run_dir(tmp_path_factory.mktemp("ident") / "ident", cfg.replace(**{"reconstruct.patch_hop": 1}))


def test_resolve_baselines():
    from speech_dae.peers import available_peers

    assert resolve_baselines("all") == [
        "spectral_subtraction",
        "wiener",
        "noisereduce_stationary",
        "noisereduce_nonstationary",
        *available_peers(),  # deepfilternet3, rnnoise where the 'peers' extra is installed
    ]
    assert resolve_baselines(["none"]) == [] and resolve_baselines(None) == []
    assert resolve_baselines(["wiener,spectral_subtraction", "wiener"]) == ["wiener", "spectral_subtraction"]
    with pytest.raises(ConfigError, match="unknown baseline wienr; choose from all, none, spectral_subtraction"):
        resolve_baselines(["wienr"])


def test_select_items_is_stratified_evenly_spaced_and_deterministic():
    items = [Item(f"{snr}_{i}", None, None, str(snr)) for snr in (-5, 10) for i in range(10)]
    items += [Item("x_0", None, None, "0")]
    picked = select_items(items, 4)
    assert [it.uid for it in picked] == ["-5_0", "-5_3", "-5_6", "-5_9", "10_0", "10_3", "10_6", "10_9", "x_0"]
    assert select_items(items, 4) == picked and select_items(items, None) == items


def test_summarise_mean_ci_and_paired_delta_by_hand():
    vals = {"noisy": [1.0, 2.0, 4.0, 5.0], "m": [3.0, 3.0, 7.0, 9.0]}
    rows = [
        {
            "id": f"f{i}",
            "snr_db": "0" if i < 2 else "5",
            "system": s,
            "kind": "input" if s == NOISY else "model",
            "si_sdr": v[i],
            "seconds": 0.5,
            "audio_s": 2.0,
        }
        for s, v in vals.items()
        for i in range(4)
    ]
    rows[5]["si_sdr"] = float("nan")  # m on f1: not computable, so f1 leaves every system's mean
    out = summarise(rows, ["si_sdr"])
    m = out["m"]
    ok = np.array([3.0, 7.0, 9.0])
    half = student_t.ppf(0.975, 2) * ok.std(ddof=1) / math.sqrt(3)
    np.testing.assert_allclose(m["overall"]["si_sdr"], [ok.mean(), half, 3])
    # issue 16 (1): the noisy input is averaged over the same 3 files, not over all 4
    np.testing.assert_allclose(out["noisy"]["overall"]["si_sdr"][0], np.mean([1.0, 4.0, 5.0]))
    assert out["noisy"]["overall"]["si_sdr"][2] == 3 and out["noisy"]["n_files"] == 4
    assert m["failed"] == {"si_sdr": 1} and out["noisy"]["failed"] == {"si_sdr": 0}
    np.testing.assert_allclose(out["noisy"]["by_snr"]["5"]["si_sdr"][:2], [4.5, student_t.ppf(0.975, 1) * 0.5])
    np.testing.assert_allclose(m["delta"]["si_sdr"][0], np.mean([2.0, 3.0, 4.0]))
    assert m["x_real_time"] == pytest.approx(4.0) and "delta" not in out["noisy"]
    md = summary_markdown(out, ["si_sdr"], title="t")
    assert f"**{ok.mean():.2f} ± {half:.2f}**" in md  # best system in bold
    assert "| m | **3.00** | **8.00 ± 12.71** |" in md  # per SNR: one valid file has no CI
    assert "Files averaged per metric: SI-SDR (dB) 3" in md
    assert "SI-SDR (dB): not computable on 1 of 4 file(s) (m 1); those files are left out of every system's mean" in md


def test_clean_input_scores_perfectly_and_identity_model_changes_nothing(pairs, ident, cfg, tmp_path):
    """noisy = clean: STOI 1 and PESQ > 4.5; an identity model's scores equal the noisy input's."""
    res = evaluate(
        cfg,
        out=tmp_path / "rep",
        models=[ident],
        baselines="none",
        inputs=pairs / "clean",
        clean=pairs / "clean",
        metrics=["stoi", "pesq", "si_sdr"],
        progress=False,
    )
    rows = _rows(res.out / "results.csv")
    assert sorted((r["id"], r["system"]) for r in rows) == [
        ("a", "ident"),
        ("a", "noisy"),
        ("sub-b", "ident"),
        ("sub-b", "noisy"),
    ]
    for r in rows:
        assert float(r["stoi"]) > 0.999 and float(r["pesq"]) > 4.5 and float(r["si_sdr"]) > 40
    assert res.summary["ident"]["kind"] == "model" and res.summary["ident"]["x_real_time"] > 0


def test_evaluate_writes_the_report_and_is_up_to_date_on_rerun(pairs, ident, cfg, tmp_path):
    kw = dict(
        out=tmp_path / "rep",
        models=[ident],
        baselines=["wiener", "spectral_subtraction"],
        inputs=pairs / "noisy",
        clean=pairs / "clean",
        metrics=FAST,
        progress=False,
    )
    res = evaluate(cfg, **kw)
    rows = _rows(res.out / "results.csv")
    assert len(rows) == 2 * 4
    assert list(rows[0])[:4] == ["id", "snr_db", "system", "kind"] and {"seconds", "audio_s", *FAST} <= set(rows[0])
    by = {(r["id"], r["system"]): r for r in rows}
    for uid in ("a", "sub-b"):
        assert abs(float(by[(uid, "noisy")]["snr"]) - 5.0) < 0.2  # the pairs were mixed at 5 dB
        assert float(by[(uid, "wiener")]["si_sdr"]) > float(by[(uid, "noisy")]["si_sdr"])  # white noise: it helps
        np.testing.assert_allclose(float(by[(uid, "ident")]["si_sdr"]), float(by[(uid, "noisy")]["si_sdr"]), atol=0.05)
    summary = json.loads((res.out / "summary.json").read_text())
    assert list(summary["systems"]) == ["noisy", "ident", "wiener", "spectral_subtraction"]
    md = (res.out / "summary.md").read_text()
    assert "Improvement over the noisy input" in md and "feature MSE" in md and "×" in md
    assert (res.out / "metrics_by_snr.png").stat().st_size > 5000
    again = evaluate(cfg, **kw)
    assert again.up_to_date and "up to date" in again.lines()[0]
    assert again.summary["wiener"]["overall"]["si_sdr"] == summary["systems"]["wiener"]["overall"]["si_sdr"]


def test_save_audio_and_parallel_metrics_give_the_same_scores(pairs, cfg, tmp_path):
    kw = dict(
        baselines="wiener", inputs=pairs / "noisy", clean=pairs / "clean", metrics=["si_sdr", "stoi"], progress=False
    )
    one = evaluate(cfg, out=tmp_path / "one", save_audio=True, **kw)
    two = evaluate(cfg, out=tmp_path / "two", jobs=2, **kw)
    assert sorted(p.relative_to(one.out).as_posix() for p in (one.out / "audio").rglob("*.wav")) == [
        "audio/noisy/a.wav",
        "audio/noisy/sub-b.wav",
        "audio/wiener/a.wav",
        "audio/wiener/sub-b.wav",
    ]
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(one.out / "results.csv")]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(two.out / "results.csv")]


def test_unreferenced_files_are_skipped_and_listed(pairs, cfg, tmp_path):
    noisy = tmp_path / "noisy"
    for rel in ("a.wav", "sub/b.wav"):
        (noisy / rel).parent.mkdir(parents=True, exist_ok=True)
        (noisy / rel).write_bytes((pairs / "noisy" / rel).read_bytes())
    write_wav(noisy / "extra.wav", speech_clip(2, 1.0))
    res = evaluate(
        cfg,
        out=tmp_path / "rep",
        baselines="wiener",
        inputs=noisy,
        clean=pairs / "clean",
        metrics=["si_sdr"],
        progress=False,
    )
    assert res.n_files == 2 and len(res.skipped) == 1 and "extra.wav: no clean reference" in res.skipped[0]
    assert "extra.wav: no clean reference" in (res.out / "summary.md").read_text()


@pytest.mark.parametrize(
    "make, error, pattern",
    [
        (lambda p, t: dict(baselines="none"), ConfigError, "nothing to score"),
        (lambda p, t: dict(baselines="wiener"), ConfigError, "nothing to evaluate on: pass --features"),
        (lambda p, t: dict(baselines="wiener", inputs=p / "noisy"), ConfigError, "pass --clean DIR with --input"),
        (
            lambda p, t: dict(baselines="wiener", inputs=p / "noisy", clean=p / "clean", features=t),
            ConfigError,
            "not both",
        ),
        (lambda p, t: dict(baselines="wiener", metrics=["pesq", "loudness"]), ConfigError, "unknown metric loudness"),
        (lambda p, t: dict(models=[t / "missing"]), ArtifactError, "does not exist; run 03_train_autoencoder.py"),
        (
            lambda p, t: dict(baselines="wiener", features=t / "missing"),
            ArtifactError,
            "manifest.csv is missing; run 01",
        ),
    ],
)
def test_errors_say_what_to_do(make, error, pattern, pairs, cfg, tmp_path):
    with pytest.raises(error, match=pattern):
        evaluate(cfg, out=tmp_path / "rep", **make(pairs, tmp_path))
    assert not (tmp_path / "rep").exists()


def test_another_evaluation_is_not_overwritten_without_force(pairs, cfg, tmp_path):
    kw = dict(out=tmp_path / "rep", inputs=pairs / "noisy", clean=pairs / "clean", metrics=["si_sdr"], progress=False)
    evaluate(cfg, baselines="wiener", **kw)
    with pytest.raises(ArtifactError, match="--force"):
        evaluate(cfg, baselines="spectral_subtraction", **kw)
    res = evaluate(cfg, baselines="spectral_subtraction", force=True, **kw)
    assert "spectral_subtraction" in res.summary and "wiener" not in res.summary


@pytest.mark.slow  # the numbered script in a subprocess
def test_cli_without_sources_exits_2(tmp_path):
    proc = run_script("05_evaluate.py", "--baselines", "wiener", cwd=tmp_path)
    assert proc.returncode == 2
    assert error_line(proc).startswith("error: nothing to evaluate on")


def test_sample_rate_of_the_report_is_the_models(pairs, ident, cfg, tmp_path):
    res = evaluate(
        cfg.replace(**{"audio.sample_rate": 8000}),
        out=tmp_path / "rep",
        models=[ident],
        baselines="none",
        inputs=pairs / "noisy",
        clean=pairs / "clean",
        metrics=["si_sdr"],
        progress=False,
    )
    assert json.loads((res.out / "summary.json").read_text())["sample_rate"] == SR
