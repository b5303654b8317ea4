"""Model registry: shapes, hyper-parameter checks, save -> load round trip."""

from __future__ import annotations

import numpy as np
import pytest

from speech_dae.errors import ConfigError

keras = pytest.importorskip("keras")

from speech_dae.models import MODELS, build_model, model_names  # noqa: E402

TINY = {"type1": {"filters": [8, 4]}, "type2": {"units": [16, 8], "dropout": 0.0}}


def test_registry_names():
    assert model_names() == sorted(MODELS) and {"type1", "type2"} <= set(MODELS)


@pytest.mark.parametrize("name", ["type1", "type2"])
@pytest.mark.parametrize("shape", [(11, 257), (5, 40), (1, 3)])
def test_output_shape_equals_input_shape(name, shape):
    model = build_model(name, shape, **TINY[name])
    assert tuple(model.input_shape[1:]) == shape
    assert tuple(model.output_shape[1:]) == shape
    x = np.random.default_rng(0).normal(size=(3, *shape)).astype(np.float32)
    y = np.asarray(model(x, training=False))
    assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))


def test_default_hparams_from_the_config_build():
    from speech_dae.config import load_config

    cfg = load_config(overrides=["model.hparams.type2.units=[16,8]", "model.hparams.type1.filters=[8,4]"])
    for name in ("type1", "type2"):
        model = build_model(name, (11, 40), **cfg.model.params_for(name))
        assert tuple(model.output_shape[1:]) == (11, 40)


def test_unknown_model_raises_config_error_listing_models():
    with pytest.raises(ConfigError) as err:
        build_model("type9", (11, 40))
    assert "type9" in str(err.value) and "type1" in str(err.value) and "type2" in str(err.value)


@pytest.mark.parametrize("name, bad", [("type1", "units"), ("type2", "filters"), ("type2", "learning_rate")])
def test_unknown_hparam_raises_config_error_listing_valid_ones(name, bad):
    with pytest.raises(ConfigError) as err:
        build_model(name, (11, 40), **{bad: 3})
    msg = str(err.value)
    assert bad in msg and ("filters" in msg if name == "type1" else "units" in msg)


@pytest.mark.parametrize("name, hp", [("type1", {"filters": []}), ("type2", {"units": []})])
def test_empty_layer_plan_raises_config_error(name, hp):
    with pytest.raises(ConfigError):
        build_model(name, (11, 40), **hp)


@pytest.mark.parametrize("name", ["type1", "type2"])
def test_save_then_load_gives_identical_predictions(name, tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(name, (11, 24), **{**TINY[name], "dropout": 0.3})
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(1).normal(size=(64, 11, 24)).astype(np.float32)
    model.fit(x, x, epochs=1, batch_size=32, verbose=0)  # non-trivial weights (and optimizer state)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)  # no custom_objects needed
    a = np.asarray(model.predict(x, verbose=0))
    b = np.asarray(loaded.predict(x, verbose=0))
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    assert not np.allclose(a, 0)
    assert loaded.count_params() == model.count_params()
