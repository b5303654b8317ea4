"""speech_dae.models.cost: multiply-accumulates per frame, against counts worked out by hand."""

from __future__ import annotations

import pytest

from speech_dae.errors import ConfigError

keras = pytest.importorskip("keras")
from keras import layers  # noqa: E402

from speech_dae.models import MODEL_FEATURES, MODEL_TARGETS, MODELS, build_model, free_length  # noqa: E402
from speech_dae.models.cost import layer_macs, macs_per_frame, mmac_per_second  # noqa: E402

T = 6  # frames of every tiny model


def seq(*stack, bins: int = 10, frames: int | None = T) -> keras.Model:
    x = inputs = keras.Input((frames, bins))
    for layer in stack:
        x = layer(x)
    return keras.Model(inputs, x)


def test_dense_10_to_4_is_40_per_frame():
    assert macs_per_frame(seq(layers.Dense(4))) == 10 * 4


def test_conv1d_kernel3_4_to_8_channels_is_96_per_frame():
    model = seq(layers.Conv1D(8, 3, padding="causal"), bins=4)
    assert macs_per_frame(model) == 3 * 4 * 8


def test_conv1d_dilation_adds_reach_not_work_and_groups_divide_it():
    dilated = seq(layers.Conv1D(8, 3, dilation_rate=4, padding="causal"), bins=4)
    assert macs_per_frame(dilated) == 96
    grouped = seq(layers.Conv1D(8, 3, groups=2, padding="same"), bins=4)
    assert macs_per_frame(grouped) == 3 * (4 // 2) * 8  # each output channel sees 2 of the 4 inputs


def test_conv1d_valid_padding_counts_only_the_output_frames():
    model = seq(layers.Conv1D(8, 3, padding="valid"), bins=4, frames=10)
    assert macs_per_frame(model) == round(8 * 96 / 10)  # 8 output frames of 96 MACs over 10 input frames


def test_conv2d_per_frame_is_one_time_step_of_the_image():
    # (T, 8 bins, 1) image, 3x3 kernel, 1 -> 5 channels, "same": 8 bins x 5 ch x 9 taps x 1 in per frame
    model = seq(layers.Reshape((T, 8, 1)), layers.Conv2D(5, (3, 3), padding="same"), bins=8)
    assert macs_per_frame(model) == 8 * 5 * 9
    # stride 2 on both axes: T/2 x 4 output positions for T input frames
    strided = seq(layers.Reshape((T, 8, 1)), layers.Conv2D(5, (3, 3), strides=2, padding="same"), bins=8)
    assert macs_per_frame(strided) == round((T // 2) * 4 * 5 * 9 / T)


def test_depthwise_and_transposed_conv2d():
    depthwise = seq(
        layers.Reshape((T, 4, 2)), layers.DepthwiseConv2D((3, 1), depth_multiplier=3, padding="same"), bins=8
    )
    assert macs_per_frame(depthwise) == 4 * 2 * 3 * 3  # positions x in ch x multiplier x taps
    # transposed: every input position spreads its 2 channels over a 2x2 kernel into 3 filters
    transposed = seq(layers.Reshape((T, 4, 2)), layers.Conv2DTranspose(3, (2, 2), strides=2), bins=8)
    assert macs_per_frame(transposed) == 4 * 2 * 4 * 3


def test_recurrent_layers_count_their_gates():
    assert macs_per_frame(seq(layers.GRU(5, return_sequences=True))) == 3 * (10 * 5 + 5 * 5)
    assert macs_per_frame(seq(layers.LSTM(5, return_sequences=True))) == 4 * (10 * 5 + 5 * 5)
    both = seq(layers.Bidirectional(layers.GRU(5, return_sequences=True)))
    assert macs_per_frame(both) == 2 * 3 * (10 * 5 + 5 * 5)


def test_free_layers_count_zero_and_time_distributed_counts_its_layer():
    free = seq(layers.LayerNormalization(), layers.Activation("relu"), layers.Dropout(0.1), layers.Rescaling(2.0))
    assert macs_per_frame(free) == 0
    assert macs_per_frame(seq(layers.TimeDistributed(layers.Dense(4)))) == 40


def test_shared_layer_counts_every_call():
    inputs = keras.Input((T, 10))
    dense = layers.Dense(10)
    model = keras.Model(inputs, dense(dense(inputs)))
    assert macs_per_frame(model) == 2 * 100


def test_nested_model_is_the_sum_of_its_layers():
    inner = seq(layers.Dense(4), layers.Dense(2), bins=10)
    outer = seq(inner, layers.Dense(3), bins=10)
    assert macs_per_frame(outer) == 40 + 8 + 6


def test_unknown_layer_raises_naming_it():
    class Mystery(layers.Layer):
        def call(self, x):
            return x * 2.0

    with pytest.raises(ConfigError, match=r"'mystery'.*Mystery.*add a rule"):
        macs_per_frame(seq(layers.Dense(4), Mystery(name="mystery")))


def test_best_recipe_tcn_by_hand():
    # configs/best.yaml: 257 bins, units [256], 128 channels, kernel 3, dilations 1 2 4 8, mask head
    model = build_model(
        "tcn", (64, 257), target="mask", units=[256], channels=128, kernel_size=3, dilations=[1, 2, 4, 8]
    )
    enc = 257 * 256 + 256 * 128  # enc0, bottleneck_in
    blocks = 4 * (3 * 128 * 128 + 128 * 128)  # dilated conv + 1x1 projection per block
    dec = 128 * 256 + 256 * 257  # dec0, decoded
    assert enc + blocks + dec == 459_264
    assert macs_per_frame(model) == 459_264
    assert macs_per_frame(free_length(model)) == 459_264  # counted at DEFAULT_FRAMES
    assert mmac_per_second(model, 125) == pytest.approx(459_264 * 125 / 1e6)  # 57.408 MMAC/s
    # every weight is used once per frame: MACs = parameters - biases - LayerNorm scales and offsets
    biases = 256 + 128 + 4 * (128 + 128) + 256 + 257
    assert model.count_params() - biases - 4 * 2 * 128 == 459_264


def test_frames_of_a_fixed_model_must_match_and_rate_must_be_positive():
    with pytest.raises(ConfigError, match="takes 6 frames per call"):
        macs_per_frame(seq(layers.Dense(4)), frames=8)
    with pytest.raises(ConfigError, match="frames_per_second"):
        mmac_per_second(seq(layers.Dense(4)), 0)
    assert macs_per_frame(seq(layers.Dense(4), frames=None), frames=3) == 40


def test_layer_macs_of_a_dense_layer_with_given_shapes():
    dense = layers.Dense(4)
    dense.build((None, 10))
    assert layer_macs(dense, (None, 7, 10), (None, 7, 4)) == 7 * 40


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registry_model_is_counted(name):
    shape = (256, 1) if MODEL_FEATURES[name] == ("waveform",) else (8, 16)
    assert macs_per_frame(build_model(name, shape, target=MODEL_TARGETS[name][-1])) > 0
