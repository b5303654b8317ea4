"""Nothing lost: a stage killed (SIGKILL) mid-run and run again gives what an uninterrupted run gives.

Stages 01, 02, 04 and 05; stage 03 (training) resumes from its BackupAndRestore backup instead (its tests are
at the end). The killed run is the
numbered script in a subprocess whose atomic writes are slowed down (every
``os.replace`` of a temporary file sleeps first), so the kill lands while
files are half-written, whatever the machine's speed; the test checks the
kill did come before the end. The re-run and the uninterrupted reference run
in-process with the same configuration. Artifacts are compared byte for byte,
but for timings (``seconds`` fields and columns, "× real time" figures).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    REPO_ROOT,
    TINY_SETS,
    build_corpus,
    identity_run_dir,
    noise_clip,
    speech_clip,
    tree_checksums,
    write_wav,
)

#: Runs a numbered script with every rename of an atomic write delayed by SLOW_WRITE_S seconds.
_SLOW_RUNNER = """
import os, runpy, sys, time
_replace = os.replace
def _slow_replace(src, dst, *args, **kwargs):
    if ".tmp" in os.path.basename(str(src)):  # a temporary of speech_dae.artifacts.atomic_path
        time.sleep(float(os.environ["SLOW_WRITE_S"]))
    return _replace(src, dst, *args, **kwargs)
os.replace = _slow_replace
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
runpy.run_path(sys.argv[0], run_name="__main__")
"""

_SETS = [a for s in TINY_SETS for a in ("--set", s)]
_TIMING_KEYS = {"seconds", "x_real_time", "load_seconds"}


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")] if folder.is_dir() else []


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp*") if p.is_file()] if folder.is_dir() else []


def kill_when(script: str, *args, cwd: Path, ready, delay_s: float = 0.4, timeout: float = 300) -> None:
    """Start ``script args`` with every atomic write slowed by ``delay_s``; SIGKILL it once ``ready()`` is true."""
    env = dict(
        os.environ,
        SLOW_WRITE_S=str(delay_s),
        TF_CPP_MIN_LOG_LEVEL="2",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_RUNNER, str(REPO_ROOT / script), *map(str, args), "--no-progress"],
        cwd=str(cwd),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline and not ready():
            time.sleep(0.02)
        assert proc.poll() is None, f"{script} ended before the kill:\n{proc.communicate()[1][-3000:]}"
        assert ready(), f"{script}: the kill condition was not reached in {timeout} s"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def kill_mid_run(
    script: str, *args, cwd: Path, watch: Path, after_files: int = 3, delay_s: float = 0.4, timeout: float = 300
) -> None:
    """Start ``script args`` with slowed writes; SIGKILL it in the middle of an atomic write (a temporary file
    exists under ``watch.parent``) once ``watch`` holds ``after_files`` finished files."""
    kill_when(
        script,
        *args,
        cwd=cwd,
        delay_s=delay_s,
        timeout=timeout,
        ready=lambda: len(_files(watch)) >= after_files and bool(_temporaries(watch.parent)),
    )
    assert _temporaries(watch.parent), "the kill should have come in the middle of a write"


def _drop_timing(obj):
    if isinstance(obj, dict):
        return {k: _drop_timing(v) for k, v in obj.items() if k not in _TIMING_KEYS}
    if isinstance(obj, list):
        return [_drop_timing(v) for v in obj]
    return obj


def normalised(folder: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file under ``folder`` (temporaries included), timings blanked."""
    out = {}
    for rel in tree_checksums(folder):
        data = (folder / rel).read_bytes()
        if rel.endswith(".json"):
            data = json.dumps(_drop_timing(json.loads(data)), sort_keys=True).encode()
        elif rel.endswith(".csv"):
            rows = list(csv.DictReader(io.StringIO(data.decode())))
            data = json.dumps([{k: v for k, v in r.items() if k not in _TIMING_KEYS} for r in rows]).encode()
        elif rel.endswith((".md", ".html")):
            text = re.sub(r"[0-9.]+× real time", "T", data.decode())
            text = re.sub(r"\| [0-9.,]+ \|$", "| T |", text, flags=re.MULTILINE)  # the × real time column
            data = re.sub(r"<td>[0-9.,]+</td></tr>", "<td>T</td></tr>", text).encode()
        out[rel] = hashlib.sha256(data).hexdigest()
    return out


def assert_same_artifacts(got: Path, want: Path) -> None:
    a, b = normalised(got), normalised(want)
    assert sorted(a) == sorted(b), (
        f"files differ: only in re-run {sorted(set(a) - set(b))}, only in reference {sorted(set(b) - set(a))}"
    )
    assert [k for k in a if a[k] != b[k]] == []


@pytest.fixture
def cfg(tiny_cfg):
    return tiny_cfg


@pytest.mark.slow
def test_01_killed_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path, cfg):
    from speech_dae.stages.extract import extract_features

    corpus = build_corpus(tmp_path / "corpus", n_train_clean=4, n_train_noise=2, n_test_clean=2, n_test_noise=1)
    inputs = tree_checksums(corpus)
    out = tmp_path / "killed" / "features"
    kill_mid_run(
        "01_extract_features.py",
        "--data",
        corpus,
        "--out",
        out,
        *_SETS,
        cwd=tmp_path,
        watch=Path(f"{out}.partial"),
        after_files=6,
    )
    assert Path(f"{out}.partial").is_dir() and not out.exists(), "the killed run must leave only a .partial folder"
    summary = extract_features(cfg, out=out, data=corpus, progress=False)
    assert not summary.up_to_date and summary.counts == {"train": 6, "val": 2, "test": 4}
    extract_features(cfg, out=tmp_path / "reference" / "features", data=corpus, progress=False)
    assert not Path(f"{out}.partial").exists()
    assert_same_artifacts(out, tmp_path / "reference" / "features")
    assert tree_checksums(corpus) == inputs


@pytest.mark.slow
def test_02_killed_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path, built, cfg):
    from speech_dae.stages.dataset import build_dataset

    out = tmp_path / "killed" / "dataset"
    kill_mid_run(
        "02_build_dataset.py",
        "--features",
        built.features,
        "--out",
        out,
        *_SETS,
        cwd=tmp_path,
        watch=Path(f"{out}.partial"),
        after_files=3,
    )
    assert Path(f"{out}.partial").is_dir() and not out.exists()
    assert not build_dataset(cfg, features=built.features, out=out, progress=False).up_to_date
    build_dataset(cfg, features=built.features, out=tmp_path / "reference" / "dataset", progress=False)
    assert not Path(f"{out}.partial").exists()
    assert_same_artifacts(out, tmp_path / "reference" / "dataset")


@pytest.fixture
def noisy_folders(tmp_path, cfg):
    """An identity model run and 4 noisy files with clean references (for stages 04 and 05)."""
    run = identity_run_dir(tmp_path / "models" / "ident", cfg)
    noisy, clean = tmp_path / "noisy", tmp_path / "clean"
    for i in range(4):
        write_wav(clean / f"f{i}.wav", speech_clip(i, 1.0))
        write_wav(noisy / f"f{i}.wav", speech_clip(i, 1.0) + noise_clip(i, 1.0))
    return run, noisy, clean


@pytest.mark.slow
def test_04_killed_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path, noisy_folders, cfg):
    from speech_dae.stages.reconstruct import reconstruct

    run, noisy, clean = noisy_folders
    killed, ref = tmp_path / "killed", tmp_path / "reference"
    kill_mid_run(
        "04_reconstruct.py",
        "--model",
        run,
        "--input",
        noisy,
        "--clean",
        clean,
        "--outputs",
        killed / "outputs",
        "--images",
        killed / "images",
        *_SETS,
        cwd=tmp_path,
        watch=killed / "outputs" / "ident",
        after_files=2,
    )
    for root in (killed, ref):
        reconstruct(
            cfg,
            model_dir=run,
            inputs=noisy,
            clean=clean,
            out_root=root / "outputs",
            images_root=root / "images",
            progress=False,
        )
    assert_same_artifacts(killed, ref)


def test_staged_output_resumes_a_partial_folder_without_a_killed_runs_temporaries(tmp_path):
    from speech_dae.artifacts import StagedOutput

    out = tmp_path / "out"
    work = StagedOutput(out, "fp", marker="m.json").begin()
    (work / "sub").mkdir()
    (work / "done.npy").write_bytes(b"kept")
    (work / ".done.abc123.tmp.npy").write_bytes(b"half")  # what atomic_path leaves when killed
    (work / "sub" / ".x.k9.tmp.wav").write_bytes(b"half")
    again = StagedOutput(out, "fp", marker="m.json").begin()
    assert again == work and (work / "done.npy").read_bytes() == b"kept"
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == [".stage.json", "done.npy", "sub"]
    (work / ".y.q.tmp.csv").write_bytes(b"half")
    StagedOutput(out, "other", marker="m.json").begin()  # another fingerprint: started afresh
    assert sorted(p.name for p in work.iterdir()) == [".stage.json"]


@pytest.mark.slow
def test_05_killed_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path, noisy_folders, cfg):
    from speech_dae.stages.evaluate import evaluate

    run, noisy, clean = noisy_folders
    out = tmp_path / "killed" / "report"
    kw = dict(
        models=[run],
        baselines=["wiener"],
        inputs=noisy,
        clean=clean,
        metrics=["si_sdr", "stoi"],
        save_audio=True,
        progress=False,
    )
    kill_mid_run(
        "05_evaluate.py",
        "--models",
        run,
        "--baselines",
        "wiener",
        "--input",
        noisy,
        "--clean",
        clean,
        "--metrics",
        "si_sdr",
        "stoi",
        "--save-audio",
        "--out",
        out,
        *_SETS,
        cwd=tmp_path,
        watch=Path(f"{out}.partial"),
        after_files=4,
    )
    assert Path(f"{out}.partial").is_dir() and not out.exists()
    assert not evaluate(cfg, out=out, **kw).up_to_date
    evaluate(cfg, out=tmp_path / "reference" / "report", **kw)
    assert not Path(f"{out}.partial").exists()
    assert_same_artifacts(out, tmp_path / "reference" / "report")


@pytest.mark.slow
def test_03_killed_after_an_epoch_resumes_and_equals_an_uninterrupted_run(tmp_path, built):
    """SIGKILL stage 03 once an epoch is logged; the re-run resumes from the BackupAndRestore backup in
    ``models/<run>.partial/backup`` (epochs not redone) and ends with the uninterrupted run's history and weights.

    The tiny model has no dropout (``model.hparams.type2.dropout=0.0`` in TINY_SETS), so the resumed run draws
    no random numbers the backup does not hold and the weights agree to float32 rounding.
    """
    import keras
    import numpy as np

    from speech_dae.config import load_config
    from speech_dae.stages.train import train

    sets = TINY_SETS + ["training.epochs=4", "training.patience=10", "training.tensorboard_media=false"]
    cfg = load_config(overrides=sets)
    killed = tmp_path / "killed"
    killed.mkdir()
    csv_log = killed / "model_logs" / "r.csv"
    # every epoch's state.json is an atomic write, slowed by 1 s: the kill lands inside epoch 2
    kill_when(
        "03_train_autoencoder.py",
        "--dataset",
        built.dataset,
        "--model",
        "type2",
        "--run",
        "r",
        *[a for s in sets for a in ("--set", s)],
        cwd=killed,
        delay_s=1.0,
        ready=lambda: csv_log.is_file() and len(csv_log.read_text().splitlines()) >= 2,
    )
    partial = killed / "models" / "r.partial"
    state = json.loads((partial / "backup" / "state.json").read_text())
    assert 1 <= state["epoch"] < 4 and not (killed / "models" / "r").exists()

    got = train(
        cfg,
        dataset=built.dataset,
        run="r",
        models_dir=killed / "models",
        logs_dir=killed / "model_logs",
        progress=False,
    )
    ref = train(
        cfg,
        dataset=built.dataset,
        run="r",
        models_dir=tmp_path / "ref" / "models",
        logs_dir=tmp_path / "ref" / "model_logs",
        progress=False,
    )
    assert got.info.resumed_at_epochs == [state["epoch"]] and ref.info.resumed_at_epochs == []
    assert f"resumed from epoch {state['epoch']}" in got.lines()[0]
    assert not partial.exists() and not (got.run_dir / "backup").exists(), "the backup is deleted on commit"
    assert got.info.epochs_run == ref.info.epochs_run == 4
    assert len(got.info.epoch_seconds) == 4
    for key in ("loss", "val_loss"):
        assert len(got.info.history[key]) == 4
        np.testing.assert_allclose(got.info.history[key], ref.info.history[key], rtol=1e-5)
    # the epochs before the kill were not redone: the CSV log has each epoch once
    rows = list(csv.DictReader(io.StringIO(csv_log.read_text())))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    w_got = keras.saving.load_model(got.run_dir / "model.keras").get_weights()
    w_ref = keras.saving.load_model(ref.run_dir / "model.keras").get_weights()
    assert len(w_got) == len(w_ref)
    for a, b in zip(w_got, w_ref):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_03_stopped_after_training_but_before_the_commit_does_not_train_again(tmp_path, built, monkeypatch):
    """A run that fails between the end of ``fit`` and the commit (here: the training plot raises) leaves a
    finished backup; the re-run takes the best weights and history from it without training an epoch."""
    import keras
    import numpy as np

    import speech_dae.training.trainer
    from speech_dae.config import load_config
    from speech_dae.stages.train import train

    cfg = load_config(overrides=TINY_SETS + ["training.epochs=3", "training.tensorboard_media=false"])
    kw = dict(dataset=built.dataset, run="r", progress=False)

    def broken(*args, **kwargs):
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(speech_dae.training.trainer, "plot_training_curves", broken)
        with pytest.raises(RuntimeError, match="killed"):
            train(cfg, models_dir=tmp_path / "a", logs_dir=tmp_path / "a_logs", **kw)
    state = json.loads((tmp_path / "a" / "r.partial" / "backup" / "state.json").read_text())
    assert state["epoch"] == 3 and state["finished"]
    got = train(cfg, models_dir=tmp_path / "a", logs_dir=tmp_path / "a_logs", **kw)
    ref = train(cfg, models_dir=tmp_path / "b", logs_dir=tmp_path / "b_logs", **kw)
    assert got.info.resumed_at_epochs == [3] and got.info.history == ref.info.history
    assert got.info.best_epoch == ref.info.best_epoch and got.info.stop_reason == ref.info.stop_reason
    for a, b in zip(
        keras.saving.load_model(got.run_dir / "model.keras").get_weights(),
        keras.saving.load_model(ref.run_dir / "model.keras").get_weights(),
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not (got.run_dir / "backup").exists()
