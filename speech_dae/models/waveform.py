"""Waveform (time-domain) autoencoder of the Conv1D audio-restoration design.

The reference (Keras) restores audio in chunks of ``CHUNK_SIZE = 2048`` raw
samples with a Conv1D + ReLU + MaxPooling1D encoder, a latent bottleneck and
an UpSampling1D + Conv1D decoder, trained with MSE and Adam; inference
overlap-adds Hann-weighted chunks every ``chunk_size / 2`` samples (see
``features.py``, feature type ``waveform``).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from ..errors import ConfigError
from .blocks import check_target, output_head, positive_ints

__all__ = ["WAVEFORM_TARGETS", "build_conv1d_time"]

#: A network that outputs samples can only map; a gain on a magnitude has no meaning for raw samples.
WAVEFORM_TARGETS: tuple[str, ...] = ("mapping",)


def build_conv1d_time(
    input_shape: tuple[int, int],
    *,
    target: str = "mapping",
    filters: Sequence[int] = (32, 16),
    kernel_size: int = 9,
    residual: bool = False,
) -> keras.Model:
    """Conv1D / MaxPooling1D encoder and UpSampling1D / Conv1D decoder over raw waveform chunks.

    Encoder, per entry ``f`` of ``filters``: ``Conv1D(f, kernel_size, relu)`` then
    ``MaxPooling1D(2)``; decoder, through ``filters`` reversed:
    ``UpSampling1D(2)`` then ``Conv1D(f, kernel_size, relu)``; output
    ``Conv1D(1, kernel_size)``, linear, named ``clean``. "same" padding
    throughout. Source: the Conv1D audio-restoration autoencoder (Keras,
    ``CHUNK_SIZE = 2048``); its layer widths are not recorded in
    ``references.md``, so ``filters`` (32, 16) and ``kernel_size`` 9 are
    speech-dae's choices.

    Parameters
    ----------
    input_shape : (chunk_size, 1)
        Samples per chunk (``features.chunk_size``, 2048 by default) and one
        channel. ``chunk_size`` must be divisible by ``2 ** len(filters)``.
    target : {"mapping"}
        Only ``mapping`` (predict the clean samples) is defined for waveforms.
    filters : sequence of int
        Encoder channel counts, outermost first; one MaxPooling1D(2) per entry,
        so the bottleneck is ``chunk_size / 2 ** len(filters)`` steps of
        ``filters[-1]`` channels.
    kernel_size : int
        Samples per convolution kernel.
    residual : bool
        Output = input + decoded (learn the correction of the noisy samples).
        The reference has none, hence the default ``False``.

    Returns
    -------
    keras.Model
        ``(batch, chunk_size, 1) -> (batch, chunk_size, 1)``, float32 samples
        (in [-1, 1] after the dataset's scaling; the output is not bounded).

    Raises
    ------
    ConfigError
        For ``target="mask"``, an empty ``filters``, or a ``chunk_size`` that
        ``2 ** len(filters)`` does not divide.
    """
    if target == "mask":
        raise ConfigError(
            "model 'conv1d_time' predicts waveform samples, so it supports only target='mapping' "
            "(a mask is a gain on a magnitude spectrum); set training.target=mapping, or use a "
            "spectral model (type1, type2, dense_ln, cnn2d, unet) for target=mask"
        )
    check_target("conv1d_time", target, WAVEFORM_TARGETS)
    widths = positive_ints("conv1d_time", "filters", filters, "[32, 16]")
    chunk_size, channels = (int(d) for d in input_shape)
    step = 2 ** len(widths)
    if chunk_size % step:
        fit = max(step, chunk_size // step * step)
        raise ConfigError(
            f"conv1d_time: chunk_size={chunk_size} samples is not divisible by 2**{len(widths)} = {step} "
            f"(one MaxPooling1D(2) per entry of filters={widths}); set features.chunk_size to a "
            f"multiple of {step}, e.g. {fit}, or use fewer filters"
        )
    inputs = keras.Input(shape=(chunk_size, channels), name="noisy")
    x = inputs
    for i, f in enumerate(widths):
        x = layers.Conv1D(f, kernel_size, padding="same", activation="relu", name=f"enc_conv{i}")(x)
        x = layers.MaxPooling1D(2, name=f"enc_pool{i}")(x)
    for i, f in enumerate(reversed(widths)):
        x = layers.UpSampling1D(2, name=f"dec_up{i}")(x)
        x = layers.Conv1D(f, kernel_size, padding="same", activation="relu", name=f"dec_conv{i}")(x)
    x = layers.Conv1D(channels, kernel_size, padding="same", name="decoded")(x)
    return keras.Model(inputs, output_head(inputs, x, target=target, residual=residual), name="conv1d_time")
