"""Streaming (``Denoiser.process_block`` / ``flush``): equals offline processing, stated latency, bounded state."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import identity_run_dir, noise_clip, speech_clip

from speech_dae.config import load_config
from speech_dae.errors import AudioError
from speech_dae.inference import Denoiser

keras = pytest.importorskip("keras")


def _run(
    root,
    feature: str = "logmag",
    *,
    target: str = "mapping",
    context: int | None = None,
    random: bool = True,
    sets: tuple = (),
):
    """A run folder: a randomly initialised tiny registry model (or the identity), with ``run.json`` to match."""
    from speech_dae.models import build_model

    context = context or (512 if feature == "waveform" else 11)
    cfg = load_config(overrides=[f"features.type={feature}", "features.chunk_size=512", *sets])
    run = identity_run_dir(root / f"{feature}_{target}_{context}", cfg, context=context)
    if random:
        keras.utils.set_random_seed(0)
        n_bins = json.loads((run / "run.json").read_text())["n_bins"]
        if feature == "waveform":  # dense over the whole chunk (conv1d_time only sees a few samples around each)
            inp = keras.Input((context, 1))
            out = keras.layers.Reshape((context, 1))(keras.layers.Dense(context)(keras.layers.Flatten()(inp)))
            model = keras.Model(inp, out)
        else:  # type2: dense over the whole patch, so every frame of a patch matters
            model = build_model("type2", (context, n_bins), target=target, units=[16, 8], dropout=0.0)
        model.save(run / "model.keras")
        info = json.loads((run / "run.json").read_text())
        (run / "run.json").write_text(json.dumps({**info, "target": target}))
    return run


def _signal(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    n = int(seconds * 16000)
    y = np.concatenate([speech_clip(i + seed, 1.0) for i in range(int(np.ceil(seconds)))])[:n]
    return (0.5 * y + 0.05 * np.resize(noise_clip(seed, 1.0), n)).astype(np.float32)


def _stream(den: Denoiser, x: np.ndarray, sizes) -> np.ndarray:
    """Feed ``x`` in blocks of ``sizes`` (cycled); check the latency guarantee after every call; return all outputs."""
    outs, i, k = [], 0, 0
    while i < x.size:
        size = int(sizes[k % len(sizes)])
        outs.append(den.process_block(x[i : i + size]))
        i, k = min(x.size, i + size), k + 1
        assert outs[-1].dtype == np.float32 and outs[-1].ndim == 1
        s = den.streamer
        assert s.samples_out == sum(o.size for o in outs)
        assert s.samples_out >= s.samples_in - den.latency_samples  # output t is out once input t + latency is in
        assert s.buffered_samples <= s.max_buffered_samples
    outs.append(den.flush())
    return np.concatenate(outs)


def _random_sizes(seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [0, 1, *rng.integers(0, 700, 30).tolist(), 1, 0, 2500, 160]


CASES = [(f, t) for f in ("fbank", "logmag", "logmel", "power", "magnitude") for t in ("mapping", "mask")]


@pytest.mark.parametrize("feature, target", CASES + [("waveform", "mapping")])
def test_stream_equals_offline_after_the_latency(feature, target, tmp_path):
    den = Denoiser(_run(tmp_path, feature, target=target))
    x = _signal()
    offline = den(x)
    assert np.abs(offline - x).max() > 1e-3  # the random model changes the signal: the test can see misplaced frames
    y = _stream(den, x, _random_sizes(sum(map(ord, feature + target))))  # reproducible, differs per case
    assert y.size == x.size
    np.testing.assert_allclose(y, offline, atol=1e-5, rtol=0)


def test_each_patch_is_predicted_once(tmp_path):
    den = Denoiser(_run(tmp_path, "logmag"))
    x = _signal(1.0)
    offline = den(x)
    predict, sizes = den.predict_batch, []

    def counting(patches):
        sizes.append(len(patches))
        return predict(patches)

    den.predict_batch = counting
    outs = [den.process_block(x[i : i + 100]) for i in range(0, x.size, 100)]
    n_regular = 1 + x.size // 128 - den.context + 1  # patches of whole-signal processing (patch_hop 1)
    assert n_regular - 25 <= sum(sizes) <= n_regular and max(sizes[1:]) <= 2  # 100-sample blocks: 1-2 new ones
    outs.append(den.flush())  # the end: one Denoiser call on the last margin + latency samples
    np.testing.assert_allclose(np.concatenate(outs), offline, atol=1e-5, rtol=0)


SHORT_WINDOW = ("features.win_length=400", "features.hop_length=160")


@pytest.mark.parametrize("patch_hop, sets", [(3, ()), (4, ()), (1, SHORT_WINDOW), (2, SHORT_WINDOW)])
def test_patch_hop_and_short_windows_stream_exactly(patch_hop, sets, tmp_path):
    den = Denoiser(_run(tmp_path, "fbank" if not sets else "logmag", sets=sets), patch_hop=patch_hop)
    x = _signal(2.0, seed=1)
    np.testing.assert_allclose(_stream(den, x, _random_sizes(patch_hop)), den(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("feature, patch_hop", [("fbank", 1), ("logmag", 1), ("logmag", 3), ("waveform", 1)])
def test_final_samples_do_not_depend_on_what_comes_next(feature, patch_hop, tmp_path):
    """Offline output before ``final_end(n)`` is the same whatever follows the first ``n`` samples, and ends there."""
    den = Denoiser(_run(tmp_path, feature), patch_hop=patch_hop)
    x = _signal(1.0)
    y = den(x)
    rng = np.random.default_rng(0)
    align = den.streamer.align
    for n in [4000 + int(k) for k in rng.choice(align, 12, replace=False)] + [4001]:  # every phase of the grid
        end = den.streamer.final_end(n)
        assert n - den.latency_samples <= end <= n
        loud = np.concatenate([x[:n], rng.uniform(-1, 1, 3000).astype(np.float32)])  # another continuation
        y2 = den(loud)
        np.testing.assert_allclose(y2[:end], y[:end], atol=1e-5, rtol=0)
        if feature != "waveform" and patch_hop == 1:  # and the bound is tight: the next samples depend on it
            assert np.abs(y2[end : end + 256] - y[end : end + 256]).max() > 1e-6  # (Hann edges: tiny at first)


@pytest.mark.parametrize("feature, patch_hop", [("fbank", 1), ("logmag", 1), ("logmag", 3), ("waveform", 1)])
def test_the_left_margin_is_all_the_past_a_segment_needs(feature, patch_hop, tmp_path):
    """Offline output from ``r0 + margin`` on (``r0`` on the grid) is the same whatever came before ``r0``."""
    den = Denoiser(_run(tmp_path, feature), patch_hop=patch_hop)
    s = den.streamer
    x = _signal(1.0)
    y = den(x)
    rng = np.random.default_rng(1)
    for r0 in (s.align * 10, s.align * 11, s.align * 13):
        loud = np.concatenate([rng.uniform(-1, 1, r0).astype(np.float32), x[r0:]])  # another past
        np.testing.assert_allclose(den(loud)[r0 + s.margin :], y[r0 + s.margin :], atol=1e-5, rtol=0)
        np.testing.assert_allclose(den(x[r0:])[s.margin :], y[r0 + s.margin :], atol=1e-5, rtol=0)  # or none


def test_one_sample_blocks_and_a_block_longer_than_the_signal(tmp_path):
    den = Denoiser(_run(tmp_path, "logmel"))
    x = _signal(0.5)
    offline = den(x)
    np.testing.assert_allclose(_stream(den, x, [1]), offline, atol=1e-5, rtol=0)
    head = den.process_block(np.concatenate([x, np.zeros(0, np.float32)]))  # the whole signal in one block
    assert head.size == den.streamer.final_end(x.size) >= x.size - den.latency_samples
    np.testing.assert_allclose(
        np.concatenate([head, den.process_block(np.zeros(0, np.float32)), den.flush()]), offline, atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    "feature, context, sets, expected",
    [
        ("logmag", 11, (), 10 * 128 + 512 - 1),  # (context - 1) * hop + n_fft - 1 = 1791 (111.9 ms)
        ("logmel", 11, (), 1791),
        ("fbank", 11, (), 10 * 128 + 128 + 256 - 1),  # right half of the 256-sample fbank window, left half of n_fft
        ("logmag", 1, (), 511),  # frame-wise model: one STFT window
        (
            "magnitude",
            11,
            ("features.n_fft=1024", "features.win_length=1024", "features.hop_length=512"),
            10 * 512 + 1023,
        ),
        ("logmag", 11, ("features.win_length=400", "features.hop_length=160"), 10 * 160 + 200 + 200 - 1),
        ("waveform", 512, (), 511),  # one chunk
    ],
)
def test_latency_of_known_configs_is_exact(feature, context, sets, expected, tmp_path):
    den = Denoiser(_run(tmp_path, feature, context=context, random=False, sets=sets))
    assert den.latency_samples == expected
    assert den.latency_seconds == pytest.approx(expected / 16000)
    x = _signal(0.6)
    lags = []
    for i in range(x.size):  # one sample at a time: the largest lag seen is exactly the stated latency
        den.process_block(x[i : i + 1])
        lags.append(den.streamer.samples_in - den.streamer.samples_out)
    assert max(lags[x.size // 2 :]) == expected
    rest = x.size - den.streamer.samples_out
    assert den.flush().size == rest and den.streamer.samples_in == 0


def test_reset_stream_and_flush_start_a_new_stream(tmp_path):
    den = Denoiser(_run(tmp_path, "power"))
    a, b = _signal(1.0, seed=0), _signal(1.2, seed=1)
    den.process_block(a[:7000])
    den.reset_stream()
    assert den.streamer.samples_in == den.streamer.samples_out == den.streamer.buffered_samples == 0
    np.testing.assert_allclose(_stream(den, b, [320]), den(b), atol=1e-5, rtol=0)
    # flush() ended the stream: the next blocks are a new one
    np.testing.assert_allclose(_stream(den, a, [512, 3]), den(a), atol=1e-5, rtol=0)


def test_state_stays_bounded_over_a_long_stream(tmp_path):
    den = Denoiser(_run(tmp_path, "logmag", random=False))
    s = den.streamer
    bound = s.max_buffered_samples
    assert bound == s.margin + s.align + den.latency_samples < 0.4 * 16000
    rng = np.random.default_rng(1)
    peak, total = 0, 0
    for size in rng.integers(0, 1200, 400):  # ~15 s
        out = den.process_block((0.1 * rng.standard_normal(size)).astype(np.float32))
        total += out.size
        peak = max(peak, s.buffered_samples)
    assert peak <= bound and s.samples_in > 10 * bound
    assert total == s.samples_out >= s.samples_in - den.latency_samples
    n = s.samples_in
    assert den.flush().size == n - total


def test_bad_blocks_are_refused_and_leave_the_stream_unchanged(tmp_path):
    den = Denoiser(_run(tmp_path, "fbank", random=False))
    den.process_block(np.zeros(3000, np.float32))
    state = (den.streamer.samples_in, den.streamer.samples_out)
    with pytest.raises(AudioError, match=r"mono.*\(3000, 2\).*mean\(axis=1\)"):
        den.process_block(np.zeros((3000, 2), np.float32))
    with pytest.raises(AudioError, match="float.*int16.*32768"):
        den.process_block(np.zeros(100, np.int16))
    with pytest.raises(AudioError, match="NaN or Inf"):
        den.process_block(np.array([0.0, np.nan], np.float32))
    assert (den.streamer.samples_in, den.streamer.samples_out) == state
    assert den.process_block(np.zeros(10)).dtype == np.float32  # float64 is converted
    den.reset_stream()
    assert den.flush().size == 0  # an empty stream
    den.process_block(np.zeros(100, np.float32))
    with pytest.raises(AudioError, match="ended after 100 samples, shorter than one analysis window"):
        den.flush()
    assert den.streamer.samples_in == 0  # flush reset the stream even so
