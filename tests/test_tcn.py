"""The ``tcn`` model: shapes, causality, receptive field, save -> load, bad hyper-parameters, streaming."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import identity_run_dir, noise_clip, speech_clip

from speech_dae.config import load_config
from speech_dae.errors import ConfigError

keras = pytest.importorskip("keras")

from speech_dae.models import build_model  # noqa: E402
from speech_dae.models.tcn import build_tcn, receptive_field  # noqa: E402

TINY = {"units": [16], "channels": 8}
SHAPE = (14, 8)


def _model(seed: int = 0, shape=SHAPE, **hp):
    """A tiny tcn whose weights are all randomised (biases and LayerNorm too), so every path is non-trivial."""
    keras.utils.set_random_seed(seed)
    model = build_model("tcn", shape, **{**TINY, **hp})
    rng = np.random.default_rng(seed)
    model.set_weights([w + 0.3 * rng.standard_normal(w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _x(n: int = 2, shape=SHAPE, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


def _predict(model, x) -> np.ndarray:
    return np.asarray(model(x, training=False))


@pytest.mark.parametrize("target", ["mapping", "mask"])
def test_output_shape_equals_input_shape_and_mask_is_a_gain(target):
    model = _model(target=target)
    x = _x(3)
    y = _predict(model, x)
    assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
    assert model.layers[-1].name == ("mask" if target == "mask" else "clean")
    if target == "mask":
        y = _predict(model, 100.0 * x)
        assert y.min() >= 0.0 and y.max() <= 1.0


def test_layers_are_named_and_the_default_bottleneck_has_four_blocks():
    model = build_tcn((11, 40))
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["noisy", "enc0", "bottleneck_in"] and names[-2:] == ["decoded", "clean"]
    assert [n for n in names if n.endswith("_conv")] == [f"tcn{i}_conv" for i in range(4)]
    assert [model.get_layer(f"tcn{i}_conv").dilation_rate[0] for i in range(4)] == [1, 2, 4, 8]
    assert model.get_layer("tcn0_conv").padding == "causal" and model.get_layer("bottleneck_in").units == 256
    assert "tcn0_dropout" not in names and "tcn0_dropout" in [la.name for la in build_tcn((5, 4), dropout=0.2).layers]


@pytest.mark.parametrize(
    "kernel_size, dilations, frames",
    [(3, (1, 2, 4, 8), 31), (3, [1], 3), (2, [1, 2], 4), (5, [1, 2, 4, 8, 16], 125), (1, [1, 2], 1)],
)
def test_receptive_field_known_values(kernel_size, dilations, frames):
    assert receptive_field(kernel_size, dilations) == frames


@pytest.mark.parametrize("t", [0, 5, 12])
def test_causal_outputs_do_not_depend_on_later_frames(t):
    x = _x()
    later = x.copy()
    later[:, t + 1 :] += np.random.default_rng(2).normal(size=later[:, t + 1 :].shape).astype(np.float32)
    for target in ("mapping", "mask"):
        model = _model(target=target)
        a, b = _predict(model, x), _predict(model, later)
        np.testing.assert_array_equal(b[:, : t + 1], a[:, : t + 1])
        assert np.abs(b[:, t + 1 :] - a[:, t + 1 :]).max() > 1e-4
    centred = _model(causal=False)  # same padding looks ahead: earlier outputs change
    assert np.abs(_predict(centred, later)[:, : t + 1] - _predict(centred, x)[:, : t + 1]).max() > 1e-4


@pytest.mark.parametrize("kernel_size, dilations", [(3, [1, 2]), (2, [1, 2, 4])])
def test_receptive_field_is_exact(kernel_size, dilations):
    rf = receptive_field(kernel_size, dilations)  # 7 and 8 frames
    shape = (rf + 4, 8)
    model = _model(shape=shape, kernel_size=kernel_size, dilations=dilations, residual=False)
    x = _x(shape=shape)
    moved = x.copy()
    moved[:, 0] += 3.0
    delta = np.abs(_predict(model, moved) - _predict(model, x)).max(axis=(0, 2))
    assert delta[rf - 1] > 1e-4  # the oldest frame of the receptive field still counts
    assert np.all(delta[rf:] == 0.0)  # and nothing older
    assert np.all(delta[:rf] > 0.0)


def test_save_then_load_gives_identical_predictions_without_custom_objects(tmp_path):
    model = _model(dropout=0.2, causal=True)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    x = _x(4)
    np.testing.assert_allclose(_predict(loaded, x), _predict(model, x), rtol=0, atol=1e-6)
    assert loaded.count_params() == model.count_params()
    assert [la.name for la in loaded.layers] == [la.name for la in model.layers]


@pytest.mark.parametrize(
    "hp, pattern",
    [
        ({"dilations": []}, r"tcn: dilations=\[\] must list at least one whole number >= 1, e.g. \[1, 2, 4, 8\]"),
        ({"dilations": [1, 0]}, "dilations"),
        ({"dilations": 4}, "dilations"),
        ({"channels": 0}, "channels=0 must be a whole number >= 1"),
        ({"kernel_size": 2.5}, "kernel_size"),
        ({"units": [16, -1]}, "units"),
        ({"units": 16}, "units=16 must be a list"),
        ({"dropout": 1.0}, r"dropout=1.0 must be a number in \[0, 1\)"),
        ({"causal": "yes"}, "causal"),
        ({"lookahead": 3}, r"lookahead=3 must be a whole number of frames in 0..2"),
        ({"lookahead": -1}, "lookahead=-1"),
        ({"lookahead": 1.5}, "lookahead=1.5"),
        ({"lookahead": 1, "causal": False}, "lookahead applies to causal TCNs"),
        ({"target": "spectrum"}, "spectrum"),
    ],
)
def test_bad_hparams_raise_config_error(hp, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_model("tcn", SHAPE, **hp)
    with pytest.raises(ConfigError, match="kernel_size"):
        receptive_field(0, [1])


def test_empty_units_is_just_the_bottleneck():
    model = build_tcn(SHAPE, units=[], channels=8, dilations=[1])
    assert [la.name for la in model.layers][:2] == ["noisy", "bottleneck_in"]
    assert _predict(model, _x()).shape == (2, *SHAPE)


def test_default_config_builds_tcn_with_its_defaults():
    cfg = load_config(overrides=["model.name=tcn"])
    hp = cfg.model.params_for("tcn")
    assert hp["dilations"] == [1, 2, 4, 8] and hp["causal"] is True
    assert receptive_field(hp["kernel_size"], hp["dilations"]) == 31
    model = build_model("tcn", (31, 40), **hp)
    assert tuple(model.output_shape[1:]) == (31, 40)


@pytest.mark.parametrize("target", ["mapping", "mask"])
def test_stream_equals_offline(target, tmp_path):
    from speech_dae.inference import Denoiser

    context = 16
    cfg = load_config(overrides=["features.type=logmag"])
    run = identity_run_dir(tmp_path / "run", cfg, context=context)
    info = json.loads((run / "run.json").read_text())
    model = _model(shape=(context, info["n_bins"]), target=target, dilations=[1, 2, 4])
    model.save(run / "model.keras")
    (run / "run.json").write_text(json.dumps({**info, "model": "tcn", "target": target}))
    den = Denoiser(run, patch_hop=3)
    n = 16000
    x = (0.5 * speech_clip(0, 1.0)[:n] + 0.05 * noise_clip(0, 1.0)[:n]).astype(np.float32)
    offline = den(x)
    assert np.abs(offline - x).max() > 1e-3  # the model changes the signal
    outs, i, sizes = [], 0, [1, 700, 0, 333, 2500, 160, 57]
    for k in range(10_000):
        if i >= x.size:
            break
        outs.append(den.process_block(x[i : i + sizes[k % len(sizes)]]))
        i += sizes[k % len(sizes)]
    outs.append(den.flush())
    y = np.concatenate(outs)
    assert y.size == x.size
    assert np.abs(y - offline).max() < 1e-5
