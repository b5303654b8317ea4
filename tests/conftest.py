"""Shared fixtures of the speech-dae test suite.

- ``REPO_ROOT`` and :func:`run_script`: run a numbered script as a subprocess
  (``sys.executable``, absolute path, ``TF_CPP_MIN_LOG_LEVEL=2``, ``--no-progress``).
- :func:`build_corpus` / ``tiny_corpus``: a tiny ``--data`` corpus (train/{clean,noise},
  test/{clean,noise}) of short real clips cut from ``data_sample/`` (synthetic
  speech-like signals when ``data_sample/`` is absent), written into ``tmp_path``.
- ``tiny_cfg`` and ``TINY_SETS``: a configuration with a tiny model and one epoch.
- ``built``: features + dataset of a tiny corpus, built once per session in-process
  (read-only for the tests that use it).
- ``tiny_run``: a tiny type2 model trained for one epoch on ``built``, once per session
  in-process (read-only: a test that writes into a run folder copies it first).

Tests marked ``slow`` (subprocess pipelines, kill/resume, distribution, backends,
registry-wide training and export, tuning studies) run with ``make test-all`` only;
``make test`` runs ``-m "not slow"``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_SAMPLE = REPO_ROOT / "data_sample"
SR = 16000

if str(REPO_ROOT) not in sys.path:  # `pytest` run from elsewhere
    sys.path.insert(0, str(REPO_ROOT))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

#: Values the tests' expectations rely on, pinned so that changes of the defaults do not matter.
PINNED_SETS = [
    "audio.sample_rate=16000",
    "audio.min_duration_s=0.25",
    "audio.silence_rms_db=-70",
    "mixing.val_fraction=0.2",
    "mixing.clip_peak=0.99",
    "features.type=logmag",
    "features.n_fft=512",
    "features.hop_length=128",
    "features.win_length=512",
    "dataset.context=11",
    "dataset.stride=3",
]

#: ``--set`` overrides that keep every Keras model tiny and training to one epoch (plus :data:`PINNED_SETS`).
TINY_SETS = PINNED_SETS + [
    "model.hparams.type2.units=[16,8]",
    "model.hparams.type2.dropout=0.0",
    "model.hparams.type1.filters=[8,4]",
    "model.hparams.dense_ln.units=[32,16,8,16,32]",
    "model.hparams.conv1d_time.filters=[8,4]",
    "model.hparams.cnn2d.filters=4",
    "model.hparams.cnn2d.depth=2",
    "model.hparams.unet.base_filters=4",
    "model.hparams.unet.depth=2",
    "model.hparams.shallow.units=16",
    "model.hparams.partitioned.units=16",
    "model.hparams.curro.units=[16,8]",
    "model.hparams.curro.decoder_units=[8]",
    "model.hparams.tcn.units=[16]",
    "model.hparams.tcn.channels=8",
    "model.hparams.tcn.dilations=[1,2]",
    "model.hparams.erbnet.channels=4",
    "model.hparams.erbnet.dilations=[1,2]",
    "training.epochs=1",
    "training.batch_size=64",
    "mixing.snr_db=[0,10]",
]

SCRIPTS = (
    "01_extract_features.py",
    "02_build_dataset.py",
    "03_train_autoencoder.py",
    "04_reconstruct.py",
    "05_evaluate.py",
)

# Real recordings used for the tiny corpus (all long enough to crop from).
_CLEAN_TRAIN = [
    "en_US_f_Allison__conf-adminmenu-18.wav",
    "it_IT_m_Carlo__conf-usermenu-162.wav",
    "en_US_f_Allison__demo-congrats.wav",
    "it_IT_m_Carlo__conf-adminmenu-162.wav",
]
_CLEAN_TEST = ["fr_CA_f_June__agent-newlocation.wav", "fr_CA_f_June__confbridge-mute-extended.wav"]
_NOISE_TRAIN = ["lincity_Farm2.wav", "moh_macroform-cold_day_2.wav", "lincity_Commune2.wav"]
_NOISE_TEST = ["lincity_Fire3.wav", "lincity_CoalMine3.wav"]


# ----------------------------------------------------------------- audio clips
def _synthetic_speech(seed: int, n: int, sr: int = SR) -> np.ndarray:
    """Voiced, amplitude-modulated harmonic signal (a speech stand-in), peak ~0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    f0 = 110 + 60 * rng.random() + 15 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 * (1 + np.sin(2 * np.pi * (3 + rng.random()) * t)) ** 2
    y = y * env
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


def _synthetic_noise(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    y = np.convolve(rng.standard_normal(n + 31), np.hanning(32), mode="valid")[:n]
    return (0.2 * y / np.max(np.abs(y))).astype(np.float32)


def _crop_real(folder: str, name: str, seconds: float, start_s: float) -> np.ndarray | None:
    path = DATA_SAMPLE / folder / name
    if not path.is_file():
        return None
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    assert sr == SR, f"{path} is not at {SR} Hz"
    start = int(start_s * sr)
    n = int(round(seconds * sr))
    if y.size < start + n:
        start = max(0, y.size - n)
    seg = y[start : start + n]
    return seg if seg.size == n else None


def speech_clip(index: int = 0, seconds: float = 1.0, *, split: str = "train") -> np.ndarray:
    """``seconds`` of real speech (float32, 16 kHz) cut from ``data_sample/<split>/clean``."""
    names = _CLEAN_TRAIN if split == "train" else _CLEAN_TEST
    seg = _crop_real(f"{split}/clean", names[index % len(names)], seconds, start_s=0.5)
    if seg is None:
        seg = _synthetic_speech(index + (0 if split == "train" else 100), int(round(seconds * SR)))
    return seg


def noise_clip(index: int = 0, seconds: float = 1.0, *, split: str = "train") -> np.ndarray:
    """``seconds`` of a real noise recording (float32, 16 kHz) from ``data_sample/<split>/noise``."""
    names = _NOISE_TRAIN if split == "train" else _NOISE_TEST
    seg = _crop_real(f"{split}/noise", names[index % len(names)], seconds, start_s=0.2)
    if seg is None:
        seg = _synthetic_noise(index + (0 if split == "train" else 100), int(round(seconds * SR)))
    return seg


def write_wav(path: Path, y: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, subtype=subtype)
    return path


def build_corpus(
    root: Path,
    *,
    n_train_clean: int = 3,
    n_train_noise: int = 2,
    n_test_clean: int = 1,
    n_test_noise: int = 1,
    clean_s: float = 1.0,
    noise_s: tuple = (0.6, 1.5),
) -> Path:
    """Write a ``--data`` corpus under ``root``; noise lengths cycle through ``noise_s``.

    With the defaults the first train noise (0.6 s) is shorter than the 1 s
    utterances (looped) and the second (1.5 s) longer (cropped).
    """
    root = Path(root)
    spk = ["spkA", "spkB"]
    for i in range(n_train_clean):
        write_wav(root / "train" / "clean" / f"{spk[i % 2]}__utt{i}.wav", speech_clip(i, clean_s))
    for i in range(n_test_clean):
        write_wav(root / "test" / "clean" / f"spkC__utt{i}.wav", speech_clip(i, clean_s, split="test"))
    for i in range(n_train_noise):
        write_wav(root / "train" / "noise" / f"noise{i}.wav", noise_clip(i, noise_s[i % len(noise_s)]))
    for i in range(n_test_noise):
        write_wav(root / "test" / "noise" / f"tnoise{i}.wav", noise_clip(i, noise_s[-1], split="test"))
    return root


def tree_checksums(root: Path) -> dict[str, tuple[str, int]]:
    """``{relative path: (sha256, mtime_ns)}`` of every file under ``root``."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


def si_sdr_db(ref: np.ndarray, est: np.ndarray) -> float:
    """Independent SI-SDR (Le Roux et al. 2019), so feature tests do not rely on speech_dae.metrics."""
    ref = np.asarray(ref, np.float64) - np.mean(ref)
    est = np.asarray(est, np.float64) - np.mean(est)
    alpha = np.dot(est, ref) / np.dot(ref, ref)
    target = alpha * ref
    return float(10 * np.log10(np.sum(target**2) / np.sum((est - target) ** 2)))


# ---------------------------------------------------------------- subprocesses
def run_script(
    script: str, *args: str, cwd: Path, timeout: float = 300, progress_flag: bool = True
) -> subprocess.CompletedProcess:
    """Run ``<repo>/<script> args... --no-progress`` with ``sys.executable`` in ``cwd``."""
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, str(REPO_ROOT / script), *map(str, args)]
    if progress_flag:
        cmd.append("--no-progress")
    return subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The single non-empty stderr line of a failed script (asserts there is exactly one)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{proc.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def stdout_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in proc.stdout.splitlines() if ln.strip()]


def load_script(path: str):
    """A script of the repository (e.g. ``"06_tune.py"``, ``"experiments/thesis_sines.py"``) imported as a module,
    for in-process checks of its functions and ``main``; named after the file, without a leading number."""
    import importlib.util

    name = Path(path).stem.lstrip("0123456789_")
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def identity_run_dir(run_dir: Path, cfg, *, context: int = 11) -> Path:
    """A stage-03-like run folder whose model is the identity (so denoising should return the input)."""
    import keras

    from speech_dae.features import FeatureExtractor
    from speech_dae.framing import Normaliser
    from speech_dae.runinfo import RunInfo

    fx = FeatureExtractor(cfg.features, SR)
    run_dir.mkdir(parents=True)
    inp = keras.Input(shape=(context, fx.n_bins))
    keras.Model(inp, keras.layers.Identity()(inp)).save(run_dir / "model.keras")
    # a non-trivial normaliser, shared by inputs and targets: norm_x then denorm_y is the identity
    rng = np.random.default_rng(0)
    m, s = rng.normal(-3, 1, fx.n_bins).astype(np.float32), rng.uniform(0.5, 2, fx.n_bins).astype(np.float32)
    Normaliser(m, s, m, s).save(run_dir / "norm.npz")
    RunInfo(
        model="identity",
        feature=cfg.features.type,
        sample_rate=SR,
        features=cfg.to_dict()["features"],
        context=context,
        n_bins=fx.n_bins,
        input_shape=[context, fx.n_bins],
    ).save(run_dir)
    return run_dir


# -------------------------------------------------------------------- fixtures
@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    return build_corpus(tmp_path / "corpus")


@pytest.fixture(scope="session")
def tiny_cfg():
    from speech_dae.config import load_config

    return load_config(overrides=TINY_SETS)


@dataclass(frozen=True)
class Built:
    root: Path
    corpus: Path
    features: Path
    dataset: Path
    cfg: object


@pytest.fixture(scope="session")
def built(tmp_path_factory, tiny_cfg) -> Built:
    """Features and dataset of the default tiny corpus, built in-process once (do not modify)."""
    from speech_dae.stages.dataset import build_dataset
    from speech_dae.stages.extract import extract_features

    root = tmp_path_factory.mktemp("built")
    corpus = build_corpus(root / "corpus")
    features, dataset = root / "features" / "tiny", root / "datasets" / "tiny"
    extract_features(tiny_cfg, out=features, data=corpus, progress=False)
    build_dataset(tiny_cfg, features=features, out=dataset, progress=False)
    return Built(root, corpus, features, dataset, tiny_cfg)


@dataclass(frozen=True)
class TinyRun:
    run_dir: Path
    models_dir: Path
    logs_dir: Path
    summary: object
    built: Built


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, built) -> TinyRun:
    """A tiny type2 run (``TINY_SETS``: one epoch) trained in-process once per session on ``built``.

    Shared by the tests that need some trained run to denoise, export or stream with: do not write into
    ``run_dir``; copy it (``shutil.copytree(tiny_run.run_dir, tmp_path / "run")``) to export or modify.
    """
    from speech_dae.stages.train import train

    root = tmp_path_factory.mktemp("tiny_run")
    models_dir, logs_dir = root / "models", root / "model_logs"
    summary = train(
        built.cfg.replace(**{"model.name": "type2"}),
        dataset=built.dataset,
        run="tiny_type2",
        models_dir=models_dir,
        logs_dir=logs_dir,
        progress=False,
    )
    return TinyRun(summary.run_dir, models_dir, logs_dir, summary, built)
