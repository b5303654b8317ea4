"""Mixing at a target SNR (looped / cropped noise, clipping gain), seeded offsets, splits."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import noise_clip, speech_clip

from speech_dae.errors import AudioError, ConfigError
from speech_dae.mixing import fit_noise, mix_at_snr, seeded_rng, snr_db_of, split_items


@pytest.fixture(scope="module")
def speech():
    return speech_clip(0, 1.0) * 0.5  # peak ~0.35: no clipping at moderate SNRs


def _expected_segment(noise, offset, n):
    return noise[(offset + np.arange(n)) % noise.size]


@pytest.mark.parametrize("snr", [-10.0, -5.0, 0.0, 5.0, 12.5, 20.0])
@pytest.mark.parametrize("noise_s", [0.3, 2.5], ids=["shorter-looped", "longer-cropped"])
def test_mix_hits_target_snr(speech, snr, noise_s):
    noise = noise_clip(1, noise_s)
    mix = mix_at_snr(speech, noise, snr, rng=seeded_rng(7, "t", snr, noise_s), clip_peak=0.99)
    assert mix.noisy.shape == mix.clean.shape == mix.noise.shape == speech.shape
    assert all(a.dtype == np.float32 for a in (mix.noisy, mix.clean, mix.noise))
    assert abs(snr_db_of(mix.clean, mix.noise) - snr) < 0.01
    assert abs(snr_db_of(mix.clean, mix.noisy - mix.clean) - snr) < 0.01
    np.testing.assert_allclose(mix.noisy, mix.clean + mix.noise, atol=1e-6)
    np.testing.assert_allclose(mix.clean, speech * mix.gain, atol=1e-7)
    # the noise is the recording (cropped or looped from the offset), only scaled
    seg = _expected_segment(noise, mix.noise_offset, speech.size).astype(np.float64)
    scale = np.dot(mix.noise, seg) / np.dot(seg, seg)
    assert scale > 0
    np.testing.assert_allclose(mix.noise, scale * seg, atol=1e-6 * max(1.0, scale))


def test_longer_noise_is_cropped_inside_the_recording(speech):
    noise = noise_clip(0, 2.5)
    for k in range(20):
        seg, off = fit_noise(noise, speech.size, seeded_rng(1, k))
        assert 0 <= off <= noise.size - speech.size
        np.testing.assert_array_equal(seg, noise[off : off + speech.size])


def test_shorter_noise_is_looped(speech):
    noise = noise_clip(0, 0.3)
    seg, off = fit_noise(noise, speech.size, seeded_rng(1, "loop"))
    assert seg.size == speech.size and 0 <= off < noise.size
    np.testing.assert_array_equal(seg[: noise.size - off], noise[off:])
    np.testing.assert_array_equal(seg[noise.size :], seg[: speech.size - noise.size])  # period = len(noise)


@pytest.mark.parametrize("clip_peak", [0.99, 0.5])
@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0])
def test_clipping_scales_mixture_and_target_by_the_same_gain(snr, clip_peak):
    loud = speech_clip(1, 1.0)
    loud = (0.98 * loud / np.max(np.abs(loud))).astype(np.float32)
    noise = noise_clip(2, 1.5)
    mix = mix_at_snr(loud, noise, snr, rng=seeded_rng(3, "clip"), clip_peak=clip_peak)
    assert mix.gain < 1.0, "this mixture must exceed the clip peak"
    assert np.max(np.abs(mix.noisy)) <= clip_peak + 1e-6
    assert np.max(np.abs(mix.noisy)) == pytest.approx(clip_peak, abs=1e-5)
    np.testing.assert_allclose(mix.clean, loud * mix.gain, atol=1e-6)
    np.testing.assert_allclose(mix.noisy - mix.clean, mix.noise, atol=2e-6)
    # the same mixture without a clip limit, every part scaled by one gain
    ref = mix_at_snr(loud, noise, snr, rng=seeded_rng(3, "clip"), clip_peak=1e9)
    assert ref.gain == 1.0 and ref.noise_offset == mix.noise_offset
    assert mix.gain == pytest.approx(clip_peak / np.max(np.abs(ref.noisy.astype(np.float64))), rel=1e-6)
    for part in ("noisy", "clean", "noise"):
        np.testing.assert_allclose(getattr(mix, part), getattr(ref, part) * mix.gain, atol=2e-6)
    assert abs(snr_db_of(mix.clean, mix.noisy - mix.clean) - snr) < 0.01


def test_no_gain_when_below_the_clip_peak(speech):
    mix = mix_at_snr(speech, noise_clip(0, 1.5), 20.0, rng=seeded_rng(0), clip_peak=0.99)
    assert mix.gain == 1.0
    np.testing.assert_array_equal(mix.clean, speech)


def test_seeded_offsets_are_reproducible_and_key_dependent():
    speech = speech_clip(0, 0.5)
    noise = noise_clip(1, 2.5)
    a = mix_at_snr(speech, noise, 5.0, rng=seeded_rng(1234, "offset", "utt1"))
    b = mix_at_snr(speech, noise, 5.0, rng=seeded_rng(1234, "offset", "utt1"))
    assert a.noise_offset == b.noise_offset
    np.testing.assert_array_equal(a.noisy, b.noisy)
    offsets = {
        mix_at_snr(speech, noise, 5.0, rng=seeded_rng(1234, "offset", f"utt{i}")).noise_offset for i in range(10)
    }
    assert len(offsets) > 5
    other_seed = {
        mix_at_snr(speech, noise, 5.0, rng=seeded_rng(99, "offset", f"utt{i}")).noise_offset for i in range(10)
    }
    assert offsets != other_seed


def test_seeded_rng_depends_only_on_seed_and_keys():
    first = seeded_rng(5, "x", 1).integers(0, 2**31, 4)
    seeded_rng(5, "y").integers(0, 10, 100)  # unrelated draws in between change nothing
    np.testing.assert_array_equal(seeded_rng(5, "x", 1).integers(0, 2**31, 4), first)
    assert not np.array_equal(seeded_rng(5, "x", 2).integers(0, 2**31, 4), first)


def test_undefined_snr_raises_audio_error(speech):
    with pytest.raises(AudioError, match="clean"):
        mix_at_snr(np.zeros(1000, np.float32), noise_clip(0, 0.5), 0.0, rng=seeded_rng(0))
    with pytest.raises(AudioError, match="noise"):
        mix_at_snr(speech, np.zeros(5000, np.float32), 0.0, rng=seeded_rng(0))
    with pytest.raises(AudioError, match="empty"):
        mix_at_snr(speech, np.zeros(0, np.float32), 0.0, rng=seeded_rng(0))


def test_snr_db_of_edge_cases():
    s = np.ones(10)
    assert snr_db_of(s, np.zeros(10)) == float("inf")
    assert snr_db_of(np.zeros(10), s) == float("-inf")
    assert snr_db_of(s, 0.1 * s) == pytest.approx(20.0)


# ---------------------------------------------------------------------- splits
@pytest.mark.parametrize("n", [2, 3, 5, 10, 37])
@pytest.mark.parametrize("fractions", [(0.2,), (0.2, 0.2), (0.0, 0.3), (0.1, 0.45)])
def test_split_items_partitions_the_items(n, fractions):
    items = [f"f{i}" for i in range(n)]
    groups = split_items(items, fractions, seed=1, key="k")
    assert len(groups) == len(fractions) + 1
    flat = [x for g in groups for x in g]
    assert sorted(flat) == sorted(items), "every item in exactly one group"
    if n > sum(f > 0 for f in fractions):
        for f, g in zip(fractions, groups[1:]):
            assert (len(g) >= 1) if f > 0 else (len(g) == 0)
        assert len(groups[0]) >= 1


def test_split_items_is_seeded_and_keyed():
    items = list(range(30))
    a = split_items(items, [0.2, 0.2], seed=1, key="clean")
    assert a == split_items(items, [0.2, 0.2], seed=1, key="clean")
    assert a != split_items(items, [0.2, 0.2], seed=1, key="noise")
    assert a != split_items(items, [0.2, 0.2], seed=2, key="clean")


def test_split_items_refuses_fractions_that_leave_nothing_for_training():
    with pytest.raises(ConfigError, match="add up to 1.2"):
        split_items(list(range(10)), [0.6, 0.6], seed=1)


def test_split_items_groups_never_overlap_and_keep_a_training_item():
    items = list(range(3))
    groups = split_items(items, [0.45, 0.45], seed=1)
    flat = [x for g in groups for x in g]
    assert sorted(flat) == items and len(groups[0]) >= 1, groups
