"""A dense encoder/decoder around a causal dilated temporal convolutional (TCN) bottleneck.

The other spectral models see the frames of one patch as a flat vector
(``type2``, ``dense_ln``) or through small kernels (``type1``, ``cnn2d``);
``tcn`` keeps the per-frame encoder/decoder of a dense model and adds a stack
of dilated ``Conv1D`` residual blocks over the frame axis in its bottleneck, so
every output frame sees a long stretch of past frames: with kernel 3 and
dilations 1, 2, 4, 8 the receptive field is 31 frames (about 0.25 s at a
128-sample hop and 16 kHz). Sources: Bai, Kolter & Koltun 2018 (TCN: causal
dilated convolutions with residual blocks); Pandey & Wang 2019 (TCNN, a TCN
bottleneck in an encoder-decoder for speech enhancement); Luo & Mesgarani 2019
(Conv-TasNet, stacks of dilated 1-D convolution blocks with exponentially
growing dilation).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from ..errors import ConfigError
from .blocks import check_target, output_head, patch_input, positive_int, positive_ints

__all__ = ["build_tcn", "receptive_field"]


def receptive_field(kernel_size: int, dilations: Sequence[int]) -> int:
    """Frames of input that one output frame of the TCN bottleneck depends on.

    Each residual block ``Conv1D(kernel_size, dilation_rate=d) -> 1x1 Conv1D``
    widens the receptive field by ``(kernel_size - 1) * d`` frames, so the
    stack sees ``1 + (kernel_size - 1) * sum(dilations)`` frames: with
    ``causal`` padding output frame ``t`` depends on input frames
    ``t - receptive_field + 1 .. t`` (fewer at the start of a patch).

    Parameters
    ----------
    kernel_size : int
        Temporal kernel of the dilated convolutions, frames (>= 1).
    dilations : sequence of int
        Dilation of each residual block, frames (each >= 1).

    Returns
    -------
    int
        The receptive field in frames, e.g. 31 for kernel 3 and dilations 1, 2, 4, 8.

    Raises
    ------
    ConfigError
        For a non-positive ``kernel_size`` or an empty or non-positive ``dilations``.
    """
    k = positive_int("tcn", "kernel_size", kernel_size, 3)
    ds = positive_ints("tcn", "dilations", dilations, "[1, 2, 4, 8]")
    return 1 + (k - 1) * sum(ds)


def build_tcn(
    input_shape: tuple[int, int],
    *,
    target: str = "mapping",
    units: Sequence[int] = (512,),
    channels: int = 256,
    kernel_size: int = 3,
    dilations: Sequence[int] = (1, 2, 4, 8),
    dropout: float = 0.0,
    causal: bool = True,
    residual: bool = True,
) -> keras.Model:
    """Per-frame dense encoder/decoder with a causal dilated Conv1D (TCN) bottleneck.

    Encoder, per frame (``Dense`` on the last axis): for every ``u`` in
    ``units`` ``Dense(u) -> ReLU`` (layers ``enc{i}``), then ``Dense(channels)``
    (``bottleneck_in``). Bottleneck, over the frame axis: for every ``d`` in
    ``dilations`` a residual block ``Conv1D(channels, kernel_size,
    dilation_rate=d) -> ReLU -> LayerNormalization (-> Dropout) ->
    Conv1D(channels, 1)`` added to the block's input (layers ``tcn{i}_*``).
    Decoder, per frame: ``Dense(u) -> ReLU`` for ``units`` in reverse order
    (``dec{i}``), then ``Dense(n_bins)`` (``decoded``), linear (``mapping``) or
    sigmoid (``mask``). Only stock Keras layers: ``keras.saving.load_model``
    needs no ``custom_objects``.

    The bottleneck's receptive field is :func:`receptive_field` =
    ``1 + (kernel_size - 1) * sum(dilations)`` frames (31 by default). With
    ``causal`` (zero padding on the left only) output frame ``t`` depends on
    input frames ``<= t`` only, so within a patch the first frames see less
    context than the last; a patch shorter than the receptive field uses only
    part of it. At inference stage 04 still predicts whole patches every
    ``reconstruct.patch_hop`` frames and overlap-averages them, so the
    streaming latency is that of any model with the same ``context``.

    Parameters
    ----------
    input_shape : (context, n_bins)
        Frames per patch and feature bins. Any ``context >= 1`` builds; set
        ``dataset.context`` to at least the receptive field to use all of it.
    target : {"mapping", "mask"}
        ``mapping``: predict the clean features (output layer ``clean``);
        ``mask``: predict a gain in [0, 1] on the noisy magnitude (output layer
        ``mask``, sigmoid).
    units : sequence of int
        Widths of the per-frame encoder layers before the bottleneck; the
        decoder mirrors them. May be empty (just ``Dense(channels)``).
    channels : int
        Width of the bottleneck: the encoder's last Dense and every Conv1D.
    kernel_size : int
        Temporal kernel of the dilated convolutions, frames.
    dilations : sequence of int
        Dilation of each residual block, frames (Conv-TasNet / TCN: 1, 2, 4, 8, ...).
    dropout : float
        Dropout in every residual block, in [0, 1) (0 disables it).
    causal : bool
        ``True``: ``padding="causal"``, output frame ``t`` sees input frames
        ``<= t`` only; ``False``: ``padding="same"``, centred kernels that also
        look ahead ``(kernel_size - 1) // 2 * sum(dilations)`` frames
        (odd ``kernel_size``).
    residual : bool
        ``mapping`` only: output = input + decoded, a layer named ``clean``
        (learn the noisy -> clean correction; needs ``dataset.normalise:
        shared``). Ignored for ``mask``.

    Returns
    -------
    keras.Model
        ``(batch, context, n_bins) -> (batch, context, n_bins)``, float32.

    Raises
    ------
    ConfigError
        For an unknown ``target``, non-positive ``channels`` or ``kernel_size``,
        empty or non-positive ``dilations``, non-positive ``units``, a
        ``dropout`` outside [0, 1) or a non-boolean ``causal``.
    """
    check_target("tcn", target)
    if not isinstance(units, (list, tuple)):
        raise ConfigError(f"tcn: units={units!r} must be a list of whole numbers >= 1 (may be empty), e.g. [512]")
    widths = positive_ints("tcn", "units", units, "[512]") if units else []
    width = positive_int("tcn", "channels", channels, 256)
    k = positive_int("tcn", "kernel_size", kernel_size, 3)
    rates = positive_ints("tcn", "dilations", dilations, "[1, 2, 4, 8]")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"tcn: dropout={dropout!r} must be a number in [0, 1), e.g. 0.1")
    if not isinstance(causal, bool):
        raise ConfigError(f"tcn: causal={causal!r} must be true (look back only) or false (centred kernels)")
    padding = "causal" if causal else "same"
    n_bins = int(input_shape[1])

    inputs = patch_input(input_shape)
    x = inputs
    for i, u in enumerate(widths):
        x = layers.Dense(u, activation="relu", name=f"enc{i}")(x)
    x = layers.Dense(width, name="bottleneck_in")(x)
    for i, d in enumerate(rates):
        h = layers.Conv1D(width, k, dilation_rate=d, padding=padding, name=f"tcn{i}_conv")(x)
        h = layers.Activation("relu", name=f"tcn{i}_relu")(h)
        h = layers.LayerNormalization(name=f"tcn{i}_norm")(h)
        if dropout:
            h = layers.Dropout(float(dropout), name=f"tcn{i}_dropout")(h)
        h = layers.Conv1D(width, 1, name=f"tcn{i}_proj")(h)
        x = layers.Add(name=f"tcn{i}_add")([x, h])
    for i, u in enumerate(reversed(widths)):
        x = layers.Dense(u, activation="relu", name=f"dec{i}")(x)
    x = layers.Dense(n_bins, name="decoded")(x)
    return keras.Model(inputs, output_head(inputs, x, target=target, residual=residual), name="tcn")
