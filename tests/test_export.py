"""``speech-dae export`` and ``denoise --engine onnx``: parity of every format, refusals, no TensorFlow import."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO_ROOT, noise_clip, speech_clip

from speech_dae.__main__ import main
from speech_dae.errors import ArtifactError, ConfigError
from speech_dae.inference.files import denoise_paths

keras = pytest.importorskip("keras")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

from speech_dae.inference import export, runtimes  # noqa: E402
from speech_dae.models import MODEL_FEATURES, MODEL_TARGETS, MODELS, build_model  # noqa: E402

TOL = 1e-4


@pytest.fixture
def trained(tiny_run):
    """The session's tiny type2 run (one epoch on the tiny logmag dataset): read-only, copy it to export."""
    return tiny_run.run_dir


@pytest.fixture
def run_copy(trained, tmp_path):
    return shutil.copytree(trained, tmp_path / "run")


def _wav(path, seconds: float = 1.5):
    y = np.concatenate([speech_clip(i, 0.75) for i in range(2)])[: int(seconds * 16000)]
    y = (0.5 * y + 0.05 * np.resize(noise_clip(1), y.size)).astype(np.float32)
    sf.write(path, y, 16000, subtype="FLOAT")  # float samples: no quantisation step between the two engines
    return path


def _diff(out: str) -> float:
    return float(re.search(r"max \|exported - keras\| = (\S+) ", out).group(1))


def _real_patches(run_dir, n: int = 200) -> np.ndarray:
    """Patches of the run's dataset, gathered here independently of speech_dae.inference.export."""
    info = json.loads((run_dir / "run.json").read_text())
    x = np.load(os.path.join(info["dataset"], "x_test.npy"))
    starts = np.load(os.path.join(info["dataset"], "windows_test.npy"))[:n]
    return x[starts[:, None] + np.arange(info["context"])].astype(np.float32)


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "savedmodel"])
def test_every_format_exports_a_tiny_trained_run_with_parity(run_copy, fmt, capsys):
    assert main(["export", "--model", str(run_copy), "--format", fmt, "--patches", "50"]) == 0
    out = capsys.readouterr().out
    assert "parity on 50 real patches (test split of" in out and "passed" in out and _diff(out) < TOL
    assert re.search(rf"one forward pass of 50 patches: keras [\d.]+ ms, {fmt} [\d.]+ ms", out)
    path = run_copy / runtimes.FORMATS[fmt]
    assert path.exists() and f"({export._size(path) / 1e6:.2f} MB)" in out
    assert not [p.name for p in run_copy.iterdir() if p.name.startswith(".") or "parity-failed" in p.name]
    # checked again here, on other patches, with the exported file reloaded from disk
    x = _real_patches(run_copy)
    ref = np.asarray(keras.saving.load_model(run_copy / "model.keras")(x, training=False))
    got = runtimes.load_runtime(path, fmt, input_shape=x.shape[1:])(x)
    assert got.shape == ref.shape and np.max(np.abs(got - ref)) < TOL
    assert np.max(np.abs(ref)) > 0.1  # a real, non-trivial output


def _perturbed_writer(monkeypatch):
    """Make the ONNX writer export a copy of the model whose weights are shifted by 1e-2."""
    original = export._WRITERS["onnx"]

    def write(model, path):
        clone = keras.models.clone_model(model)
        clone.set_weights([w + np.float32(1e-2) for w in model.get_weights()])
        clone(np.zeros((1, *model.input_shape[1:]), np.float32))  # the ONNX exporter needs a called model
        original(clone, path)

    monkeypatch.setitem(export._WRITERS, "onnx", write)


def test_parity_check_fails_on_a_different_model_and_keeps_it_aside(run_copy, monkeypatch, capsys):
    assert main(["export", "--model", str(run_copy), "--format", "onnx"]) == 0
    good = (run_copy / "model.onnx").read_bytes()
    capsys.readouterr()
    with monkeypatch.context() as m:
        _perturbed_writer(m)
        assert main(["export", "--model", str(run_copy), "--format", "onnx"]) == 2
    cap = capsys.readouterr()
    assert "FAILED" in cap.out and _diff(cap.out) >= TOL
    err = [ln for ln in cap.err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: parity check failed")
    assert "model.parity-failed.onnx" in err[0] and "model.onnx was not written or replaced" in err[0]
    assert (run_copy / "model.parity-failed.onnx").is_file()
    assert (run_copy / "model.onnx").read_bytes() == good  # the checked export is left as it was
    # a passing export afterwards removes the rejected file
    assert main(["export", "--model", str(run_copy), "--format", "onnx"]) == 0
    assert not (run_copy / "model.parity-failed.onnx").exists()


def test_without_the_dataset_the_check_needs_audio(run_copy, tmp_path, capsys):
    info = json.loads((run_copy / "run.json").read_text())
    info["dataset"] = str(tmp_path / "gone")
    (run_copy / "run.json").write_text(json.dumps(info))
    assert main(["export", "--model", str(run_copy), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "no real features" in err and "gone" in err and "--audio FILE" in err
    assert not (run_copy / "model.onnx").exists()
    wav = _wav(tmp_path / "a.wav")
    assert main(["export", "--model", str(run_copy), "--format", "onnx", "--audio", str(wav)]) == 0
    out = capsys.readouterr().out
    assert f"(features of {wav})" in out and _diff(out) < TOL and (run_copy / "model.onnx").is_file()


def test_a_converter_failure_names_the_model_format_and_alternatives(monkeypatch, tmp_path):
    def broken(model, path):
        raise ValueError("op Foo is not supported\nmore detail")

    monkeypatch.setitem(export._WRITERS, "tflite", broken)
    model = build_model("type2", (3, 5), units=[4, 2])
    with pytest.raises(
        ArtifactError,
        match=r"model type2 cannot be exported to tflite \(ValueError: op Foo is not "
        r"supported\); try --format onnx, savedmodel",
    ):
        export.export_model(model, tmp_path / "m.tflite", "tflite")
    with pytest.raises(ConfigError, match="unknown export format 'tf'"):
        export.export_model(model, tmp_path / "m", "tf")


def test_denoise_with_the_onnx_engine_equals_keras(run_copy, tmp_path):
    assert main(["export", "--model", str(run_copy), "--format", "onnx"]) == 0
    wav = _wav(tmp_path / "in.wav")
    k = denoise_paths(run_copy, [wav], tmp_path / "keras", engine="keras", progress=False)
    auto = denoise_paths(run_copy, [wav], tmp_path / "auto", progress=False)  # a current export: onnx
    assert "start-up: onnx engine" in auto.lines()[0]
    o = denoise_paths(run_copy, [wav], tmp_path / "onnx", engine="onnx", progress=False)
    a, _ = sf.read(tmp_path / "keras" / "in.wav", dtype="float32")
    b, _ = sf.read(tmp_path / "onnx" / "in.wav", dtype="float32")
    assert a.shape == b.shape and np.abs(a).max() > 1e-3 and np.max(np.abs(a - b)) < TOL
    assert "start-up: onnx engine loaded in" in o.lines()[0] and "start-up: keras engine" in k.lines()[0]
    assert "x real time" in o.lines()[-1]


def _cli(*args, timeout=300):
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
    }
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_onnx_engine_never_imports_tensorflow_or_keras(run_copy, tmp_path):
    assert main(["export", "--model", str(run_copy), "--format", "onnx"]) == 0
    wav = _wav(tmp_path / "in.wav", 0.6)
    code = (
        "import sys\nfrom speech_dae.__main__ import main\n"
        f"rc = main(['denoise', {str(wav)!r}, '-o', {str(tmp_path / 'out')!r}, '--model', {str(run_copy)!r}, "
        "'--engine', 'onnx', '--no-progress'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx'))\n"
        "print('RC', rc, 'HEAVY', heavy)\n"
    )
    proc = _cli("-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "RC 0 HEAVY []" in proc.stdout and "start-up: onnx engine loaded in" in proc.stdout
    assert (tmp_path / "out" / "in.wav").is_file()


def test_onnx_engine_without_model_onnx_says_how_to_export(trained, tmp_path):
    wav = _wav(tmp_path / "in.wav", 0.5)
    proc = _cli(
        "-m",
        "speech_dae",
        "denoise",
        str(wav),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(trained),
        "--engine",
        "onnx",
    )
    assert proc.returncode == 2
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "model.onnx is missing" in err[0]
    assert f"speech-dae export --model {trained} --format onnx" in err[0]
    assert not (tmp_path / "out").exists()


CASES = [(name, target) for name in sorted(MODELS) for target in MODEL_TARGETS[name]]


@pytest.mark.slow
@pytest.mark.parametrize("name, target", CASES)
def test_every_registry_model_exports_to_onnx_with_parity(name, target, tiny_cfg, tmp_path):
    """Tiny hyper-parameters of TINY_SETS; every weight (BatchNorm statistics included) randomised."""
    waveform = MODEL_FEATURES[name] == ("waveform",)
    shape = (512, 1) if waveform else (11, 40)
    keras.utils.set_random_seed(0)
    model = build_model(name, shape, target=target, **tiny_cfg.model.params_for(name))
    rng = np.random.default_rng(1)
    model.set_weights(
        [
            np.abs(w) + 0.5 if "variance" in v.path else w + 0.1 * rng.standard_normal(w.shape)
            for v, w in zip(model.weights, model.get_weights())
        ]
    )
    path = export.export_model(model, tmp_path / "model.onnx", "onnx")
    x = rng.normal(size=(64, *shape)).astype(np.float32)
    ref = np.asarray(model(x, training=False))
    got = runtimes.OnnxEngine(path, input_shape=shape)(x)
    assert got.shape == ref.shape and np.max(np.abs(got - ref)) < TOL
    assert np.std(ref) > 1e-3  # not a constant output
