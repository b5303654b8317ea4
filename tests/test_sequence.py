"""Whole-sequence inference, the stateful frame step, frame-synchronous streaming (Keras and onnxruntime),
the STFT of ``speech_dae.stft`` against librosa's, and the engine choice of ``engine="auto"``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import identity_run_dir, noise_clip, speech_clip, write_wav

from speech_dae import stft as st
from speech_dae.config import load_config
from speech_dae.errors import ConfigError

keras = pytest.importorskip("keras")

from speech_dae import models  # noqa: E402
from speech_dae.inference import Denoiser  # noqa: E402


# ------------------------------------------------------------------ the STFT
@pytest.mark.parametrize("n_fft, hop, win", [(512, 128, 512), (512, 128, 400), (400, 160, 400)])
@pytest.mark.parametrize("n", [512, 1000, 16001])
def test_stft_istft_and_frame_by_frame_overlap_add_equal_librosa(n_fft, hop, win, n):
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(n)
    y = rng.standard_normal(n).astype(np.float32)
    S = st.stft(y, n_fft=n_fft, hop_length=hop, win_length=win)
    ref = librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, center=True).T
    assert S.shape == ref.shape == (st.frame_count(n, hop), n_fft // 2 + 1) and S.dtype == np.complex64
    np.testing.assert_allclose(S, ref, atol=1e-5)
    G = S * rng.uniform(0, 1, S.shape).astype(np.float32)  # a gain, as a mask would
    want = librosa.istft(G.T, n_fft=n_fft, hop_length=hop, win_length=win, center=True, length=n)
    np.testing.assert_allclose(st.istft(G, length=n, n_fft=n_fft, hop_length=hop, win_length=win), want, atol=2e-6)
    ola, parts, i = st.OverlapAdd(n_fft=n_fft, hop_length=hop, win_length=win), [], 0
    for k in [0, 1, 2, 7, 1, 0, 3] * 1000:  # pieces of every size a stream or a flush gives
        if i >= len(G):
            break
        parts.append(ola.add(G[i : i + k]))
        assert i + k < 1 or sum(p.size for p in parts) == max(0, min(i + k, len(G)) * hop - n_fft // 2)
        i += k
    parts.append(ola.finish(n))
    np.testing.assert_allclose(np.concatenate(parts), want, atol=2e-6)


def test_the_tcn_inverse_of_a_unit_gain_is_the_signal():
    y = np.random.default_rng(0).standard_normal(4000).astype(np.float32)
    S = st.stft(y, n_fft=512, hop_length=128, win_length=512)
    np.testing.assert_allclose(st.istft(S, length=y.size, n_fft=512, hop_length=128, win_length=512), y, atol=1e-5)


# ------------------------------------------------------------------ which models run on sequences
@pytest.mark.parametrize(
    "name, hp, want",
    [
        ("tcn", {}, (30, 0)),  # receptive field 31, causal
        ("tcn", {"causal": False}, (15, 15)),  # 2 * (1 + 2 + 4 + 8) frames split over both sides
        ("tcn", {"lookahead": 1}, (29, 1)),  # the same 31 frames, shifted one frame into the future
        ("tcn", {"lookahead": 2}, (28, 2)),  # DeepFilterNet's 2 frames
        ("tcn", {"kernel_size": 2, "dilations": [1, 2], "causal": False}, (1, 2)),  # "same": the odd frame after
        ("type1", {}, (8, 8)),  # 4 layers of kernel 3, counted on both sides
        ("type2", {}, None),
        ("unet", {}, None),
        ("dense_ln", {}, None),
    ],
)
def test_sequence_context_known_values(name, hp, want):
    assert models.sequence_context(name, hp) == want
    assert models.has_step(name, hp) == (want is not None and name == "tcn" and want[1] == 0)


@pytest.mark.parametrize(
    "name, hp",
    [
        ("tcn", {"kernel_size": 2, "dilations": [1, 2], "causal": False}),
        ("tcn", {"causal": False}),
        ("tcn", {"lookahead": 1}),
        ("tcn", {"lookahead": 2}),
        ("type1", {}),
    ],
)
def test_no_output_frame_depends_on_frames_beyond_its_sequence_context(name, hp):
    hp = {**({"units": [8], "channels": 4} if name == "tcn" else {"filters": [8, 4]}), **hp}
    past, future = models.sequence_context(name, hp)
    keras.utils.set_random_seed(0)
    model = models.free_length(models.build_model(name, (40, 6), **hp))
    x = np.random.default_rng(0).standard_normal((1, 40, 6)).astype(np.float32)
    t = 20
    base = np.asarray(model(x))[0, t]
    dependent = []
    for f in range(40):
        y = x.copy()
        y[0, f] += 1.0
        changed = np.abs(np.asarray(model(y))[0, t] - base).max() > 1e-6
        assert not changed or t - past <= f <= t + future, f  # blocks with these margins are exact
        dependent.append(changed)
    assert any(dependent[max(t - past, 0) : t]) or past == 0  # and the margins are not empty for nothing
    assert any(dependent[t + 1 : t + future + 1]) or future == 0


def _tcn_run(tmp_path, *, target="mask", feature="logmag", context=16, **hp):
    """A run folder holding a tiny tcn with randomised weights (biases and LayerNorm too)."""
    cfg = load_config(overrides=[f"features.type={feature}"])
    run = identity_run_dir(tmp_path / f"tcn_{feature}_{target}_{hp.get('causal', True)}", cfg, context=context)
    info = json.loads((run / "run.json").read_text())
    hp = {"units": [16], "channels": 8, "dilations": [1, 2, 4], **hp}
    keras.utils.set_random_seed(0)
    model = models.build_model("tcn", (context, info["n_bins"]), target=target, **hp)
    rng = np.random.default_rng(0)
    model.set_weights([w + 0.3 * rng.standard_normal(w.shape).astype(np.float32) for w in model.get_weights()])
    model.save(run / "model.keras")
    (run / "run.json").write_text(json.dumps({**info, "model": "tcn", "target": target, "hparams": hp}))
    return run


def _signal(seconds: float = 1.5) -> np.ndarray:
    n = int(seconds * 16000)
    y = np.concatenate([speech_clip(i, 1.0) for i in range(int(np.ceil(seconds)))])[:n]
    return (0.5 * y + 0.05 * np.resize(noise_clip(0, 1.0), n)).astype(np.float32)


@pytest.mark.parametrize("hp", [{}, {"causal": False}, {"lookahead": 2}])
def test_blocked_sequence_inference_equals_one_call_and_feeds_each_frame_once(hp, tmp_path):
    den = Denoiser(_tcn_run(tmp_path, **hp), engine="keras")
    assert den.inference == "sequence" and den.stateful == (hp == {})
    x = _signal()
    one = den(x)
    assert np.abs(one - x).max() > 1e-3  # the model changes the signal
    fed = []
    predict = den.predict_batch
    den.predict_batch = lambda b: (fed.append(b.shape), predict(b))[1]
    den.block_frames = 7
    blocked = den(x)
    assert np.abs(blocked - one).max() < 1e-6
    n_frames = st.frame_count(x.size, den.fx.cfg.hop_length)
    past, future = den.sequence
    assert sum(s[1] for s in fed) <= n_frames + len(fed) * (past + future)  # the middles once, plus the margins
    assert all(s[1] <= 7 + past + future for s in fed)


def test_sequence_and_patch_inference_differ_and_patch_can_be_forced(tmp_path):
    run = _tcn_run(tmp_path)
    x = _signal(1.0)
    seq, patch = Denoiser(run, engine="keras"), Denoiser(run, engine="keras", inference="patch", patch_hop=4)
    assert patch.inference == "patch" and patch.sequence is None and not patch.stateful
    assert np.abs(seq(x) - patch(x)).max() > 1e-4  # patches cut the causal context at every patch start


def test_sequence_inference_is_refused_for_fixed_patch_models(tiny_run):
    with pytest.raises(ConfigError, match="cannot run whole sequences.*use inference patch"):
        Denoiser(tiny_run.run_dir, engine="keras", inference="sequence")
    assert Denoiser(tiny_run.run_dir, engine="keras").inference == "patch"


def test_auto_keeps_patches_for_models_trained_on_patches_shorter_than_their_context(tmp_path):
    cfg = load_config(overrides=["features.type=logmag"])
    run = identity_run_dir(tmp_path / "type1", cfg, context=11)
    info = json.loads((run / "run.json").read_text())
    models.build_model("type1", (11, info["n_bins"])).save(run / "model.keras")
    (run / "run.json").write_text(json.dumps({**info, "model": "type1"}))
    assert Denoiser(run, engine="keras").inference == "patch"  # type1 reaches 8 + 8 frames > 11
    den = Denoiser(run, engine="keras", inference="sequence")
    assert den.sequence == (8, 8) and not den.stateful
    x = _signal(1.0)
    y = den(x)
    den.block_frames = 9
    assert np.abs(den(x) - y).max() < 1e-6


def test_the_frame_step_in_pieces_equals_one_call(tmp_path):
    den = Denoiser(_tcn_run(tmp_path, target="mapping"), engine="keras")
    x = np.random.default_rng(3).standard_normal((90, den.fx.n_bins)).astype(np.float32)
    one = den.predict_sequence(x)
    state, outs, i = den.initial_state(), [], 0
    for k in [1, 2, 5, 1, 13, 3] * 10:
        if i >= len(x):
            break
        y, state = den.step(x[i : i + k], state)
        outs.append(y)
        i += k
    np.testing.assert_allclose(np.concatenate(outs), one, atol=1e-5)


# ------------------------------------------------------------------ frame-synchronous streaming
@pytest.mark.parametrize("target", ["mask", "mapping"])
@pytest.mark.parametrize("sizes", [[160], [1, 700, 0, 333, 2500, 57]])
def test_frame_stream_equals_offline_with_one_window_of_latency(target, sizes, tmp_path):
    den = Denoiser(_tcn_run(tmp_path, target=target), engine="keras")
    x = _signal(1.0)
    offline = den(x)
    s = den.streamer
    assert type(s).__name__ == "FrameStreamer"
    assert den.latency_samples == den.fx.cfg.n_fft - 1 == 511  # 31.9 ms at 16 kHz
    outs, i, k = [], 0, 0
    while i < x.size:
        outs.append(den.process_block(x[i : i + sizes[k % len(sizes)]]))
        i, k = min(x.size, i + sizes[k % len(sizes)]), k + 1
        n = s.samples_in
        # all of the output before n - n_fft // 2 - (hop - 1) is out: the latency bound is met, and tight
        assert s.samples_out >= n - den.latency_samples
        assert s.samples_out == max(0, ((n - 256) // 128 + 1) * 128 - 256)
        assert s.buffered_samples < den.fx.cfg.n_fft + max(sizes)
        assert s.buffered_samples <= s.max_buffered_samples == den.fx.cfg.n_fft - 1
    outs.append(den.flush())
    y = np.concatenate(outs)
    assert y.size == x.size and np.abs(y - offline).max() < 1e-5


def test_the_strength_control_streams_frame_by_frame_like_offline(tmp_path):
    run = _tcn_run(tmp_path)
    x = _signal(1.0)
    full, gentle = Denoiser(run, engine="keras"), Denoiser(run, engine="keras", atten_lim_db=6.0)
    offline = gentle(x)
    assert np.abs(offline - full(x)).max() > 1e-3  # the limit changes the output
    y = np.concatenate([*(gentle.process_block(x[i : i + 160]) for i in range(0, x.size, 160)), gentle.flush()])
    assert np.abs(y - offline).max() < 1e-5


def test_a_stream_shorter_than_one_window_is_refused_and_reset(tmp_path):
    from speech_dae.errors import AudioError

    den = Denoiser(_tcn_run(tmp_path), engine="keras")
    den.process_block(np.zeros(100, np.float32))
    with pytest.raises(AudioError, match="shorter than one analysis window"):
        den.flush()
    assert den.streamer.samples_in == 0


# ------------------------------------------------------------------ ONNX: the exported step, without TensorFlow
@pytest.fixture
def exported(tmp_path):
    from speech_dae.inference.export import export_run

    run = _tcn_run(tmp_path)
    wav = write_wav(tmp_path / "probe.wav", _signal(1.0))
    summary = export_run(run, "onnx", audio=wav, n_patches=16)
    assert summary.ok and summary.max_abs_diff < 1e-4
    return run


def test_onnx_step_export_streams_and_denoises_like_keras(exported):
    onnx = pytest.importorskip("onnx")
    graph = onnx.load(str(exported / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["frames", "state0", "state1", "state2"]  # dilations 1, 2, 4
    keras_den = Denoiser(exported, engine="keras")
    den = Denoiser(exported, engine="onnx")
    assert den.inference == "sequence" and den.stateful and den.sequence == (14, 0)
    x = _signal(1.0)
    offline = keras_den(x)
    assert np.abs(den(x) - offline).max() < 1e-5
    outs = [den.process_block(x[i : i + 160]) for i in range(0, x.size, 160)]  # 10 ms blocks
    y = np.concatenate([*outs, den.flush()])
    assert np.abs(y - offline).max() < 1e-5


def test_onnx_streaming_never_imports_tensorflow_or_keras(exported):
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from speech_dae.inference import Denoiser
        den = Denoiser({str(exported)!r})
        assert den.engine == "onnx" and den.stateful, (den.engine, den.stateful)
        x = np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32)
        y = np.concatenate([den.process_block(x[i:i + 160]) for i in range(0, x.size, 160)] + [den.flush()])
        assert y.size == x.size and np.abs(y - den(x)).max() < 1e-5
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        assert not bad, bad
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_engine_auto_uses_onnx_only_while_it_matches_model_keras(exported):
    assert Denoiser(exported).engine == "onnx"
    model = keras.saving.load_model(exported / "model.keras")
    model.set_weights([w * 1.01 for w in model.get_weights()])
    model.save(exported / "model.keras")  # retrained after the export: the ONNX file is stale
    den = Denoiser(exported)
    assert den.engine == "keras"
    with pytest.raises(ConfigError, match="unknown engine"):
        Denoiser(exported, engine="gpu")


def test_the_pretrained_model_ships_its_onnx_step_and_streams_with_32_ms_latency():
    den = Denoiser()
    assert den.engine == "onnx" and den.stateful and den.inference == "sequence"
    assert den.latency_seconds == pytest.approx(511 / 16000)


def test_the_inference_option_reaches_the_config_and_bad_values_are_refused():
    import argparse

    from speech_dae.cli import add_inference_options, inference_overrides

    parser = argparse.ArgumentParser()
    add_inference_options(parser, patch_hop_default="x", atten_lim_default="y")
    args = parser.parse_args(["--inference", "patch", "--atten-lim-db", "12"])
    overrides = inference_overrides(args)
    assert overrides == ["reconstruct.inference=patch", "reconstruct.atten_lim_db=12.0"]
    assert load_config(overrides=overrides).reconstruct.inference == "patch"
    assert load_config().reconstruct.inference == "auto"
    with pytest.raises(ConfigError, match="reconstruct.inference='whole' must be auto, sequence or patch"):
        load_config(overrides=["reconstruct.inference=whole"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--inference", "whole"])


def test_a_centred_tcn_exports_a_free_length_graph_with_its_context(tmp_path):
    from speech_dae.inference.export import export_run

    run = _tcn_run(tmp_path, causal=False)
    x = _signal(1.0)
    summary = export_run(run, "onnx", audio=write_wav(tmp_path / "probe.wav", x), n_patches=16)
    assert summary.ok
    den = Denoiser(run, engine="onnx")
    assert den.inference == "sequence" and den.sequence == (7, 7) and not den.stateful
    assert np.abs(den(x) - Denoiser(run, engine="keras")(x)).max() < 1e-5
    y = np.concatenate([*(den.process_block(x[i : i + 400]) for i in range(0, x.size, 400)), den.flush()])
    assert den.latency_samples > den.fx.cfg.n_fft and np.abs(y - den(x)).max() < 1e-5  # waits for 7 future frames


@pytest.mark.parametrize("hp", [{"residual": True}, {"residual": False}])
def test_the_onnx_step_of_a_mapping_tcn_equals_keras(hp, tmp_path):
    from speech_dae.inference.export import export_run

    run = _tcn_run(tmp_path, target="mapping", **hp)
    x = _signal(1.0)
    assert export_run(run, "onnx", audio=write_wav(tmp_path / "probe.wav", x), n_patches=16).ok
    den = Denoiser(run, engine="onnx")
    assert den.stateful and np.abs(den(x) - Denoiser(run, engine="keras")(x)).max() < 1e-5
