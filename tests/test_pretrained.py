"""The pretrained default model shipped in the package: it loads without a path and denoises unseen speech."""

from __future__ import annotations

import numpy as np
import soundfile as sf
from conftest import DATA_SAMPLE, write_wav

from speech_dae.inference import Denoiser
from speech_dae.inference.engine import PRETRAINED
from speech_dae.metrics import si_sdr
from speech_dae.mixing import mix_at_snr, seeded_rng
from speech_dae.runinfo import RunInfo


def _test_mixtures(n: int = 3, snr_db: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` data_sample/test mixtures (a speaker and noises the model never trained on) at ``snr_db``."""
    cleans = sorted((DATA_SAMPLE / "test" / "clean").glob("*.wav"))[:n]
    noises = sorted((DATA_SAMPLE / "test" / "noise").glob("*.wav"))
    out = []
    for k, path in enumerate(cleans):
        clean, _ = sf.read(path, dtype="float32")
        noise, _ = sf.read(noises[k % len(noises)], dtype="float32")
        mix = mix_at_snr(clean, noise, snr_db, rng=seeded_rng(0, "pretrained", k))
        out.append((mix.noisy, mix.clean))
    return out


def test_the_pretrained_model_is_in_the_package_with_its_credits():
    info = RunInfo.load(PRETRAINED)
    assert (info.model, info.feature, info.target, info.sample_rate) == ("tcn", "logmag", "mask", 16000)
    credits = (PRETRAINED / "CREDITS.md").read_text()
    assert "CC-BY-SA-3.0" in credits and "03_train_autoencoder.py --config configs/best.yaml" in credits
    assert sum(p.stat().st_size for p in PRETRAINED.iterdir()) < 5e6  # a few MB


def test_denoiser_without_a_path_loads_it_and_improves_si_sdr_on_unseen_speech():
    den = Denoiser()
    assert den.run_dir == PRETRAINED and den.patch_hop == 32
    gains = [si_sdr(clean, den(noisy)) - si_sdr(clean, noisy) for noisy, clean in _test_mixtures()]
    print("SI-SDR gains at 0 dB:", np.round(gains, 2))
    assert min(gains) > 3.0 and np.mean(gains) > 5.0


def test_speech_dae_denoise_uses_it_when_no_model_is_given(tmp_path):
    from speech_dae.__main__ import main as cli_main

    noisy, clean = _test_mixtures(1, snr_db=5.0)[0]
    write_wav(tmp_path / "noisy.wav", noisy, subtype="FLOAT")
    assert cli_main(["denoise", str(tmp_path / "noisy.wav"), "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    y, _ = sf.read(tmp_path / "out" / "noisy.wav", dtype="float32")
    assert si_sdr(clean, y) > si_sdr(clean, noisy) + 3.0
