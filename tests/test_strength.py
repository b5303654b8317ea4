"""Strength control: the attenuation limit (``atten_lim_db``) of the inverse, the Denoiser, stage 04 and denoise."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SR, identity_run_dir, noise_clip, speech_clip

from speech_dae.config import load_config
from speech_dae.errors import ConfigError
from speech_dae.features import FeatureExtractor
from speech_dae.inference import Denoiser
from speech_dae.inference.engine import attenuation_floor


def _noisy() -> np.ndarray:
    return (speech_clip(0, 1.0) + 0.3 * noise_clip(1, 1.0)).astype(np.float32)


def test_attenuation_floor_is_the_gain_of_the_limit():
    assert attenuation_floor(None) is None
    assert attenuation_floor(0) == 1.0
    assert attenuation_floor(20) == pytest.approx(0.1)
    assert attenuation_floor(6.0206) == pytest.approx(0.5, rel=1e-4)
    for bad in (-3, float("nan"), "loud"):
        with pytest.raises(ConfigError, match="atten_lim_db"):
            attenuation_floor(bad)


@pytest.mark.parametrize("feature", ["logmag", "fbank", "logmel", "power"])
def test_a_silencing_estimate_comes_out_at_the_limit(feature):
    """Features of silence (gain 0 everywhere) with a 20 dB limit give the noisy input 20 dB down, exactly."""
    fx = FeatureExtractor(load_config(overrides=[f"features.type={feature}"]).features, SR)
    x = _noisy()
    silence = fx(np.zeros_like(x))
    free = fx.to_audio(silence, x)
    limited = fx.to_audio(silence, x, min_gain=0.1)
    assert np.sqrt(np.mean(free**2)) < 0.02 * np.sqrt(np.mean(x**2))  # without a limit: (almost) nothing left
    np.testing.assert_allclose(limited, 0.1 * fx.istft(fx.stft(x), length=x.size), atol=1e-5)


def test_the_limit_changes_nothing_where_the_gain_is_above_it():
    fx = FeatureExtractor(load_config(overrides=["features.type=logmag"]).features, SR)
    x = _noisy()
    same = fx.to_audio(fx(x), x)  # gain 1 everywhere
    np.testing.assert_allclose(fx.to_audio(fx(x), x, min_gain=0.1), same, atol=1e-6)


def test_waveform_runs_mix_the_input_back_in():
    fx = FeatureExtractor(load_config(overrides=["features.type=waveform"]).features, SR)
    x = _noisy()
    est = np.zeros((x.size, 1), np.float32)
    np.testing.assert_allclose(fx.to_audio(est, x, min_gain=0.25), 0.25 * x, atol=1e-7)


def test_denoiser_and_stream_apply_the_same_limit(tmp_path, tiny_cfg):
    run = identity_run_dir(tmp_path / "ident", tiny_cfg)
    den = Denoiser(run, atten_lim_db=12.0)
    assert den.min_gain == pytest.approx(10 ** (-12 / 20))
    x = _noisy()
    offline = den(x)
    np.testing.assert_allclose(offline, Denoiser(run)(x), atol=1e-5)  # identity: gain 1, above any floor
    blocks = [den.process_block(b) for b in np.array_split(x, 7)]
    np.testing.assert_allclose(np.concatenate([*blocks, den.flush()]), offline, atol=1e-5)


def test_a_trained_model_is_held_at_the_limit(tiny_run):
    """The tiny run removes up to ~0.7 dB of a frame's energy; a 0.5 dB limit keeps every frame within it."""
    x = _noisy()
    den = Denoiser(tiny_run.run_dir)
    Sx = np.sum(np.abs(den.fx.stft(x)) ** 2, axis=1)

    def frame_ratio(y):
        return np.sum(np.abs(den.fx.stft(y)) ** 2, axis=1) / np.maximum(Sx, 1e-12)

    assert np.min(frame_ratio(den(x))) < 10 ** (-0.6 / 10)  # without a limit, some frame loses more
    # the ISTFT / STFT round trip mixes neighbouring frames a little: 0.1 dB of slack
    assert np.min(frame_ratio(Denoiser(tiny_run.run_dir, atten_lim_db=0.5)(x))) > 10 ** (-0.6 / 10)


def test_config_rejects_a_negative_limit():
    with pytest.raises(ConfigError, match=r"reconstruct.atten_lim_db=-1(\.0)? must be >= 0 dB"):
        load_config(overrides=["reconstruct.atten_lim_db=-1"])
    assert load_config(overrides=["reconstruct.atten_lim_db=12"]).reconstruct.atten_lim_db == 12


def test_denoise_cli_takes_the_limit_and_refuses_a_negative_one(tiny_run, tmp_path, capsys):
    from conftest import write_wav

    from speech_dae.__main__ import main as cli_main

    x = _noisy()
    write_wav(tmp_path / "in.wav", x, subtype="FLOAT")
    base = ["denoise", str(tmp_path / "in.wav"), "--model", str(tiny_run.run_dir), "--no-progress"]
    assert cli_main([*base, "-o", str(tmp_path / "out"), "--atten-lim-db", "0.5"]) == 0
    import soundfile as sf

    y, _ = sf.read(tmp_path / "out" / "in.wav", dtype="float32")
    np.testing.assert_allclose(y, Denoiser(tiny_run.run_dir, atten_lim_db=0.5)(x), atol=1e-5)
    capsys.readouterr()
    assert cli_main([*base, "-o", str(tmp_path / "bad"), "--atten-lim-db", "-3"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error: atten_lim_db=-3.0 must be >= 0 dB")
