"""2-D convolutional autoencoder and U-Net over spectrogram patches.

Source: the CNN / U-Net denoising autoencoder (github gfmmiranda, PyTorch,
MS-SNSD at 16 kHz). Its ``ConvDenoisingAutoencoder`` has three stride-2
``Conv2d`` layers (16 -> 32 -> 64 filters, 3x3) and three stride-2
transposed convolutions back to one channel; its ``UNet`` has double
``Conv -> BatchNorm -> ReLU -> Dropout`` blocks, 2x2 max pooling, a bottleneck
of twice the deepest width, 2x2 stride-2 transposed convolutions, skip
connections by concatenation and a 1x1 output convolution; its Optuna study
found ``base_filters`` 32, ``depth`` 4 best (val loss 0.0115, dropout ~0.005).

The reference worked on whole spectrograms; speech-dae feeds ``(context,
n_bins)`` patches (e.g. 11 x 257 or 11 x 40). Both models zero-pad the patch
inside the network to multiples of ``2 ** depth`` along both axes
(``ZeroPadding2D``, split between the two ends) and crop the output back to
exactly ``(context, n_bins)`` (``Cropping2D``), so any odd size works.
"""

from __future__ import annotations

import keras
from keras import layers

from .blocks import (
    check_target,
    crop_padding,
    from_image,
    output_head,
    pad_to_multiple,
    patch_input,
    positive_int,
    to_image,
)

__all__ = ["build_cnn2d", "build_unet"]


def build_cnn2d(
    input_shape: tuple[int, int],
    *,
    target: str = "mapping",
    filters: int = 16,
    depth: int = 3,
    kernel_size: int = 3,
    residual: bool = True,
) -> keras.Model:
    """Strided Conv2D encoder and Conv2DTranspose decoder over a ``(context, n_bins)`` patch.

    The patch becomes a one-channel image, zero-padded to multiples of
    ``2 ** depth``. Encoder: ``Conv2D(filters * 2**i, kernel_size, strides=2,
    relu)`` for ``i`` in ``0 .. depth-1`` (16 -> 32 -> 64 by default); decoder:
    ``Conv2DTranspose(filters * 2**i, kernel_size, strides=2, relu)`` for ``i``
    from ``depth-2`` down to 0, then ``Conv2DTranspose(1, kernel_size,
    strides=2)``, linear; cropped back to the patch. Output linear
    (``mapping``) or sigmoid (``mask``). Source: gfmmiranda's
    ``ConvDenoisingAutoencoder`` (CNN / U-Net denoising autoencoder, MS-SNSD).

    Parameters
    ----------
    input_shape : (context, n_bins)
        Frames per patch and feature bins; any sizes (padded inside the model).
    target : {"mapping", "mask"}
        ``mapping``: predict the clean features (output layer ``clean``);
        ``mask``: predict a gain in [0, 1] on the noisy magnitude (output layer
        ``mask``, sigmoid).
    filters : int
        Filters of the first encoder layer; each deeper layer doubles them.
    depth : int
        Stride-2 layers in the encoder (and transposed ones in the decoder).
    kernel_size : int
        Kernel height and width.
    residual : bool
        ``mapping`` only: output = input + decoded, a layer named ``clean``
        (speech-dae's addition, as for ``type1``/``type2``: the network learns
        the noisy -> clean correction; needs ``dataset.normalise: shared``).
        The reference has none: set ``false`` for it. Ignored for ``mask``.

    Returns
    -------
    keras.Model
        ``(batch, context, n_bins) -> (batch, context, n_bins)``, float32.

    Raises
    ------
    ConfigError
        For an unknown ``target`` or a ``filters``, ``depth`` or
        ``kernel_size`` that is not a whole number >= 1.
    """
    check_target("cnn2d", target)
    filters = positive_int("cnn2d", "filters", filters, 16)
    depth = positive_int("cnn2d", "depth", depth, 3)
    kernel_size = positive_int("cnn2d", "kernel_size", kernel_size, 3)
    inputs = patch_input(input_shape)
    x, pads = pad_to_multiple(to_image(inputs, input_shape), input_shape, 2**depth)
    for i in range(depth):
        x = layers.Conv2D(
            filters * 2**i, kernel_size, strides=2, padding="same", activation="relu", name=f"enc_conv{i}"
        )(x)
    for j, i in enumerate(reversed(range(depth - 1))):
        x = layers.Conv2DTranspose(
            filters * 2**i, kernel_size, strides=2, padding="same", activation="relu", name=f"dec_convT{j}"
        )(x)
    x = layers.Conv2DTranspose(1, kernel_size, strides=2, padding="same", name="dec_out")(x)
    x = from_image(crop_padding(x, pads), input_shape)
    return keras.Model(inputs, output_head(inputs, x, target=target, residual=residual), name="cnn2d")


def _conv_block(x, filters: int, kernel_size: int, *, batch_norm: bool, dropout: float, name: str):
    """Two ``Conv2D -> BatchNorm -> ReLU -> Dropout`` layers (the reference U-Net's ``conv_block``)."""
    for a in range(2):
        x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=not batch_norm, name=f"{name}_conv{a}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{a}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{a}")(x)
        if dropout:
            x = layers.Dropout(float(dropout), name=f"{name}_dropout{a}")(x)
    return x


def build_unet(
    input_shape: tuple[int, int],
    *,
    target: str = "mapping",
    base_filters: int = 32,
    depth: int = 4,
    kernel_size: int = 3,
    dropout: float = 0.0,
    batch_norm: bool = True,
    residual: bool = True,
) -> keras.Model:
    """U-Net with skip connections over a ``(context, n_bins)`` patch.

    The patch becomes a one-channel image, zero-padded to multiples of
    ``2 ** depth``. Encoder level ``d`` (0 .. depth-1): a conv block of
    ``base_filters * 2**d`` filters (two ``Conv2D(kernel_size) -> BatchNorm ->
    ReLU -> Dropout``), kept as the skip, then ``MaxPooling2D(2)``; bottleneck:
    a block of ``base_filters * 2**depth``; decoder level ``d`` (depth-1 .. 0):
    ``Conv2DTranspose(base_filters * 2**d, 2, strides=2)``, ``Concatenate``
    with the skip, a conv block; output ``Conv2D(1, 1)``, cropped back to the
    patch, linear (``mapping``) or sigmoid (``mask``). Source: gfmmiranda's
    ``UNet`` (CNN / U-Net denoising autoencoder, MS-SNSD); defaults are its
    Optuna best, ``base_filters`` 32, ``depth`` 4.

    Parameters
    ----------
    input_shape : (context, n_bins)
        Frames per patch and feature bins; any sizes (padded inside the model).
    target : {"mapping", "mask"}
        ``mapping``: predict the clean features (output layer ``clean``);
        ``mask``: predict a gain in [0, 1] on the noisy magnitude (output layer
        ``mask``, sigmoid).
    base_filters : int
        Filters of the first level; each deeper level doubles them.
    depth : int
        Pooling levels (the input is padded to multiples of ``2 ** depth``).
    kernel_size : int
        Kernel height and width of the block convolutions.
    dropout : float
        Dropout after every block convolution (reference code default 0.1,
        Optuna best ~0.005; 0 disables it).
    batch_norm : bool
        BatchNormalization after every block convolution (as the reference).
    residual : bool
        ``mapping`` only: output = input + decoded, a layer named ``clean``
        (speech-dae's addition, as for ``type1``/``type2``; needs
        ``dataset.normalise: shared``). The reference has none: set ``false``
        for it. Ignored for ``mask``.

    Returns
    -------
    keras.Model
        ``(batch, context, n_bins) -> (batch, context, n_bins)``, float32.

    Raises
    ------
    ConfigError
        For an unknown ``target`` or a ``base_filters``, ``depth`` or
        ``kernel_size`` that is not a whole number >= 1.
    """
    check_target("unet", target)
    base_filters = positive_int("unet", "base_filters", base_filters, 32)
    depth = positive_int("unet", "depth", depth, 4)
    kernel_size = positive_int("unet", "kernel_size", kernel_size, 3)
    block = dict(kernel_size=kernel_size, batch_norm=bool(batch_norm), dropout=dropout)
    inputs = patch_input(input_shape)
    x, pads = pad_to_multiple(to_image(inputs, input_shape), input_shape, 2**depth)
    skips = []
    for d in range(depth):
        x = _conv_block(x, base_filters * 2**d, name=f"enc{d}", **block)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{d}_pool")(x)
    x = _conv_block(x, base_filters * 2**depth, name="bottleneck", **block)
    for d in reversed(range(depth)):
        x = layers.Conv2DTranspose(base_filters * 2**d, 2, strides=2, name=f"dec{d}_up")(x)
        x = layers.Concatenate(name=f"dec{d}_skip")([x, skips[d]])
        x = _conv_block(x, base_filters * 2**d, name=f"dec{d}", **block)
    x = layers.Conv2D(1, 1, name="out_conv")(x)
    x = from_image(crop_padding(x, pads), input_shape)
    return keras.Model(inputs, output_head(inputs, x, target=target, residual=residual), name="unet")
