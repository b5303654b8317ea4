"""experiments/thesis_sines.py: the sine-chord generator, the AWGN level, the scoring path and a tiny full run."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script

pytest.importorskip("keras")
librosa = pytest.importorskip("librosa")

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "experiments" / "thesis_sines.py"


@pytest.fixture(scope="module")
def sines():
    return load_script("experiments/thesis_sines.py")


def test_clean_frames_peak_at_the_four_sines_and_noise_only_frames_come_first(sines):
    noisy, clean, labels = sines.minibatch(np.random.default_rng(0), 0.0, noise_share=0.25)
    assert noisy.shape == clean.shape == (128, 1, 513) and labels.shape == (128, 1)
    np.testing.assert_array_equal(labels[:, 0], np.arange(128) < 32)  # 25 % noise-only, label 1
    assert np.all(clean[:32] == 0) and np.all(noisy[:32] > 0)
    spectrum = clean[32:, 0].mean(axis=0)
    peaks = np.flatnonzero((spectrum[1:-1] > spectrum[:-2]) & (spectrum[1:-1] > spectrum[2:])) + 1
    top4 = np.sort(peaks[np.argsort(spectrum[peaks])[-4:]])
    freqs = librosa.fft_frequencies(sr=16000, n_fft=1024)[top4]
    np.testing.assert_allclose(freqs, sines.FREQS, atol=16000 / 1024)  # within one bin
    assert 0.2 < clean[32:, 0].max(axis=1).mean() < 0.8  # scaled so a sine of amplitude A peaks near A


@pytest.mark.parametrize("snr_db", [-6.0, 0.0, 6.0])
def test_awgn_hits_the_requested_snr(sines, snr_db):
    rng = np.random.default_rng(1)
    clean = sines.sine_chords(128, 1024, rng)
    noise = sines.awgn(clean, snr_db, rng.standard_normal(clean.shape))
    assert 10 * np.log10(np.sum(clean**2) / np.sum(noise**2)) == pytest.approx(snr_db, abs=0.1)


def test_scoring_the_noisy_magnitudes_gives_the_noisy_input_mse(sines):
    clean, spec = sines.eval_example(0.0, seed=3)
    noisy = librosa.istft(spec, hop_length=512, n_fft=1024, length=len(clean))
    got = sines.time_mse(np.abs(spec).T[:, None, :] * sines.SCALE, spec, clean)
    assert got == pytest.approx(np.mean((noisy - clean) ** 2), rel=1e-5)
    assert got == pytest.approx(np.mean(clean**2), rel=0.05)  # 0 dB: noise power = signal power


@pytest.mark.slow
def test_tiny_run_writes_every_output(tmp_path):
    out = tmp_path / "sines"
    args = [
        sys.executable,
        str(SCRIPT),
        "--iterations",
        "20",
        "--eval-every",
        "10",
        "--units",
        "32",
        "--snr",
        "-6",
        "6",
        "--no-progress",
        "--out",
        str(out),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"}
    proc = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("results.csv", "loss.png", "time_mse.png", "summary.md"):
        assert (out / name).stat().st_size > 0, name
    for name in ("loss.png", "time_mse.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp*"))  # atomic writes left no temporary files

    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["network", "snr_db", "iteration", "train_loss", "time_mse"]
    networks = ["shallow_bn", "shallow", "partitioned", "curro", "curro_sum"]  # curro_sum: curro with alpha = 1
    got = sorted((r["network"], float(r["snr_db"]), int(r["iteration"])) for r in rows)
    assert got == sorted((n, s, i) for n in networks for s in (-6.0, 6.0) for i in (10, 20))
    values = np.array([[float(r["train_loss"]), float(r["time_mse"])] for r in rows])
    assert np.all(np.isfinite(values)) and np.all(values > 0)

    summary = (out / "summary.md").read_text()
    assert "noisy input" in summary and all(n in summary for n in networks)

    proc = subprocess.run(args + ["--resume"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]  # nothing left to train: outputs rewritten from the CSV
    with open(out / "results.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(rows)
