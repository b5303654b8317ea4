"""Issue 16, finding 6: a run records the patch_hop it was validated with, and every inference path uses it."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import soundfile as sf
from conftest import SR, noise_clip, speech_clip, write_wav

from speech_dae.__main__ import main as cli_main
from speech_dae.artifacts import read_json
from speech_dae.inference import Denoiser
from speech_dae.runinfo import RunInfo
from speech_dae.stages.evaluate import evaluate


def _noisy() -> np.ndarray:
    return (speech_clip(1, 1.5) + 0.3 * noise_clip(2, 1.5)).astype(np.float32)


def test_the_run_records_its_hop_and_the_denoiser_uses_it_unless_told_otherwise(tiny_run):
    info = RunInfo.load(tiny_run.run_dir)
    assert info.patch_hop == tiny_run.built.cfg.reconstruct.patch_hop == 4
    assert Denoiser(tiny_run.run_dir).patch_hop == 4
    assert Denoiser(tiny_run.run_dir, patch_hop=1).patch_hop == 1


def test_speech_dae_denoise_writes_the_audio_at_the_runs_hop(tiny_run, tmp_path, capsys):
    x = _noisy()
    write_wav(tmp_path / "in" / "a.wav", x, subtype="FLOAT")
    assert cli_main(["denoise", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_run.run_dir),
                     "--no-progress"]) == 0  # fmt: skip
    y, sr = sf.read(tmp_path / "out" / "in" / "a.wav", dtype="float32")  # a folder keeps its name under -o
    assert sr == SR
    at_run_hop = Denoiser(tiny_run.run_dir)(x)
    np.testing.assert_allclose(y, at_run_hop, atol=1e-5)
    assert np.max(np.abs(y - Denoiser(tiny_run.run_dir, patch_hop=1)(x))) > 1e-4  # the hop matters here


def test_stage_05_scores_each_model_at_its_own_hop(tiny_run, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tiny_run.run_dir, a)
    shutil.copytree(tiny_run.run_dir, b)
    dataclasses.replace(RunInfo.load(b), patch_hop=1).save(b)
    x = _noisy()
    write_wav(tmp_path / "noisy" / "f.wav", x, subtype="FLOAT")
    write_wav(tmp_path / "clean" / "f.wav", speech_clip(1, 1.5), subtype="FLOAT")
    res = evaluate(
        tiny_run.built.cfg,
        out=tmp_path / "rep",
        models=[a, b],
        baselines="none",
        inputs=tmp_path / "noisy",
        clean=tmp_path / "clean",
        metrics=["si_sdr"],
        save_audio=True,
        report_examples=0,
        progress=False,
    )
    assert read_json(res.out / "summary.json")["patch_hop"] == {"a": 4, "b": 1}
    assert read_json(res.out / "summary.json")["inference"] == {"a": "patch", "b": "patch"}  # type2: fixed patches
    assert (
        "Patch models at their own patch_hop (recorded in run.json): a 4, b 1." in (res.out / "summary.md").read_text()
    )
    for run in (a, b):
        y, _ = sf.read(res.out / "audio" / run.name / "f.wav", dtype="float32")
        np.testing.assert_allclose(y, Denoiser(run)(x), atol=1e-4)


def test_a_hop_below_one_is_refused_by_every_path(tiny_run):
    """The Denoiser checks the hop, so 04 / 05 --patch-hop 0 end with one error line, not a division by zero."""
    import pytest

    from speech_dae.errors import ConfigError

    for bad in (0, -2, 1.5):
        with pytest.raises(ConfigError, match=r"patch_hop=.* must be a whole number of frames >= 1"):
            Denoiser(tiny_run.run_dir, patch_hop=bad)
