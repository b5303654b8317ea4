"""DNSMOS P.835 (speech_dae.dnsmos): ranges, clean vs noisy, rates, silence, short clips, score(), denoise --score."""

from __future__ import annotations

import csv
import logging
import math

import numpy as np
import pytest
import soundfile as sf
from conftest import DATA_SAMPLE, SR, identity_run_dir

from speech_dae import dnsmos as D
from speech_dae import metrics as M
from speech_dae.audio import resample
from speech_dae.errors import AudioError, ConfigError
from speech_dae.mixing import mix_at_snr, seeded_rng

pytest.importorskip("speechmos")

CLEAN = DATA_SAMPLE / "test" / "clean" / "fr_CA_f_June__agent-newlocation.wav"
NOISES = [DATA_SAMPLE / "test" / "noise" / n for n in ("lincity_CoalMine3.wav", "minetest_env_sounds_water.1.wav")]


def _read(path, seconds: float | None = None) -> np.ndarray:
    if not path.is_file():
        pytest.skip(f"{path} not found (data_sample/ is needed)")
    y, sr = sf.read(path, dtype="float32")
    assert sr == SR
    return y[: int(seconds * SR)] if seconds else y


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    """5 s of clean speech: looped to 10 s, one 9.01-s DNSMOS window (the cheapest length)."""
    return _read(CLEAN, 5.0)


@pytest.fixture(scope="module")
def clean_scores(clean) -> dict:
    return D.dnsmos(clean, sample_rate=SR)


def test_keys_ranges_and_the_models_are_loaded_once(clean_scores):
    assert tuple(clean_scores) == D.KEYS == ("dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
    assert all(isinstance(v, float) and 1.0 <= v <= 5.0 for v in clean_scores.values()), clean_scores
    assert clean_scores["dnsmos_bak"] > 3.0  # studio prompts: little background noise
    assert D.load_models() is D.load_models()  # cached per process


@pytest.mark.parametrize("noise_path", NOISES, ids=lambda p: p.stem)
def test_clean_speech_rates_higher_than_the_same_speech_in_noise(clean, clean_scores, noise_path):
    noise = _read(noise_path)
    rng = seeded_rng(0, "dnsmos", noise_path.name)
    at0 = D.dnsmos(mix_at_snr(clean, noise, 0.0, rng=rng).noisy, sample_rate=SR)
    at20 = D.dnsmos(mix_at_snr(clean, noise, 20.0, rng=rng).noisy, sample_rate=SR)
    assert clean_scores["dnsmos_bak"] > at20["dnsmos_bak"] > at0["dnsmos_bak"]
    assert clean_scores["dnsmos_bak"] - at0["dnsmos_bak"] > 1.0
    assert clean_scores["dnsmos_ovrl"] - at0["dnsmos_ovrl"] > 0.5
    assert all(1.0 <= v <= 5.0 for v in (*at0.values(), *at20.values()))


@pytest.mark.parametrize("rate", [8000, 48000])
def test_other_sample_rates_are_resampled_to_16k(clean, clean_scores, rate):
    got = D.dnsmos(resample(clean, SR, rate), sample_rate=rate)
    assert all(1.0 <= v <= 5.0 for v in got.values())
    if rate == 48000:  # same band as the 16 kHz original: the same rating up to resampling error
        assert got == pytest.approx(clean_scores, abs=0.1)
    else:  # narrow-band speech: the background is still clean
        assert got["dnsmos_bak"] > 3.0


def test_silence_gets_the_floor_without_running_the_models(caplog, monkeypatch):
    monkeypatch.setattr(D, "load_models", lambda: pytest.fail("the models must not run on silence"))
    with caplog.at_level(logging.WARNING, logger="speech_dae.dnsmos"):
        assert D.dnsmos(np.zeros(2 * SR, np.float32), sample_rate=SR) == dict.fromkeys(D.KEYS, D.SILENCE_FLOOR)
    assert D.SILENCE_FLOOR == 1.0 and "all zeros" in caplog.text


def test_too_short_is_nan_with_a_warning(clean, caplog):
    short = clean[: int(0.4 * SR)]
    with caplog.at_level(logging.WARNING, logger="speech_dae.dnsmos"):
        got = D.dnsmos(short, sample_rate=SR)
    assert list(got) == list(D.KEYS) and all(math.isnan(v) for v in got.values())
    assert "too short" in caplog.text and "0.400 s" in caplog.text
    # at 48 kHz the limit is still 0.5 s of audio, not 0.5 * 16000 samples
    assert all(math.isnan(v) for v in D.dnsmos(resample(short, SR, 48000), sample_rate=48000).values())


def test_a_short_clip_is_rated_as_a_loop_of_itself(clean):
    """Documented behaviour (speechmos, as dnsmos_local.py): < 9.01 s is doubled until long enough."""
    clip = clean[: int(2.5 * SR)]  # 2.5 s -> 5 s -> 10 s: one window
    assert D.dnsmos(clip, sample_rate=SR) == pytest.approx(D.dnsmos(np.tile(clip, 4), sample_rate=SR), abs=1e-6)


def test_beyond_full_scale_is_clipped_with_a_warning(clean, caplog):
    loud = 4.0 * clean / np.max(np.abs(clean))
    with caplog.at_level(logging.WARNING, logger="speech_dae.dnsmos"):
        got = D.dnsmos(loud, sample_rate=SR)
    assert all(1.0 <= v <= 5.0 for v in got.values()) and "exceed full scale" in caplog.text


@pytest.mark.parametrize(
    "y, rate, err, match",
    [
        (np.zeros(SR, np.int16), SR, AudioError, "floating-point"),
        (np.zeros((SR, 2)), SR, AudioError, "mono"),
        (np.zeros(0), SR, AudioError, "empty"),
        (np.r_[np.zeros(SR), np.nan], SR, AudioError, "NaN"),
        (np.zeros(SR), 0, ConfigError, "sample_rate"),
    ],
)
def test_bad_input_is_refused(y, rate, err, match):
    with pytest.raises(err, match=match):
        D.dnsmos(y, sample_rate=rate)


# ------------------------------------------------------------------ metrics.score
def test_score_rates_the_estimate_only_and_once(clean, clean_scores, monkeypatch):
    other_ref = np.random.default_rng(0).standard_normal(clean.size)
    assert M.score(other_ref, clean, sample_rate=SR, metrics=["dnsmos_ovrl"]) == {
        "dnsmos_ovrl": pytest.approx(clean_scores["dnsmos_ovrl"], abs=1e-9)
    }
    calls = []

    def counting(y, *, sample_rate):
        calls.append(y.size)
        return D.dnsmos(y, sample_rate=sample_rate)

    monkeypatch.setattr(M, "dnsmos", counting)
    got = M.score(clean, clean, sample_rate=SR, metrics=["dnsmos_sig", "snr", "dnsmos_bak", "dnsmos_ovrl"])
    assert list(got) == ["dnsmos_sig", "snr", "dnsmos_bak", "dnsmos_ovrl"] and len(calls) == 1
    assert {k: got[k] for k in D.KEYS} == pytest.approx(clean_scores, abs=1e-9)
    assert all(M.HIGHER_IS_BETTER[k] for k in D.KEYS) and set(D.KEYS) <= set(M.METRICS)


def test_a_failing_dnsmos_is_nan_in_score_and_not_retried(monkeypatch, caplog):
    calls = []

    def broken(y, *, sample_rate):
        calls.append(1)
        raise RuntimeError("onnxruntime exploded")

    monkeypatch.setattr(M, "dnsmos", broken)
    with caplog.at_level(logging.WARNING, logger="speech_dae.metrics"):
        got = M.score(np.ones(SR), np.ones(SR), sample_rate=SR, metrics=["dnsmos_sig", "dnsmos_bak", "mae"])
    assert math.isnan(got["dnsmos_sig"]) and math.isnan(got["dnsmos_bak"]) and got["mae"] == 0.0
    assert len(calls) == 1 and "onnxruntime exploded" in caplog.text


# ------------------------------------------------------------------ speech-dae denoise --score
def test_denoise_score_prints_before_after_and_writes_the_csv(clean, tiny_cfg, tmp_path, capsys):
    pytest.importorskip("keras")
    from speech_dae.__main__ import main

    run = identity_run_dir(tmp_path / "identity", tiny_cfg)
    noisy = mix_at_snr(clean, _read(NOISES[0]), 0.0, rng=seeded_rng(0, "cli")).noisy
    sf.write(tmp_path / "rec.wav", noisy, SR, subtype="PCM_16")
    out = tmp_path / "out"
    args = ["denoise", str(tmp_path / "rec.wav"), "-o", str(out), "--model", str(run), "--score", "--no-progress"]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith("file "))
    assert lines[head].split() == [
        "file",
        *("SIG before SIG after BAK before BAK after OVRL before OVRL after".split()),
    ]
    assert lines[head + 1].split()[0] == "rec.wav" and lines[head + 2].split()[0] == "mean"
    assert lines[-2] == f"wrote {out / 'dnsmos.csv'}"
    with open(out / "dnsmos.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["file"] for r in rows] == ["rec.wav", "mean"]
    row = {k: float(v) for k, v in rows[0].items() if k not in ("file", "input")}
    assert set(row) == {f"{s}_{w}" for s in ("sig", "bak", "ovrl") for w in ("before", "after")}
    assert all(1.0 <= v <= 5.0 for v in row.values())
    # the identity model gives back its input: the same ratings before and after
    for s in ("sig", "bak", "ovrl"):
        assert row[f"{s}_after"] == pytest.approx(row[f"{s}_before"], abs=0.1)
        assert float(rows[1][f"{s}_before"]) == pytest.approx(row[f"{s}_before"], abs=1e-4)
    assert main(args) == 2  # outputs and dnsmos.csv exist: --overwrite needed
    assert main([*args, "--overwrite"]) == 0


def test_scores_equal_the_speechmos_reference_run(clean):
    """Skipping the P.808 model (not part of P.835) changes nothing: SIG/BAK/OVRL equal speechmos.dnsmos.run's."""
    from speechmos import dnsmos as reference

    y = np.clip(np.asarray(clean, dtype=np.float32), -1, 1)
    want = reference.run(y, 16000)
    got = D.dnsmos(y, sample_rate=16000)
    assert got["dnsmos_sig"] == pytest.approx(want["sig_mos"], abs=1e-5)
    assert got["dnsmos_bak"] == pytest.approx(want["bak_mos"], abs=1e-5)
    assert got["dnsmos_ovrl"] == pytest.approx(want["ovrl_mos"], abs=1e-5)
