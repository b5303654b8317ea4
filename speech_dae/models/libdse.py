"""The libdse dense denoising autoencoder (Nossier et al. 2020, architecture (d)).

libdse (github nikpau, PyTorch) trains it frame by frame on log-magnitude
STFT frames of LibriSpeech + DEMAND at 8 kHz: LayerNorm on the input, then
``Linear -> ReLU -> LayerNorm`` blocks 2048 -> 500 -> 180 -> 500 -> 2048 and a
linear output layer of the input width. speech-dae feeds it the flattened
``(context, n_bins)`` patch; with ``context = 1`` it is libdse's frame-wise
model (257 -> 257 bins for ``logmag`` at ``n_fft`` 512).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from .blocks import check_target, output_head, patch_input, positive_ints

__all__ = ["build_dense_ln"]


def build_dense_ln(
    input_shape: tuple[int, int],
    *,
    target: str = "mapping",
    units: Sequence[int] = (2048, 500, 180, 500, 2048),
    dropout: float = 0.0,
    residual: bool = True,
) -> keras.Model:
    """LayerNorm'd dense autoencoder over the flattened ``(context, n_bins)`` patch (libdse).

    ``Flatten -> LayerNormalization`` on the input; for every ``u`` in ``units``
    ``Dense(u) -> ReLU -> LayerNormalization`` (-> ``Dropout``); output
    ``Dense(context * n_bins)`` reshaped to the patch, linear (``mapping``) or
    sigmoid (``mask``). Source: libdse ``VanillaAutoEncoder`` (github nikpau),
    Nossier et al. 2020, architecture (d).

    Parameters
    ----------
    input_shape : (context, n_bins)
        Frames per patch and feature bins (1 frame gives libdse's frame-wise model).
    target : {"mapping", "mask"}
        ``mapping``: predict the clean features (output layer ``clean``);
        ``mask``: predict a gain in [0, 1] on the noisy magnitude (output layer
        ``mask``, sigmoid).
    units : sequence of int
        Every hidden width in order, encoder, bottleneck and decoder
        (libdse: 2048, 500, 180, 500, 2048; 180 is the bottleneck). Not mirrored.
    dropout : float
        Dropout after every hidden block (0 disables it; libdse's default).
    residual : bool
        ``mapping`` only: output = input + decoded, a layer named ``clean``
        (speech-dae's addition, as for ``type1``/``type2``: learn the
        noisy -> clean correction; needs ``dataset.normalise: shared``).
        libdse has no residual: set ``false`` for the original. Ignored for ``mask``.

    Returns
    -------
    keras.Model
        ``(batch, context, n_bins) -> (batch, context, n_bins)``, float32.

    Raises
    ------
    ConfigError
        For an unknown ``target`` or an empty or non-positive ``units``.
    """
    check_target("dense_ln", target)
    widths = positive_ints("dense_ln", "units", units, "[2048, 500, 180, 500, 2048]")
    context, n_bins = input_shape
    inputs = patch_input(input_shape)
    x = layers.Flatten(name="flatten")(inputs)
    x = layers.LayerNormalization(name="input_norm")(x)
    for i, u in enumerate(widths):
        x = layers.Dense(u, activation="relu", name=f"dense{i}")(x)
        x = layers.LayerNormalization(name=f"norm{i}")(x)
        if dropout:
            x = layers.Dropout(float(dropout), name=f"dropout{i}")(x)
    x = layers.Dense(context * n_bins, name="dense_out")(x)
    x = layers.Reshape((context, n_bins), name="decoded")(x)
    return keras.Model(inputs, output_head(inputs, x, target=target, residual=residual), name="dense_ln")
