"""A small convolutional denoiser on ERB bands, after the techniques of GTCRN and DeepFilterNet.

``erbnet`` predicts a magnitude mask from the log-magnitude STFT with few
multiply-accumulates per frame (about 0.3 M, against 0.46 M for the best
recipe's ``tcn``), using the tricks of the small state-of-the-art denoisers:

- **ERB-band compression** of the high bins (Rong et al. 2024, GTCRN;
  Schröter et al. 2022, DeepFilterNet): the lowest ``n_linear`` bins are kept,
  the rest are pooled into ``n_erb`` triangular bands equally spaced on the
  ERB-rate scale (Glasberg & Moore 1990), and the mask is expanded back by
  interpolation. Both are fixed matrices in non-trainable ``Dense`` layers.
- **Frequency-strided convolutions** over the band axis (an encoder / decoder
  with skip connections, as GTCRN's and CRN's), so the same kernels serve
  every pitch and every band: they see a band and its neighbours, which is
  GTCRN's subband feature unfolding done by the first kernel.
- **Grouped temporal convolutions**: each bottleneck block is a causal
  dilated depthwise convolution over (time, band), a pointwise convolution,
  and a fully connected layer across the bands of each channel (global
  frequency context at 1/C of a dense layer's cost), with a residual path
  (GTCRN's grouped temporal convolution blocks, its dual-path RNN replaced by
  convolutions, which train faster on a CPU).

Every layer is causal in time except the optional look-ahead of the first
block, so the model runs on whole sequences (:func:`erbnet_context`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers

from ..errors import ConfigError
from .blocks import check_lookahead, check_target, patch_input, positive_int, positive_ints

__all__ = ["build_erbnet", "erb_matrices", "erbnet_context"]


def _erb_rate(hz):
    """ERB-rate (Cams) of a frequency in Hz (Glasberg & Moore 1990)."""
    return 21.4 * np.log10(1.0 + 0.00437 * np.asarray(hz, np.float64))


def _erb_hz(cams):
    return (10.0 ** (np.asarray(cams, np.float64) / 21.4) - 1.0) / 0.00437


def erb_matrices(n_bins: int, sample_rate: int, n_linear: int, n_erb: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed band compression and expansion of :func:`build_erbnet`.

    Parameters
    ----------
    n_bins : int
        STFT bins, ``n_fft // 2 + 1`` (257 for 512).
    sample_rate : int
        Hz; the bins span 0 .. sample_rate / 2.
    n_linear : int
        Lowest bins kept as they are (65 bins = 0-2 kHz for 512 at 16 kHz).
    n_erb : int
        Triangular bands above them, centres equally spaced in ERB rate from the
        last linear bin to the Nyquist frequency.

    Returns
    -------
    compress : np.ndarray [shape=(n_bins, n_linear + n_erb)], float32
        Each band's column averages its bins (columns sum to 1).
    expand : np.ndarray [shape=(n_linear + n_erb, n_bins)], float32
        Each bin's column interpolates the bands covering it (columns sum to 1).

    Raises
    ------
    ConfigError
        If ``n_linear`` is not in ``1 .. n_bins - 1`` or there are more bands than bins above it.
    """
    if not 1 <= n_linear < n_bins or not 1 <= n_erb <= n_bins - n_linear:
        raise ConfigError(
            f"erbnet: n_linear={n_linear} and n_erb={n_erb} must satisfy 1 <= n_linear < n_bins and "
            f"1 <= n_erb <= n_bins - n_linear for {n_bins} bins, e.g. 65 and 64 for n_fft 512"
        )
    freqs = np.linspace(0.0, sample_rate / 2.0, n_bins)
    edges = _erb_hz(np.linspace(_erb_rate(freqs[n_linear - 1]), _erb_rate(sample_rate / 2.0), n_erb + 2))
    compress = np.zeros((n_bins, n_linear + n_erb), np.float64)
    compress[np.arange(n_linear), np.arange(n_linear)] = 1.0
    high = freqs[n_linear:]
    for b in range(n_erb):
        lo, mid, hi = edges[b : b + 3]
        w = np.clip(np.minimum((high - lo) / (mid - lo), (hi - high) / (hi - mid)), 0.0, None)
        if not w.any():  # a band narrower than a bin: its nearest bin
            w[np.argmin(np.abs(high - mid))] = 1.0
        compress[n_linear:, n_linear + b] = w
    expand = compress.T.copy()
    lone = expand.sum(axis=0) < 1e-6  # the Nyquist bin (a band edge): its nearest band centre
    expand[:, lone] = 0.0
    centres = np.concatenate([freqs[:n_linear], edges[1:-1]])
    expand[np.argmin(np.abs(centres[:, None] - freqs[None, lone]), axis=0), np.flatnonzero(lone)] = 1.0
    compress /= compress.sum(axis=0, keepdims=True)
    expand /= expand.sum(axis=0, keepdims=True)
    return compress.astype(np.float32), expand.astype(np.float32)


def erbnet_context(dilations: Sequence[int] = (1, 2, 4, 8, 1, 2, 4, 8), lookahead: int = 0, **_) -> tuple[int, int]:
    """``(past, future)`` frames an output frame of :func:`build_erbnet` depends on.

    Every block's temporal kernel is 3 frames at dilation ``d``: ``2 d`` frames of reach, all in the
    past except the first block's ``lookahead``.
    """
    ds = positive_ints("erbnet", "dilations", dilations, "[1, 2, 4, 8]")
    shift = check_lookahead("erbnet", lookahead, 3, ds[0])
    return 2 * sum(ds) - shift, shift


def build_erbnet(
    input_shape: tuple[int, int],
    *,
    target: str = "mapping",
    channels: int = 16,
    dilations: Sequence[int] = (1, 2, 4, 8, 1, 2, 4, 8),
    n_linear: int | None = None,
    n_erb: int | None = None,
    sample_rate: int = 16000,
    lookahead: int = 0,
) -> keras.Model:
    """ERB-band convolutional mask estimator (see the module docstring for the design and sources).

    Layers: ``erb_compress`` (fixed ``n_bins -> n_linear + n_erb``), two frequency-strided
    ``Conv2D`` (kernels 1x5 and 1x3, stride 2 over bands, BatchNorm, PReLU: ``enc0``, ``enc1``);
    one block per dilation ``d``: causal depthwise ``3x3`` over (time, band) at time dilation
    ``d``, BatchNorm, PReLU, pointwise ``Conv2D``, a ``Dense`` across the bands of every channel
    added to it, and the block's input added (``gtc{i}_*``); two ``Conv2DTranspose`` decoders with
    the encoders' outputs concatenated (``dec1``, ``dec0``); a sigmoid band mask; ``erb_expand``
    (fixed) to the ``n_bins`` gains of layer ``mask``.

    Parameters
    ----------
    input_shape : (context, n_bins)
        Frames per patch and STFT bins (a log-magnitude STFT feature, ``n_fft // 2 + 1`` bins).
    target : {"mask"}
        Only a mask (the ERB expansion interpolates gains, not features); the registry's default
        ``mapping`` is refused with a message that says so.
    channels : int
        Channels of every convolution.
    dilations : sequence of int
        Time dilation of each bottleneck block (kernel 3); receptive field ``1 + 2 * sum``
        frames (61 for the default two stacks of 1, 2, 4, 8).
    n_linear, n_erb : int, optional
        See :func:`erb_matrices`; by default ``n_bins // 4 + 1`` and ``n_bins // 4`` (65 and 64
        for 257 bins: the bins up to 2 kHz at 16 kHz, and 64 bands above).
    sample_rate : int
        Hz, for the ERB band edges.
    lookahead : int
        Future frames each output sees (``0 .. 2 * dilations[0]``), via the first block's padding.

    Returns
    -------
    keras.Model
        ``(batch, context, n_bins) -> (batch, context, n_bins)`` gains in [0, 1], float32.

    Raises
    ------
    ConfigError
        For a target other than ``mask``, non-positive widths or dilations, bad ERB sizes or look-ahead.
    """
    check_target("erbnet", target, ("mask",))
    c = positive_int("erbnet", "channels", channels, 16)
    rates = positive_ints("erbnet", "dilations", dilations, "[1, 2, 4, 8]")
    shift = check_lookahead("erbnet", lookahead, 3, rates[0])
    n_bins = int(input_shape[1])
    n_linear = n_bins // 4 + 1 if n_linear is None else positive_int("erbnet", "n_linear", n_linear, 65)
    n_erb = n_bins // 4 if n_erb is None else positive_int("erbnet", "n_erb", n_erb, 64)
    compress, expand = erb_matrices(n_bins, positive_int("erbnet", "sample_rate", sample_rate, 16000), n_linear, n_erb)
    n_bands = compress.shape[1]

    def norm_act(x, name):
        x = layers.BatchNormalization(name=f"{name}_norm")(x)
        return layers.PReLU(shared_axes=[1, 2], name=f"{name}_act")(x)

    inputs = patch_input(input_shape)
    bands = layers.Dense(n_bands, use_bias=False, trainable=False, name="erb_compress")(inputs)
    x = layers.Reshape((-1, n_bands, 1), name="to_image")(bands)
    e0 = norm_act(layers.Conv2D(c, (1, 5), strides=(1, 2), padding="same", name="enc0")(x), "enc0")
    e1 = norm_act(layers.Conv2D(c, (1, 3), strides=(1, 2), padding="same", name="enc1")(e0), "enc1")
    x, width = e1, int(e1.shape[2])
    for i, d in enumerate(rates):
        ahead = shift if i == 0 else 0
        h = layers.ZeroPadding2D(((2 * d - ahead, ahead), (1, 1)), name=f"gtc{i}_pad")(x)
        h = layers.DepthwiseConv2D((3, 3), dilation_rate=(d, 1), name=f"gtc{i}_dw")(h)
        h = layers.Conv2D(c, 1, name=f"gtc{i}_pw")(norm_act(h, f"gtc{i}"))
        g = layers.Permute((1, 3, 2), name=f"gtc{i}_to_bands")(h)
        g = layers.Dense(width, name=f"gtc{i}_bands")(g)
        h = layers.Add(name=f"gtc{i}_mix")([h, layers.Permute((1, 3, 2), name=f"gtc{i}_from_bands")(g)])
        x = layers.Add(name=f"gtc{i}_add")([x, h])
    x = layers.Concatenate(name="dec1_skip")([x, e1])
    x = layers.Conv2DTranspose(c, (1, 3), strides=(1, 2), padding="same", name="dec1")(x)
    x = layers.Cropping2D(((0, 0), (0, int(x.shape[2]) - int(e0.shape[2]))), name="dec1_crop")(x)
    x = layers.Concatenate(name="dec0_skip")([norm_act(x, "dec1"), e0])
    x = layers.Conv2DTranspose(1, (1, 5), strides=(1, 2), padding="same", name="dec0")(x)
    x = layers.Cropping2D(((0, 0), (0, int(x.shape[2]) - n_bands)), name="dec0_crop")(x)
    x = layers.Reshape((-1, n_bands), name="band_logits")(x)
    x = layers.Activation("sigmoid", name="band_mask")(x)
    mask = layers.Dense(n_bins, use_bias=False, trainable=False, name="mask")(x)
    model = keras.Model(inputs, mask, name="erbnet")
    model.get_layer("erb_compress").set_weights([compress])
    model.get_layer("mask").set_weights([expand])
    return model
