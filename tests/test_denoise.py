"""``speech-dae denoise``: block processing equals whole-file processing; formats, rates, folders, refusals."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO_ROOT, identity_run_dir, noise_clip, speech_clip, tree_checksums

from speech_dae.audio import load_audio, resample
from speech_dae.config import load_config
from speech_dae.errors import AudioError, ConfigError
from speech_dae.framing import block_plan
from speech_dae.inference import Denoiser
from speech_dae.inference.files import denoise_file, denoise_paths

keras = pytest.importorskip("keras")


def _random_run(root, feature: str, context: int):
    """A run folder whose model is a randomly initialised tiny registry model (not the identity)."""
    from speech_dae.models import build_model

    cfg = load_config(overrides=[f"features.type={feature}", "features.chunk_size=512"])
    run = identity_run_dir(root / f"{feature}_run", cfg, context=context)
    keras.utils.set_random_seed(0)
    n_bins = 1 if feature == "waveform" else (40 if feature == "fbank" else 257)
    name, hp = (
        ("conv1d_time", {"filters": [4, 4], "kernel_size": 3})
        if feature == "waveform"
        else ("type1", {"filters": [8, 4]})
    )
    build_model(name, (context, n_bins), **hp).save(run / "model.keras")
    return run


@pytest.fixture(scope="module", params=[("fbank", 11), ("waveform", 512)])
def run_dir(request, tmp_path_factory):
    return _random_run(tmp_path_factory.mktemp("den"), *request.param)


def _signal(seconds: float = 3.0) -> np.ndarray:
    n = int(seconds * 16000)
    y = np.concatenate([speech_clip(i, 1.5) for i in range(3)])[:n]
    return (0.5 * y + 0.05 * np.resize(noise_clip(0, 1.5), y.size)).astype(np.float32)


@pytest.mark.parametrize("sr_in, channels", [(16000, 1), (44100, 2)])
def test_blocks_equal_whole_file_processing(run_dir, sr_in, channels, tmp_path):
    den = Denoiser(run_dir, patch_hop=2)
    y = resample(_signal(), 16000, sr_in)
    data = np.stack([y, 0.5 * y], axis=1) if channels == 2 else y
    sf.write(tmp_path / "in.wav", data, sr_in, subtype="FLOAT")
    seconds = denoise_file(den, tmp_path / "in.wav", tmp_path / "out.wav", block_s=0.6)  # several blocks
    out, sr_out = sf.read(tmp_path / "out.wav", dtype="float32")
    assert sr_out == sr_in and out.ndim == 1 and out.size == y.size and seconds == pytest.approx(y.size / sr_in)
    x, _ = load_audio(tmp_path / "in.wav", sample_rate=16000)
    whole = resample(den(x), 16000, sr_in)
    # at the model's rate: the same frames, patches and overlap-adds; resampled inputs add the resampler's
    # block-edge rounding (measured ~3e-5, -90 dB re full scale)
    np.testing.assert_allclose(out, whole[: out.size], atol=1e-5 if sr_in == 16000 else 1e-4)
    assert np.abs(out).max() > 1e-3


def test_output_keeps_format_subtype_and_rate(run_dir, tmp_path):
    y = resample(_signal(2.0), 16000, 44100)
    sf.write(tmp_path / "in.flac", y, 44100, subtype="PCM_24")
    denoise_file(Denoiser(run_dir), tmp_path / "in.flac", tmp_path / "out.flac", block_s=0.5)
    info = sf.info(str(tmp_path / "out.flac"))
    assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == (
        "FLAC",
        "PCM_24",
        44100,
        1,
        y.size,
    )


def test_block_plan_tiles_the_signal_on_the_grid():
    plan = block_plan(1000, 256, 128, 64)
    assert [(k0, k1) for _, _, k0, k1 in plan] == [(0, 256), (256, 512), (512, 768), (768, 1000)]
    assert plan[0][:2] == (0, 384) and plan[1][:2] == (128, 640) and plan[-1][:2] == (640, 1000)
    with pytest.raises(ConfigError, match="multiples"):
        block_plan(1000, 100, 128, 64)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs") / "recordings"
    (root / "day1").mkdir(parents=True)
    sf.write(root / "a.wav", _signal(1.0), 16000, subtype="PCM_16")
    sf.write(root / "day1" / "b.flac", resample(_signal(1.2), 16000, 48000), 48000, subtype="PCM_16")
    (root / "day1" / "broken.wav").write_bytes(b"RIFF\x00\x00not audio")
    return root


def test_folders_keep_relative_paths_skip_broken_files_and_never_touch_inputs(run_dir, folder, tmp_path):
    before = tree_checksums(folder)
    s = denoise_paths(run_dir, [folder], tmp_path / "out", progress=False)
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in s.outputs) == [
        "recordings/a.wav",
        "recordings/day1/b.flac",
    ]
    assert len(s.skipped) == 1 and "broken.wav" in str(s.skipped[0][0]) and "cannot read" in s.skipped[0][1]
    assert "x real time" in s.lines()[-1] and s.lines()[0].startswith("skipped")
    assert tree_checksums(folder) == before
    with pytest.raises(AudioError, match="2 output file.*--overwrite"):
        denoise_paths(run_dir, [folder], tmp_path / "out", progress=False)
    again = denoise_paths(run_dir, [folder], tmp_path / "out", overwrite=True, progress=False)
    assert len(again.outputs) == 2


@pytest.mark.slow
def test_cli_denoises_and_reports_the_real_time_factor(run_dir, folder, tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "speech_dae",
        "denoise",
        str(folder / "a.wav"),
        "-o",
        str(tmp_path / "o"),
        "--model",
        str(run_dir),
        "--no-progress",
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "denoised 1 file(s)" in proc.stdout and "x real time" in proc.stdout
    assert (tmp_path / "o" / "a.wav").is_file()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--overwrite" in proc.stderr.strip().splitlines()[-1]
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "speech_dae",
            "denoise",
            str(folder),
            "-o",
            str(tmp_path / "m"),
            "--model",
            str(tmp_path / "nope"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2 and "03_train_autoencoder" in missing.stderr
