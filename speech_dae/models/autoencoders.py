"""Patch autoencoders of the Simple Speech Denoising Autoencoder (Keras) lineage.

The seed trained 2-D convolutional autoencoders on 12-frame x 40-filter
fbank patches (Adam 1e-4, early stopping, sigmoid output with binary
cross-entropy on min-max scaled features). speech-dae keeps the layer plan and
changes what the seed's users asked for: type 1 is the Conv1D form (time is
the convolution axis, the bins are channels), type 2 the dense form; the
targets are standardised features, so the output layer is linear and the loss MSE
(``target="mapping"``), or a sigmoid gain on the noisy magnitude (``target="mask"``).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from ..errors import ConfigError
from .blocks import check_target, output_head, patch_input
from .blocks import max_norm as _max_norm

__all__ = ["build_type1", "build_type2"]


def build_type1(
    input_shape: tuple[int, int],
    *,
    target: str = "mapping",
    filters: Sequence[int] = (128, 32),
    kernel_size: int = 3,
    max_norm: float | None = 3.0,
    dropout: float = 0.0,
    residual: bool = True,
) -> keras.Model:
    """Conv1D encoder and Conv1DTranspose decoder over a ``(context, n_bins)`` patch.

    Encoder: ``Conv1D(f, kernel_size, relu)`` for ``f`` in ``filters`` (128 -> 32 by
    default); decoder: ``Conv1DTranspose`` through the same widths reversed
    (32 -> 128); output: ``Conv1D(n_bins, 1)``, linear (``target="mapping"``) or
    sigmoid (``target="mask"``). Weights carry a max-norm constraint, as in the
    seed's model type 1 (Simple Speech Denoising Autoencoder, a-n-rose).

    Parameters
    ----------
    input_shape : (context, n_bins)
        Frames per patch and feature bins.
    target : {"mapping", "mask"}
        ``mapping``: predict the clean features (output layer ``clean``);
        ``mask``: predict a gain in [0, 1] on the noisy magnitude (output layer
        ``mask``, sigmoid).
    filters : sequence of int
        Encoder channel counts, outermost first; the last is the bottleneck.
    kernel_size : int
        Frames per convolution kernel ("same" padding keeps ``context``).
    max_norm : float or None
        MaxNorm constraint on every kernel (None disables it).
    dropout : float
        Dropout after the bottleneck.
    residual : bool
        Add the input patch to the decoder output, so the network learns the
        correction from noisy to clean features (needs ``dataset.normalise: shared``
        so that noisy and clean share one scale; see
        :func:`speech_dae.models.blocks.output_head`). Ignored for ``target="mask"``.

    Returns
    -------
    keras.Model
        ``(batch, context, n_bins) -> (batch, context, n_bins)``, float32.

    Raises
    ------
    ConfigError
        For an unknown ``target`` or an empty ``filters``.
    """
    check_target("type1", target)
    if not filters:
        raise ConfigError("type1: filters must list at least one channel count, e.g. [128, 32]")
    context, n_bins = input_shape
    inputs = patch_input(input_shape)
    x = inputs
    for i, f in enumerate(filters):
        x = layers.Conv1D(
            int(f),
            kernel_size,
            padding="same",
            activation="relu",
            kernel_constraint=_max_norm(max_norm),
            name=f"enc_conv{i}",
        )(x)
    if dropout:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for i, f in enumerate(reversed(filters)):
        x = layers.Conv1DTranspose(
            int(f),
            kernel_size,
            padding="same",
            activation="relu",
            kernel_constraint=_max_norm(max_norm),
            name=f"dec_convT{i}",
        )(x)
    x = layers.Conv1D(n_bins, 1, padding="same", name="decoded")(x)
    return keras.Model(inputs, output_head(inputs, x, target=target, residual=residual), name="type1")


def build_type2(
    input_shape: tuple[int, int],
    *,
    target: str = "mapping",
    units: Sequence[int] = (512, 128),
    dropout: float = 0.1,
    max_norm: float | None = 3.0,
    residual: bool = True,
) -> keras.Model:
    """Dense autoencoder over the flattened ``(context, n_bins)`` patch.

    Encoder: ``Dense(u, relu)`` for ``u`` in ``units`` (the last is the
    bottleneck); decoder: the encoder widths mirrored without the bottleneck;
    output: ``Dense(context * n_bins)`` reshaped to the patch, linear
    (``target="mapping"``) or sigmoid (``target="mask"``). Dense form of the
    seed's model type 2 (Simple Speech Denoising Autoencoder, a-n-rose).

    Parameters
    ----------
    input_shape : (context, n_bins)
        Frames per patch and feature bins.
    target : {"mapping", "mask"}
        As for :func:`build_type1`.
    units : sequence of int
        Encoder widths, outermost first.
    dropout : float
        Dropout after every hidden layer (0 disables it).
    max_norm : float or None
        MaxNorm constraint on every kernel.
    residual : bool
        Add the input patch to the decoder output (see :func:`build_type1`).
        Ignored for ``target="mask"``.

    Returns
    -------
    keras.Model
        ``(batch, context, n_bins) -> (batch, context, n_bins)``, float32.

    Raises
    ------
    ConfigError
        For an unknown ``target`` or an empty ``units``.
    """
    check_target("type2", target)
    if not units:
        raise ConfigError("type2: units must list at least one width, e.g. [1024, 256]")
    context, n_bins = input_shape
    inputs = patch_input(input_shape)
    x = layers.Flatten(name="flatten")(inputs)
    widths = [int(u) for u in units]
    plan = [("enc", u) for u in widths] + [("dec", u) for u in reversed(widths[:-1])]
    for i, (part, u) in enumerate(plan):
        x = layers.Dense(u, activation="relu", kernel_constraint=_max_norm(max_norm), name=f"{part}_dense{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"{part}_dropout{i}")(x)
    x = layers.Dense(context * n_bins, name="dense_out")(x)
    x = layers.Reshape((context, n_bins), name="decoded")(x)
    return keras.Model(inputs, output_head(inputs, x, target=target, residual=residual), name="type2")
