"""The package runs unchanged on every Keras backend: train (03) and reconstruct (04) a tiny model with
KERAS_BACKEND=jax and =torch in fresh processes (skipped where the backend is not installed), the thesis's
semi-supervised training graph on each, and a clear error for tf.distribute on a backend other than TensorFlow."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import TINY_SETS, build_corpus, error_line, run_script

from speech_dae.inference import Denoiser

# every test runs stage 03/04 in a subprocess on another Keras backend: `make test-all` only
pytestmark = pytest.mark.slow

BACKENDS = [
    pytest.param(b, marks=pytest.mark.skipif(importlib.util.find_spec(b) is None, reason=f"{b} not installed"))
    for b in ("jax", "torch")
]
SETS = [a for s in TINY_SETS for a in ("--set", s)]


@pytest.fixture
def backend_env(monkeypatch):
    def use(backend):
        monkeypatch.setenv("KERAS_BACKEND", backend)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torch's OpenMP threads spin on a busy machine

    return use


@pytest.mark.parametrize("backend", BACKENDS)
def test_train_then_reconstruct_on_backend(backend, backend_env, built, tmp_path):
    backend_env(backend)
    proc = run_script(
        "03_train_autoencoder.py",
        "--dataset",
        built.dataset,
        "--model",
        "type2",
        "--run",
        "r",
        *SETS,
        "--set",
        "training.epochs=2",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((tmp_path / "models" / "r" / "run.json").read_text())
    assert info["keras_backend"] == backend and info["epochs_run"] == 2
    assert np.all(np.isfinite(info["history"]["val_loss"]))
    assert (tmp_path / "model_logs" / "r.csv").is_file()
    proc = run_script("04_reconstruct.py", "--model", tmp_path / "models" / "r", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / "outputs" / "r" / "metrics.csv")))
    assert len(rows) == 2  # the tiny corpus's test split: one utterance at two SNRs
    assert all(np.isfinite(float(v)) for r in rows for k, v in r.items() if "si_sdr" in k)
    assert len(list((tmp_path / "outputs" / "r").glob("*_denoised.wav"))) == 2
    # the model.keras saved under this backend loads under TensorFlow (this process) and predicts the same
    x = _noisy_clip(tmp_path)
    np.testing.assert_allclose(Denoiser(tmp_path / "models" / "r")(x), _predict_in(backend, tmp_path), atol=1e-4)


def _noisy_clip(folder):
    from conftest import noise_clip, speech_clip

    x = (speech_clip(0, 1.0) + 0.3 * noise_clip(1, 1.0)).astype(np.float32)
    np.save(folder / "x.npy", x)
    return x


def _predict_in(backend, folder, run=None):
    """``Denoiser(run)(x.npy)`` computed in a fresh process on ``backend`` (run: ``folder/models/r``)."""
    code = (
        "import sys, numpy as np, keras; from speech_dae.inference import Denoiser; "
        "assert keras.backend.backend() == sys.argv[1], keras.backend.backend(); "
        "np.save(sys.argv[3], Denoiser(sys.argv[2])(np.load(sys.argv[4])))"
    )
    run = run or folder / "models" / "r"
    env = {**os.environ, "KERAS_BACKEND": backend, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code, backend, str(run), str(folder / "y.npy"), str(folder / "x.npy")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(folder / "y.npy")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_model_saved_under_tensorflow_loads_and_predicts_the_same_on_backend(backend, tiny_run, tmp_path):
    """Issue 16 (9): the README's claim that a model.keras saved under one backend loads under the others."""
    x = _noisy_clip(tmp_path)
    on_tf = Denoiser(tiny_run.run_dir)(x)
    assert np.std(on_tf) > 0
    np.testing.assert_allclose(_predict_in(backend, tmp_path, tiny_run.run_dir), on_tf, atol=1e-4)


@pytest.fixture(scope="module")
def noisy_only_dataset(tmp_path_factory, tiny_cfg):
    """Noisy + noise-only recordings, no clean references (for partitioned / curro)."""
    from speech_dae.stages.dataset import build_dataset
    from speech_dae.stages.extract import extract_features

    root = tmp_path_factory.mktemp("semi")
    corpus = build_corpus(root / "corpus")
    extract_features(
        tiny_cfg, out=root / "features", data=corpus, noise_only=corpus / "train" / "noise", progress=False
    )
    build_dataset(tiny_cfg, features=root / "features", out=root / "dataset", progress=False)
    return root / "dataset"


@pytest.mark.parametrize(
    "backend, model", [pytest.param(*b.values, m, marks=b.marks) for b, m in zip(BACKENDS, ("partitioned", "curro"))]
)
def test_semi_supervised_training_graph_on_backend(backend, model, backend_env, noisy_only_dataset, tmp_path):
    backend_env(backend)
    proc = run_script(
        "03_train_autoencoder.py", "--dataset", noisy_only_dataset, "--model", model, "--run", "r", *SETS, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((tmp_path / "models" / "r" / "run.json").read_text())
    assert info["keras_backend"] == backend and info["semi_supervised"] and np.isfinite(info["best_val_loss"])
    if model == "partitioned":  # the penalty output of the training graph was trained too
        assert np.all(np.isfinite(info["history"]["val_penalty_loss"]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_distribute_needs_the_tensorflow_backend(backend, backend_env, built, tmp_path):
    backend_env(backend)
    proc = run_script(
        "03_train_autoencoder.py",
        "--dataset",
        built.dataset,
        "--model",
        "type2",
        "--distribute",
        "mirrored",
        *SETS,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert (
        f"training.distribute=mirrored needs the TensorFlow Keras backend, but KERAS_BACKEND is {backend}"
        in error_line(proc)
    )
    assert not (tmp_path / "models").exists()
