"""Model registry: shapes, targets, training steps, hyper-parameter checks, save -> load round trip."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from speech_dae.errors import ConfigError

keras = pytest.importorskip("keras")

from speech_dae.config import TARGETS  # noqa: E402
from speech_dae.models import MODEL_FEATURES, MODEL_TARGETS, MODELS, build_model, hparam_names, model_names  # noqa: E402

SPECTRAL = ("fbank", "logmag", "logmel", "power", "magnitude")

#: Tiny hyper-parameters so that every test builds and trains in well under a second per model on 2 cores.
TINY = {
    "type1": {"filters": [8, 4]},
    "type2": {"units": [16, 8], "dropout": 0.0},
    "dense_ln": {"units": [32, 16, 8, 16, 32]},
    "conv1d_time": {"filters": [4, 4], "kernel_size": 3},
    "cnn2d": {"filters": 4, "depth": 2},
    "unet": {"base_filters": 4, "depth": 2},
    "shallow": {"units": 16},
    "partitioned": {"units": 16},
    "curro": {"units": [16, 8], "decoder_units": [8]},
    "tcn": {"units": [16], "channels": 8, "dilations": [1, 2]},
    "erbnet": {"channels": 4, "dilations": [1, 2]},
}
#: Every (model, target) pair the registry supports.
CASES = [(name, target) for name in sorted(MODELS) for target in MODEL_TARGETS[name]]
SPECTRAL_SHAPES = [(11, 40), (11, 257)]
WAVEFORM_SHAPE = (2048, 1)  # features.chunk_size default
WAVEFORM_SMALL = (256, 1)  # for training steps


def _shapes(name: str) -> list[tuple[int, int]]:
    return [WAVEFORM_SHAPE] if MODEL_FEATURES[name] == ("waveform",) else SPECTRAL_SHAPES


def _batch(name: str, target: str, n: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fixed batch (x, y): y a learnable function of x, in [0, 1] for masks."""
    shape = WAVEFORM_SMALL if MODEL_FEATURES[name] == ("waveform",) else (11, 40)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *shape)).astype(np.float32)
    y = 1.0 / (1.0 + np.exp(-2.0 * x)) if target == "mask" else 0.5 * x
    if MODEL_FEATURES[name] == ("waveform",):
        x, y = 0.3 * x, 0.3 * y
    return x, y.astype(np.float32)


def test_registry_names():
    assert model_names() == sorted(MODELS)
    assert set(MODELS) == {
        "type1",
        "type2",
        "dense_ln",
        "conv1d_time",
        "cnn2d",
        "unet",
        "shallow",
        "partitioned",
        "curro",
        "tcn",
        "erbnet",
    }


def test_registry_features_and_targets():
    assert set(MODEL_FEATURES) == set(MODELS) == set(MODEL_TARGETS)
    for name in MODELS:
        if name == "conv1d_time":
            assert MODEL_FEATURES[name] == ("waveform",) and MODEL_TARGETS[name] == ("mapping",)
        elif name in ("partitioned", "curro"):  # the target is the input itself: no mask
            assert MODEL_FEATURES[name] == SPECTRAL and MODEL_TARGETS[name] == ("mapping",)
        elif name == "erbnet":  # ERB bands pool STFT bins; their expansion interpolates gains
            assert MODEL_FEATURES[name] == ("logmag", "power", "magnitude") and MODEL_TARGETS[name] == ("mask",)
        else:
            assert MODEL_FEATURES[name] == SPECTRAL and MODEL_TARGETS[name] == ("mapping", "mask")
        assert set(MODEL_TARGETS[name]) <= set(TARGETS)


def test_builders_are_keyword_only_with_target_mapping_by_default():
    for name, builder in MODELS.items():
        params = inspect.signature(builder).parameters
        assert list(params)[:2] == ["input_shape", "target"], name
        assert params["target"].default == "mapping" and params["target"].kind is inspect.Parameter.KEYWORD_ONLY
        assert "target" not in hparam_names(name)


@pytest.mark.parametrize("name, target", CASES)
def test_output_shape_equals_input_shape(name, target):
    for shape in _shapes(name):
        model = build_model(name, shape, target=target, **TINY[name])
        assert tuple(model.input_shape[1:]) == shape
        assert tuple(model.output_shape[1:]) == shape
        assert model.layers[-1].name == ("mask" if target == "mask" else "clean")
        x = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
        y = np.asarray(model(x, training=False))
        assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
        if target == "mask":  # sigmoid: a gain in [0, 1], even for inputs far outside the training range
            y = np.asarray(model(100.0 * x, training=False))
            assert y.min() >= 0.0 and y.max() <= 1.0


@pytest.mark.parametrize(
    "name", ["type1", "type2", "dense_ln", "cnn2d", "unet", "shallow", "partitioned", "curro", "tcn"]
)
@pytest.mark.parametrize("shape", [(1, 3), (5, 13), (1, 257)])
def test_spectral_models_take_any_patch_size(name, shape):
    model = build_model(name, shape, **TINY[name])
    assert tuple(model.output_shape[1:]) == shape
    x = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    assert np.asarray(model(x, training=False)).shape == x.shape


@pytest.mark.parametrize("name, target", CASES)
def test_train_steps_lower_the_loss_then_save_load_gives_identical_predictions(name, target, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(name, (WAVEFORM_SMALL if name == "conv1d_time" else (11, 40)), target=target, **TINY[name])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=3e-3), loss="mse", run_eagerly=True)  # no tracing
    x, y = _batch(name, target)
    losses = [float(np.asarray(model.train_on_batch(x, y)).ravel()[0]) for _ in range(6)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # stock layers only: no custom_objects
    a = np.asarray(model(x, training=False))
    b = np.asarray(loaded(x, training=False))
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    assert loaded.count_params() == model.count_params()
    assert loaded.layers[-1].name == model.layers[-1].name


@pytest.mark.parametrize("name", ["type1", "type2"])
def test_save_then_load_with_dropout_and_fit_state(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(name, (11, 24), **{**TINY[name], "dropout": 0.3})
    model.compile(optimizer="adam", loss="mse", run_eagerly=True)
    x = np.random.default_rng(1).normal(size=(64, 11, 24)).astype(np.float32)
    model.fit(x, x, epochs=1, batch_size=32, verbose=0)  # non-trivial weights (and optimizer state)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    a = np.asarray(model(x, training=False))
    b = np.asarray(loaded(x, training=False))
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    assert not np.allclose(a, 0)


@pytest.mark.parametrize("name", ["type1", "type2"])
def test_mapping_default_keeps_the_residual_output(name):
    model = build_model(name, (5, 7), **TINY[name])  # target defaults to mapping
    assert model.layers[-1].name == "clean" and type(model.layers[-1]).__name__ == "Add"
    plain = build_model(name, (5, 7), residual=False, **TINY[name])
    assert type(plain.layers[-1]).__name__ == "Activation"
    assert plain.layers[-1].get_config()["activation"] == "linear"


def test_dense_ln_with_one_frame_is_libdse_frame_model():
    model = build_model("dense_ln", (1, 257))  # logmag at n_fft 512, reference units
    widths = [257, 2048, 500, 180, 500, 2048, 257]
    dense = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    norms = 2 * sum(widths[:-1])  # input LayerNorm + one after every hidden Dense
    assert model.count_params() == dense + norms
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["noisy", "flatten", "input_norm"] and names[-1] == "clean"


def test_config_defaults_match_builder_defaults_and_build():
    from speech_dae.config import load_config

    cfg = load_config()
    for name, builder in MODELS.items():
        params = inspect.signature(builder).parameters
        hp = cfg.model.params_for(name)
        assert sorted(hp) == sorted(hparam_names(name)), name
        for key, value in hp.items():
            default = params[key].default
            assert (list(default) if isinstance(default, tuple) else default) == value, (name, key)
    small = load_config(overrides=["model.hparams.type2.units=[16,8]", "model.hparams.type1.filters=[8,4]"])
    for name in ("type1", "type2"):
        model = build_model(name, (11, 40), **small.model.params_for(name))
        assert tuple(model.output_shape[1:]) == (11, 40)


@pytest.mark.parametrize("name", ["dense_ln", "conv1d_time", "cnn2d", "unet"])
def test_reference_defaults_build(name):
    shape = WAVEFORM_SHAPE if name == "conv1d_time" else (11, 257)
    model = build_model(name, shape)
    assert tuple(model.output_shape[1:]) == shape
    keras.backend.clear_session()


def test_unknown_model_raises_config_error_listing_models():
    with pytest.raises(ConfigError) as err:
        build_model("type9", (11, 40))
    assert "type9" in str(err.value) and all(n in str(err.value) for n in MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_unknown_target_raises_config_error_listing_valid_ones(name):
    with pytest.raises(ConfigError) as err:
        build_model(name, _shapes(name)[0], target="spectrum", **TINY[name])
    msg = str(err.value)
    assert "spectrum" in msg and name in msg and all(t in msg for t in MODEL_TARGETS[name])
    with pytest.raises(ConfigError, match="spectrum"):  # the builder checks too, when called directly
        MODELS[name](_shapes(name)[0], target="spectrum", **TINY[name])


def test_conv1d_time_rejects_mask_with_a_clear_message():
    with pytest.raises(ConfigError) as err:
        build_model("conv1d_time", (256, 1), target="mask")
    assert "mask" in str(err.value) and "mapping" in str(err.value)
    with pytest.raises(ConfigError) as err:
        MODELS["conv1d_time"]((256, 1), target="mask")
    assert "waveform" in str(err.value) and "mapping" in str(err.value)


@pytest.mark.parametrize(
    "shape, filters, step", [((2050, 1), [32, 16], 4), ((2052, 1), [4, 4, 4], 8), ((11, 257), [32, 16], 4)]
)
def test_conv1d_time_chunk_length_must_divide_by_the_pooling(shape, filters, step):
    with pytest.raises(ConfigError) as err:
        build_model("conv1d_time", shape, filters=filters)
    msg = str(err.value)
    assert f"chunk_size={shape[0]}" in msg and f"= {step}" in msg and "features.chunk_size" in msg


@pytest.mark.parametrize(
    "name, bad",
    [
        ("type1", "units"),
        ("type2", "filters"),
        ("type2", "learning_rate"),
        ("dense_ln", "filters"),
        ("conv1d_time", "units"),
        ("cnn2d", "base_filters"),
        ("unet", "filters"),
    ],
)
def test_unknown_hparam_raises_config_error_listing_valid_ones(name, bad):
    with pytest.raises(ConfigError) as err:
        build_model(name, _shapes(name)[0], **{bad: 3})
    msg = str(err.value)
    assert bad in msg and all(h in msg for h in hparam_names(name))
    assert "target" not in msg.split("valid:")[1]


@pytest.mark.parametrize(
    "name, hp, key",
    [
        ("type1", {"filters": []}, "filters"),
        ("type2", {"units": []}, "units"),
        ("dense_ln", {"units": []}, "units"),
        ("dense_ln", {"units": [32, 0]}, "units"),
        ("conv1d_time", {"filters": []}, "filters"),
        ("conv1d_time", {"filters": 16}, "filters"),
        ("cnn2d", {"depth": 0}, "depth"),
        ("cnn2d", {"filters": 2.5}, "filters"),
        ("unet", {"base_filters": 0}, "base_filters"),
        ("unet", {"depth": "2"}, "depth"),
    ],
)
def test_bad_hparam_value_raises_config_error(name, hp, key):
    with pytest.raises(ConfigError, match=key):
        build_model(name, _shapes(name)[0], **hp)
