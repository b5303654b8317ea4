"""erbnet: the ERB band matrices, shapes, causality and look-ahead, save / load, errors."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from speech_dae import models  # noqa: E402
from speech_dae.errors import ConfigError  # noqa: E402
from speech_dae.models.erbnet import erb_matrices  # noqa: E402

TINY = {"channels": 4, "dilations": [1, 2], "n_linear": 9, "n_erb": 8}  # 17 bins: 9 kept, 8 bands


def test_erb_matrices_keep_the_low_bins_and_average_the_high_ones():
    compress, expand = erb_matrices(257, 16000, 65, 64)
    assert compress.shape == (257, 129) and expand.shape == (129, 257)
    np.testing.assert_array_equal(compress[:65, :65], np.eye(65))  # 0-2 kHz: the bins themselves
    np.testing.assert_allclose(compress.sum(axis=0), 1.0, atol=1e-6)  # a band is a weighted mean of bins
    np.testing.assert_allclose(expand.sum(axis=0), 1.0, atol=1e-6)  # a bin interpolates bands
    spectrum = np.full(257, 0.3, np.float32)  # a flat spectrum (or gain) survives the round trip
    np.testing.assert_allclose(spectrum @ compress @ expand, 0.3, atol=1e-6)
    widths = (compress[65:] > 0).sum(axis=0)[65:]
    assert widths[-1] > widths[0]  # ERB bands widen with frequency


def test_output_is_a_gain_of_the_input_shape_and_depends_on_no_later_frame():
    keras.utils.set_random_seed(0)
    model = models.free_length(models.build_model("erbnet", (24, 17), target="mask", **TINY))
    x = np.random.default_rng(0).standard_normal((1, 30, 17)).astype(np.float32)
    y = np.asarray(model(x))
    assert y.shape == (1, 30, 17) and y.min() >= 0.0 and y.max() <= 1.0
    past, future = models.sequence_context("erbnet", TINY)
    assert (past, future) == (6, 0)  # 2 * (1 + 2) frames back, none ahead
    t = 15
    for f in range(30):
        z = x.copy()
        z[0, f] += 3.0
        changed = np.abs(np.asarray(model(z))[0, t] - y[0, t]).max() > 1e-6
        assert changed == (t - past <= f <= t), f


def test_lookahead_shifts_the_receptive_field_into_the_future():
    hp = {**TINY, "lookahead": 2}
    assert models.sequence_context("erbnet", hp) == (4, 2)
    assert not models.has_step("erbnet", hp)
    keras.utils.set_random_seed(0)
    model = models.build_model("erbnet", (30, 17), target="mask", **hp)
    x = np.random.default_rng(1).standard_normal((1, 30, 17)).astype(np.float32)
    base = np.asarray(model(x))[0, 10]
    z = x.copy()
    z[0, 12] += 3.0
    assert np.abs(np.asarray(model(z))[0, 10] - base).max() > 1e-6
    z = x.copy()
    z[0, 13] += 3.0
    assert np.abs(np.asarray(model(z))[0, 10] - base).max() < 1e-6


def test_save_and_load_keep_the_fixed_band_matrices(tmp_path):
    keras.utils.set_random_seed(0)
    model = models.build_model("erbnet", (16, 17), target="mask", **TINY)
    assert model.get_layer("erb_compress").trainable is False
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(2).standard_normal((2, 16, 17)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    compress, _ = erb_matrices(17, 16000, 9, 8)
    np.testing.assert_array_equal(loaded.get_layer("erb_compress").get_weights()[0], compress)


@pytest.mark.parametrize(
    "hp, pattern",
    [
        ({"target": "mapping"}, "does not support target='mapping'"),
        ({"channels": 0}, "channels=0"),
        ({"lookahead": 3}, r"lookahead=3 must be a whole number of frames in 0..2"),
        ({"n_linear": 17}, "n_linear=17"),
        ({"n_erb": 20}, "n_erb=20"),
    ],
)
def test_bad_hparams_raise_config_error(hp, pattern):
    hp = {**TINY, **hp}
    target = hp.pop("target", "mask")
    with pytest.raises(ConfigError, match=pattern):
        models.build_model("erbnet", (16, 17), target=target, **hp)
