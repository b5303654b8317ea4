"""Augmentation of dynamic mixing (issue 18): each augmentation, the SNR rule, determinism, the config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.signal

from speech_dae.config import AugmentConfig, FeatureConfig, TrainingConfig, config_from_dict, load_config
from speech_dae.degrade import lowpass_sos
from speech_dae.errors import ConfigError
from speech_dae.features import FeatureExtractor
from speech_dae.mixing import peak_gain
from speech_dae.training.augment import (
    EARLY_S,
    Augmenter,
    Parts,
    colored_noise,
    eq_sos,
    hum,
    rir_bank,
)
from speech_dae.training.examples import AudioPool, MixtureBatches

SR = 16000
N = 8833  # samples of one training segment of the best recipe (64 frames, hop 128)


def _psd(x: np.ndarray, nperseg: int = 1024):
    """Welch power spectral density, averaged over the rows of ``x``."""
    f, p = scipy.signal.welch(np.atleast_2d(x), fs=SR, nperseg=nperseg, axis=-1)
    return f, p.mean(axis=0)


def _sine(freq: float, seconds: float = 3.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def _white(seed: int, seconds: float, *, below_hz: float | None = 6000.0) -> np.ndarray:
    """Stationary noise (band-limited below ``below_hz``, so that a faster speed keeps its power)."""
    x = np.random.default_rng(seed).standard_normal(int(seconds * SR))
    if below_hz:
        x = scipy.signal.sosfiltfilt(scipy.signal.butter(8, below_hz, fs=SR, output="sos"), x)
    return (0.1 * x / np.std(x)).astype(np.float32)


def _parts(speech: AudioPool, noise: AudioPool, utterance, start, recording=None, n: int = N) -> Parts:
    """A batch of unaugmented parts, cut as dynamic mixing cuts them."""
    utterance, start = np.asarray(utterance, np.int64), np.asarray(start, np.int64)
    recording = np.zeros_like(utterance) if recording is None else np.asarray(recording, np.int64)
    clean = speech.segments(utterance, start, n)
    piece = noise.segments(recording, np.zeros_like(recording), n, wrap=True)
    return Parts(clean, clean, piece, speech.power[utterance], noise.power[recording], utterance, start, recording)


def _augment(cfg: AugmentConfig, parts: Parts, speech: AudioPool, noise: AudioPool, *, seed: int = 1, **kw) -> Parts:
    rngs = [np.random.default_rng([seed, k]) for k in range(parts.speech.shape[0])]
    for r in rngs:
        r.random(6)  # what plain dynamic mixing draws first
    return Augmenter(cfg, SR, seed, **kw)(parts, rngs, speech, noise)


def _plan(pools: dict, augment: dict | None = None, *, seed: int = 7, **training) -> MixtureBatches:
    """A :class:`MixtureBatches` over in-memory pools, as ``mixture_sequences`` sets one up."""
    t = TrainingConfig(
        epochs=1,
        batch_size=64,
        learning_rate=1e-3,
        patience=1,
        loss="mse",
        mixing="dynamic",
        augment=augment or {},
        **training,
    )
    fcfg = FeatureConfig("logmag", 512, 128, 512, "hann", 1e-8, 64, 400, 0.0, None, 0.0)
    plan = MixtureBatches()
    plan.seed = seed
    plan._setup(pools, FeatureExtractor(fcfg, SR), None, context=64, t=t, spectral=False, table=None, clip_peak=0.99)
    return plan


def _plain_dynamic_draw(plan: MixtureBatches, keys: np.ndarray):
    """The dynamic branch of ``MixtureBatches._draw`` as it was before augmentation (the reference)."""
    n = plan.n_samples
    u = np.stack([np.random.default_rng([plan.seed, int(k)]).random(6) for k in keys])
    speech, noise = plan.audio["clean"], plan.audio["noise"]
    ci, ni = (u[:, 0] * len(speech)).astype(np.int64), (u[:, 2] * len(noise)).astype(np.int64)
    clean = speech.segments(ci, (u[:, 1] * np.maximum(speech.lengths[ci] - n, 1)).astype(np.int64), n)
    piece = noise.segments(ni, (u[:, 3] * noise.lengths[ni]).astype(np.int64), n, wrap=True)
    lo, hi = plan.snr_range
    snr_db = lo + (hi - lo) * u[:, 4]
    scale = np.sqrt(speech.power[ci] / (noise.power[ni] * 10.0 ** (snr_db / 10.0)))
    gain = 10.0 ** ((2.0 * u[:, 5] - 1.0) * plan.gain_db / 20.0)
    noisy = clean + scale[:, None] * piece
    gain = gain * peak_gain(np.max(np.abs(noisy), axis=1) * gain, plan.clip_peak)
    return (noisy * gain[:, None]).astype(np.float32), (clean * gain[:, None]).astype(np.float32)


@pytest.fixture(scope="module")
def pools():
    rng = np.random.default_rng(3)
    speech = [_white(i, rng.uniform(1.0, 3.0)) for i in range(6)]
    noise = [_white(100 + i, rng.uniform(0.5, 2.0), below_hz=None) * (i + 1) for i in range(4)]
    return {"clean": AudioPool(speech), "noise": AudioPool(noise)}


# ------------------------------------------------------------------------------------------------ config
def test_augmentation_is_off_by_default_and_set_with_dotted_keys():
    cfg = load_config()
    assert cfg.training.augment == AugmentConfig() and not cfg.training.augment.active
    on = load_config(overrides=["training.augment.speed=0.5", "training.augment.bandlimit_hz=[3000, 6000]"])
    assert (on.training.augment.speed, on.training.augment.bandlimit_hz) == (0.5, (3000.0, 6000.0))
    assert on.training.augment.active
    data = json.loads(json.dumps(on.to_dict()))  # what run.json stores under "training"
    assert data["training"]["augment"]["speed"] == 0.5 and data["training"]["augment"]["babble_talkers"] == [3, 7]
    assert config_from_dict(data) == on
    assert on.replace(**{"training.augment.eq": 0.25}).training.augment.eq == 0.25


@pytest.mark.parametrize(
    "augment, message",
    [
        ({"sped": 0.5}, "unknown key.*sped in training.augment"),
        ({"speed": 1.5}, r"training.augment.speed=1.5 is a probability"),
        ({"babble": -0.1}, r"training.augment.babble=-0.1 is a probability"),
        ({"eq": True}, r"training.augment.eq=True is a probability"),
        ({"remix": "often"}, "training.augment.remix='often' is a probability"),
        ({"speed_range": [1.1, 0.9]}, r"speed_range=\[1.1, 0.9\] must be \[low, high\]"),
        ({"speed_range": [0.2, 1.0]}, r"speed_range=.*0.5 <= low <= high <= 2"),
        ({"reverb_rt60": [0.3]}, r"reverb_rt60=\[0.3\] must be \[low, high\]"),
        ({"bandlimit_hz": [100, 4000]}, r"bandlimit_hz=.*500 <= low"),
        ({"babble_talkers": [3.5, 7]}, r"babble_talkers=\[3.5, 7\] must be \[low, high\] whole numbers"),
        ({"babble_talkers": [0, 3]}, "1 <= low <= high <= 16"),
        ({"eq_gain_db": 0}, r"eq_gain_db=0 must be in \(0, 24\]"),
        (0.5, "training.augment=0.5 must be a mapping"),
    ],
)
def test_config_rejects_bad_augment_values(augment, message):
    with pytest.raises(ConfigError, match=message):
        TrainingConfig(epochs=1, batch_size=8, learning_rate=1e-3, patience=1, loss="mse", augment=augment)


def test_config_rejects_unknown_augment_keys_from_set_and_files(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'training.augment.sped'"):
        load_config(overrides=["training.augment.sped=0.5"])
    user = tmp_path / "user.yaml"
    user.write_text("training:\n  augment:\n    sped: 0.5\n")
    with pytest.raises(ConfigError, match="unknown config key 'training.augment.sped'"):
        load_config(user)


def test_cutoffs_must_lie_below_the_nyquist_frequency():
    with pytest.raises(ConfigError, match=r"bandlimit_hz=\[3500.0, 7500.0\].*8000 Hz.*below 3800 Hz"):
        Augmenter(AugmentConfig(bandlimit=0.5), 8000, 1)
    Augmenter(AugmentConfig(bandlimit=0.0), 8000, 1)  # off: the range does not matter


# ------------------------------------------------------------------------------------------------ filters and noises
def test_eq_biquads_have_the_cookbook_gains():
    """Peaking: the gain at its centre; shelves: the gain on the shelf, half of it (in dB) at the corner."""
    kinds, freqs = [0, 1, 2, 1], [300.0, 1000.0, 4000.0, 2500.0]
    gains, q = [6.0, -5.0, 4.0, 3.0], [0.7, 1.5, 0.7, 0.5]
    sos = eq_sos(kinds, freqs, gains, q, SR)
    assert sos.shape == (4, 6) and np.allclose(sos[:, 3], 1.0)

    def db(s, f):
        return 20 * np.log10(np.abs(scipy.signal.sosfreqz(s[None], worN=[f], fs=SR)[1][0]))

    assert db(sos[1], 1000.0) == pytest.approx(-5.0, abs=1e-6)
    assert db(sos[3], 2500.0) == pytest.approx(3.0, abs=1e-6)
    assert db(sos[1], 20.0) == pytest.approx(0.0, abs=0.05) and db(sos[1], 7900.0) == pytest.approx(0.0, abs=0.05)
    assert db(sos[0], 1e-3) == pytest.approx(6.0, abs=1e-3) and db(sos[0], 7999.0) == pytest.approx(0.0, abs=0.01)
    assert db(sos[0], 300.0) == pytest.approx(3.0, abs=1e-6)
    assert db(sos[2], 7999.999) == pytest.approx(4.0, abs=1e-3) and db(sos[2], 1e-3) == pytest.approx(0.0, abs=1e-3)
    assert db(sos[2], 4000.0) == pytest.approx(2.0, abs=1e-6)


def test_the_lowpass_removes_the_energy_above_its_cutoff():
    x = np.random.default_rng(0).standard_normal((4, SR))
    y = scipy.signal.sosfilt(lowpass_sos(4000.0, SR), x, axis=-1)
    f, p = _psd(y)
    passband = p[(f > 200) & (f < 3000)].mean()
    assert 10 * np.log10(p[f >= 4100].max() / passband) < -55
    _, p0 = _psd(x)
    ratio = p[(f > 200) & (f < 3000)] / p0[(f > 200) & (f < 3000)]
    assert np.all(np.abs(10 * np.log10(ratio)) < 0.5)  # the band below is kept


@pytest.mark.parametrize("exponent, slope_db", [(0, 0.0), (1, -3.01), (2, -6.02)])
def test_colored_noise_has_its_spectral_slope(exponent, slope_db):
    rng = np.random.default_rng(exponent)
    m = 1 << 14
    spectrum = rng.standard_normal((32, m // 2 + 1)) + 1j * rng.standard_normal((32, m // 2 + 1))
    x = colored_noise(spectrum, m, np.full(32, exponent), SR)
    np.testing.assert_allclose(np.mean(x**2, axis=1), 1.0, rtol=1e-9)
    f, p = _psd(x, nperseg=4096)
    band = (f >= 100) & (f <= 6000)
    per_octave = np.polyfit(np.log2(f[band]), 10 * np.log10(p[band]), 1)[0]
    assert per_octave == pytest.approx(slope_db, abs=0.3)


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_hum_is_the_mains_frequency_and_its_harmonics(mains):
    x = hum(np.random.default_rng(0), SR, SR, mains)
    assert np.mean(x**2) == pytest.approx(1.0)
    power = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2  # 1 Hz bins
    harmonics = np.arange(mains, 0.45 * SR, mains).astype(int)[:20]
    near = np.zeros(power.size, bool)
    for h in harmonics:
        near[h - 3 : h + 4] = True
    assert power[near].sum() / power.sum() > 0.999  # nothing between the harmonics
    assert power[int(mains) - 1 : int(mains) + 2].sum() / power.sum() > 0.01  # the fundamental is there
    peaks = [power[h - 1 : h + 2].sum() for h in harmonics[:5]]
    assert min(peaks) > 1e-6 * power.sum()  # and the first harmonics


def test_rir_bank_is_seeded_aligned_and_early_is_its_start():
    a, b = rir_bank(5, SR, 3, (0.3, 0.6)), rir_bank(5, SR, 3, (0.3, 0.6))
    assert a is b  # built once per process
    c = rir_bank(6, SR, 3, (0.3, 0.6))
    assert not np.array_equal(a.full[0][:1000], c.full[0][:1000])
    assert a.full.shape[0] == 3 and np.all((a.rt60 >= 0.3) & (a.rt60 <= 0.6))
    np.testing.assert_allclose(np.sum(a.full**2, axis=1), 1.0)
    # the direct path at `lead`: a peak there (a reflection may be louder later), little before it
    assert np.all(np.argmax(np.abs(a.full[:, a.lead - 3 : a.lead + 4]), axis=1) == 3)
    assert np.all(np.sum(a.full[:, : a.lead - 5] ** 2, axis=1) < 0.01)
    assert a.early.shape[1] == a.lead + round(EARLY_S * SR)
    np.testing.assert_array_equal(a.early, a.full[:, : a.early.shape[1]])


def test_an_impossible_reverberation_time_is_a_config_error():
    with pytest.raises(ConfigError, match=r"reverb_rt60=\[0.05, 0.06\]: too few rooms.*raise the lower end"):
        rir_bank(1, SR, 2, (0.05, 0.06))


# ------------------------------------------------------------------------------------------------ each augmentation
def test_speed_changes_pitch_and_tempo_by_its_factor_and_nothing_else():
    speech, noise = AudioPool([_sine(400.0)]), AudioPool([_white(0, 1.0)])
    parts = _parts(speech, noise, [0, 0], [10000, 20000])
    out = _augment(AugmentConfig(speed=1.0, speed_range=(1.1, 1.1)), parts, speech, noise)
    t = np.arange(N)
    for b in range(2):  # output sample t is the utterance at start + 1.1 t: a 440 Hz sine
        expected = 0.5 * np.sin(2 * np.pi * 400.0 * (parts.start[b] + 1.1 * t) / SR)
        np.testing.assert_allclose(out.speech[b, 100:-100], expected[100:-100], atol=0.02)
    np.testing.assert_array_equal(out.target, out.speech)
    np.testing.assert_array_equal(out.noise, parts.noise)
    np.testing.assert_array_equal(out.speech_power, parts.speech_power)  # speed keeps the level
    # tempo: two clicks 4400 samples apart come 4000 apart
    clicks = np.zeros(3 * SR, np.float32)
    clicks[[20000, 24400]] = 1.0
    pool = AudioPool([clicks])
    out = _augment(AugmentConfig(speed=1.0, speed_range=(1.1, 1.1)), _parts(pool, noise, [0], [19000]), pool, noise)
    peaks = np.sort(np.argsort(out.speech[0])[-2:])
    assert np.diff(peaks)[0] == pytest.approx(4000, abs=1)


def test_reverb_input_is_the_whole_rir_and_target_its_early_part():
    click = np.zeros(3 * SR, np.float32)
    click[24000] = 1.0
    speech, noise = AudioPool([click]), AudioPool([_white(0, 1.0)])
    parts = _parts(speech, noise, [0, 0, 0], [23000, 23000, 23000])  # the click at sample 1000 of each segment
    cfg = AugmentConfig(reverb=1.0, reverb_rt60=(0.3, 0.5))
    out = _augment(cfg, parts, speech, noise, rir_count=3)
    bank = rir_bank(1, SR, 3, (0.3, 0.5))
    for b in range(3):
        seg = out.speech[b, 1000 - bank.lead :]
        length = min(seg.size, bank.full.shape[1])
        match = [i for i in range(3) if np.allclose(seg[:length], bank.full[i, :length], atol=2e-6)]
        assert len(match) == 1  # the speech is the click convolved with one room of the bank, direct path in place
        early = bank.early[match[0]]
        np.testing.assert_allclose(out.target[b, 1000 - bank.lead : 1000 - bank.lead + early.size], early, atol=2e-6)
        assert np.abs(out.target[b, 1000 - bank.lead + early.size :]).max() < 1e-5  # nothing after 50 ms
        assert np.abs(out.target[b, : 1000 - bank.lead]).max() < 1e-5
        assert np.sum(out.speech[b, 1000 - bank.lead + early.size :] ** 2) > 1e-3  # the input keeps the tail
    np.testing.assert_array_equal(out.noise, parts.noise)
    # the SNR's speech power follows the segment's level change
    np.testing.assert_allclose(
        out.speech_power, parts.speech_power * np.mean(out.speech**2, axis=1) / np.mean(parts.speech**2, axis=1)
    )


def test_bandlimit_lowpasses_speech_target_and_noise_and_corrects_the_powers():
    speech, noise = AudioPool([_white(1, 3.0, below_hz=None)]), AudioPool([_white(2, 2.0, below_hz=None)])
    parts = _parts(speech, noise, [0] * 8, np.arange(8) * 3000)
    out = _augment(AugmentConfig(bandlimit=1.0, bandlimit_hz=(4000.0, 4000.0)), parts, speech, noise)
    np.testing.assert_array_equal(out.target, out.speech)  # the target is the band-limited speech
    for x in (out.speech, out.noise):
        f, p = _psd(x[:, 2000:])  # past the filter's start-up
        assert 10 * np.log10(p[f >= 4100].max() / p[(f > 200) & (f < 3000)].mean()) < -50
    for after, before, power, power0 in (
        (out.speech, parts.speech, out.speech_power, parts.speech_power),
        (out.noise, parts.noise, out.noise_power, parts.noise_power),
    ):
        ratio = np.mean(after**2, axis=1) / np.mean(before.astype(np.float64) ** 2, axis=1)
        np.testing.assert_allclose(power / power0, ratio)
        assert np.all((ratio > 0.35) & (ratio < 0.5))  # white noise cut at 4 of 8 kHz (-3 dB at ~3.65 kHz)


def test_eq_changes_speech_and_noise_with_separate_draws():
    speech, noise = AudioPool([_white(1, 3.0, below_hz=None)]), AudioPool([_white(2, 2.0, below_hz=None)])
    parts = _parts(speech, noise, [0] * 6, np.arange(6) * 5000)
    out = _augment(AugmentConfig(eq=1.0, eq_gain_db=6.0), parts, speech, noise)
    np.testing.assert_array_equal(out.target, out.speech)
    f, _ = _psd(out.speech[0])
    responses = []
    for after, before in ((out.speech, parts.speech), (out.noise, parts.noise)):
        for b in range(6):
            gain_db = 10 * np.log10(_psd(after[b])[1] / _psd(before[b])[1])[(f > 100) & (f < 6000)]
            assert np.abs(gain_db).max() < 3 * 6.0 + 1.5  # at most 3 bands of +-6 dB (plus estimation noise)
            assert np.ptp(gain_db) > 1.0  # a coloration, not only a level
            responses.append(gain_db)
    assert not np.allclose(responses[0], responses[6], atol=1.0)  # the noise has its own EQ
    ratio = np.mean(out.noise**2, axis=1) / np.mean(parts.noise.astype(np.float64) ** 2, axis=1)
    np.testing.assert_allclose(out.noise_power / parts.noise_power, ratio)


def test_babble_is_other_utterances_never_the_own_one():
    freqs = 250.0 * np.arange(1, 11)  # utterance i is a sine at 250 (i + 1) Hz
    speech = AudioPool([_sine(f) for f in freqs])
    noise = AudioPool([_white(0, 1.0)])
    utterance = np.arange(10)
    parts = _parts(speech, noise, utterance, np.full(10, 1000))
    out = _augment(AugmentConfig(babble=1.0, babble_talkers=(3, 7)), parts, speech, noise)
    np.testing.assert_array_equal(out.speech, parts.speech)  # the speech is untouched
    t = np.arange(N) / SR
    for b in range(10):
        level = np.array(
            [
                np.hypot(*(2 * out.noise[b] @ np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)]).T / N))
                for f in freqs
            ]
        )
        talkers = np.flatnonzero(level > 1e-3)
        assert b not in talkers  # no sample of the own utterance
        assert 3 <= talkers.size <= 7
        # each talker at unit utterance power times a level of 0..-10 dB; the SNR's noise power is their sum
        unit = level[talkers] / np.sqrt(2.0)  # a sine's rms is its amplitude / sqrt(2)
        assert np.all((unit > 10 ** (-10.5 / 20)) & (unit < 1.01))
        assert out.noise_power[b] == pytest.approx(np.sum(unit**2), rel=0.02)


def test_synthetic_noise_replaces_the_recording():
    speech, noise = AudioPool([_white(1, 3.0)]), AudioPool([_sine(1234.0)])
    parts = _parts(speech, noise, [0] * 40, np.arange(40) * 500)
    out = _augment(AugmentConfig(synthetic=1.0), parts, speech, noise)
    np.testing.assert_array_equal(out.speech, parts.speech)
    np.testing.assert_allclose(out.noise_power, np.mean(out.noise**2, axis=1))
    f, _ = _psd(out.noise[0])
    kinds = set()
    for x in out.noise:
        _, p = _psd(x)
        assert p[np.abs(f - 1234.0) < 20].sum() < 0.5 * p.sum()  # not the recording's tone
        low = p[(f > 40) & (f < 70)].sum() / p.sum()
        slope = np.polyfit(np.log2(f[(f > 200) & (f < 6000)]), 10 * np.log10(p[(f > 200) & (f < 6000)]), 1)[0]
        kinds.add("hum" if low > 0.3 else "white" if slope > -1.5 else "pink" if slope > -4.5 else "brown")
    assert kinds == {"white", "pink", "brown", "hum"}


def test_remix_adds_a_second_recording_at_its_relative_level():
    speech = AudioPool([_white(1, 3.0)])
    noise = AudioPool([_sine(300.0), 3 * _sine(2000.0)])
    parts = _parts(speech, noise, [0, 0], [0, 100], recording=[0, 1])
    out = _augment(AugmentConfig(remix=1.0, remix_db=(-6.0, -6.0)), parts, speech, noise)
    added = out.noise - parts.noise
    for b, other in enumerate((2000.0, 300.0)):  # each example's recording is the other's tone
        f, p = _psd(added[b], nperseg=2048)
        assert f[np.argmax(p)] == pytest.approx(other, abs=10)  # the other recording
        rel = np.mean(added[b] ** 2) / np.mean(parts.noise[b].astype(np.float64) ** 2)
        assert 10 * np.log10(rel) == pytest.approx(-6.0, abs=0.1)
    np.testing.assert_allclose(out.noise_power, parts.noise_power * (1 + 10**-0.6))


def test_nothing_drawn_means_nothing_changed():
    speech, noise = AudioPool([_white(1, 3.0)]), AudioPool([_white(2, 1.0)])
    parts = _parts(speech, noise, [0] * 4, np.arange(4) * 1000)
    tiny = AugmentConfig(**{name: 1e-12 for name in ("speed", "eq", "bandlimit", "synthetic", "babble", "remix")})
    assert _augment(tiny, parts, speech, noise) is parts


# ------------------------------------------------------------------------------------------------ in _draw
def test_all_off_draws_are_bit_identical_to_plain_dynamic_mixing(pools):
    keys = np.arange(40)
    plan = _plan(pools)
    assert plan.augmenter is None
    for new, old in zip(plan._draw(keys), _plain_dynamic_draw(plan, keys)):
        np.testing.assert_array_equal(new, old)
    never = _plan(pools, {"eq": 1e-12, "remix": 1e-12})  # active, but no example draws an augmentation
    assert never.augmenter is not None
    for new, old in zip(never._draw(keys), _plain_dynamic_draw(plan, keys)):
        np.testing.assert_array_equal(new, old)


ALL_BUT_REVERB = {"speed": 1.0, "eq": 1.0, "bandlimit": 1.0, "synthetic": 0.5, "babble": 0.3, "remix": 0.5}


def test_augmented_draws_are_a_function_of_seed_and_key(pools):
    keys = np.array([5, 17, 300, 4])
    a = _plan(pools, ALL_BUT_REVERB)._draw(keys)
    b = _plan(pools, ALL_BUT_REVERB)._draw(keys)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    single = _plan(pools, ALL_BUT_REVERB)._draw(keys[2:3])  # an example does not depend on its batch
    np.testing.assert_array_equal(single[0][0], a[0][2])
    other = _plan(pools, ALL_BUT_REVERB, seed=8)._draw(keys)
    assert not np.allclose(other[0], a[0])
    plain = _plan(pools)._draw(keys)
    assert not np.allclose(plain[1], a[1])  # and the augmentation did change the examples


def test_augmented_mixtures_keep_the_drawn_snr(pools):
    """Stationary speech and noise: the SNR of each augmented mixture is the drawn one."""
    plan = _plan(pools, ALL_BUT_REVERB, snr_range=(5.0, 5.0), gain_db=0.0)
    noisy, clean = plan._draw(np.arange(48))
    snr = 10 * np.log10(np.sum(clean.astype(np.float64) ** 2, axis=1) / np.sum((noisy - clean) ** 2.0, axis=1))
    np.testing.assert_allclose(snr, 5.0, atol=0.4)


def test_only_dynamic_training_examples_are_augmented(pools):
    assert _plan(pools, ALL_BUT_REVERB).augmenter is not None
    fixed = {"noisy": pools["clean"], "clean": pools["clean"]}
    assert _plan(fixed, ALL_BUT_REVERB).augmenter is None  # fixed mixing (and validation) pools


def test_training_examples_of_a_built_dataset_with_every_augmentation(built):
    """The whole path of stage 03: ``mixture_sequences`` over the stage-01 audio, features, targets."""
    from conftest import TINY_SETS

    from speech_dae.artifacts import read_json
    from speech_dae.training.examples import mixture_sequences

    sets = [f"training.augment.{k}={v}" for k, v in {**ALL_BUT_REVERB, "reverb": 0.5}.items()]
    cfg = load_config(overrides=[*TINY_SETS, "training.mixing=dynamic", *sets])
    info = read_json(built.dataset / "dataset.json")
    train, val, _ = mixture_sequences(built.dataset, info, cfg.training, cfg.seed)
    assert train.augmenter is not None and val.augmenter is None
    x, y = train.examples(np.arange(16))
    assert x.shape == y.shape == (16, info["context"], x.shape[2]) and np.isfinite(x).all() and np.isfinite(y).all()
    plain = mixture_sequences(
        built.dataset, info, load_config(overrides=[*TINY_SETS, "training.mixing=dynamic"]).training, cfg.seed
    )[0]
    assert not np.allclose(plain.examples(np.arange(16))[1], y)
