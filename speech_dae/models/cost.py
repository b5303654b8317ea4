"""Compute cost of a frame-sequence Keras model: multiply-accumulates per output frame, MMAC/s.

The count follows the usual convention of speech-enhancement papers (DeepFilterNet's and
RNNoise's "MACs", the ``thop`` / ``ptflops`` counters for linear and convolutional layers): one
multiply-accumulate per weight of a matrix product or convolution tap actually applied; biases,
normalisations, activations and element-wise layers are not counted (their work is a few
operations per element of a layer's output: for the best recipe's TCN, 512 LayerNorm elements and
1,281 activations per frame, a few thousand operations against 459,264 MACs). A model is counted
from its layers' input and output shapes after one call on its input shape, so every model of
the registry (fixed patches or free length) is covered without running it.

Per layer, for one call (``B`` = batch left out, channels last; channels first is handled too):

===========================  ==========================================================================
layer                        multiply-accumulates
===========================  ==========================================================================
Dense                        positions x in_features x units (positions: every axis but the last)
Conv1D / Conv2D / Conv3D     output positions x filters x prod(kernel_size) x in_channels / groups
                             (dilation widens the reach, not the work; padding counted as taps)
DepthwiseConv1D / 2D         output positions x in_channels x depth_multiplier x prod(kernel_size)
SeparableConv1D / 2D         the depthwise part + output positions x in_channels x depth_multiplier x filters
Conv1D/2D/3DTranspose        input positions x in_channels x prod(kernel_size) x filters
SimpleRNN / GRU / LSTM       time steps x gates x (in_features x units + units x units), gates 1 / 3 / 4
Bidirectional                its forward and backward layers
TimeDistributed              time steps x the wrapped layer on one step
a nested Model / Sequential  the sum of its layers
:data:`FREE_LAYERS`          0 (normalisation, activation, element-wise, pooling, shape-only layers)
===========================  ==========================================================================

Any other layer (``Lambda``, attention, a custom layer) raises :class:`~speech_dae.errors.ConfigError`
rather than being silently left out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from keras import layers

from ..errors import ConfigError

__all__ = ["FREE_LAYERS", "layer_macs", "macs_per_frame", "mmac_per_second", "model_macs"]

#: Frames of a free-length model (input frame axis ``None``) counted when the caller gives none; the
#: per-frame count of a stride-1 sequence model (e.g. the TCN) does not depend on it.
DEFAULT_FRAMES = 128

_FREE_NAMES = (
    "InputLayer",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "PReLU",
    "ELU",
    "Softmax",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "Flatten",
    "Reshape",
    "Permute",
    "RepeatVector",
    "Cropping1D",
    "Cropping2D",
    "Cropping3D",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "ZeroPadding3D",
    "UpSampling1D",
    "UpSampling2D",
    "UpSampling3D",
    "MaxPooling1D",
    "MaxPooling2D",
    "MaxPooling3D",
    "AveragePooling1D",
    "AveragePooling2D",
    "AveragePooling3D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "LayerNormalization",
    "BatchNormalization",
    "GroupNormalization",
    "UnitNormalization",
    "Rescaling",
    "Identity",
)
#: Layer classes counted as 0 MACs: a few operations per output element, no weight matrix.
FREE_LAYERS: tuple[type, ...] = tuple(getattr(layers, n) for n in _FREE_NAMES if hasattr(layers, n))

_RNN_GATES = ((layers.LSTM, 4), (layers.GRU, 3), (layers.SimpleRNN, 1))


def _dims(shape, what: str, layer) -> tuple[int, ...]:
    """``shape`` without its batch axis, as ints; ConfigError for an unknown (None) dimension."""
    dims = tuple(shape)[1:]
    if any(d is None for d in dims):
        raise ConfigError(
            f"cannot count the MACs of layer {layer.name!r} ({type(layer).__name__}): its {what} shape "
            f"{tuple(shape)} has an unknown dimension besides the batch; build the model on a fixed input shape"
        )
    return tuple(int(d) for d in dims)


def _split_channels(dims: tuple[int, ...], layer) -> tuple[tuple[int, ...], int]:
    """(spatial dims, channels) of a conv layer's input or output dims (no batch axis)."""
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return dims[1:], dims[0]
    return dims[:-1], dims[-1]


def _rnn_macs(layer, in_dims: tuple[int, ...]) -> int:
    for cls, gates in _RNN_GATES:
        if isinstance(layer, cls):
            steps, features = in_dims[0], in_dims[-1]
            units = int(layer.units)
            return steps * gates * (features * units + units * units)
    raise ConfigError(
        f"cannot count the MACs of recurrent layer {layer.name!r} ({type(layer).__name__}): only SimpleRNN, GRU "
        "and LSTM are known"
    )


def layer_macs(layer, input_shape: Sequence | None = None, output_shape: Sequence | None = None) -> int:
    """Multiply-accumulates of one call of a built Keras layer (batch size 1), from its shapes.

    Parameters
    ----------
    layer : keras.layers.Layer
        A layer of a built model (its ``input`` / ``output`` give the shapes), or any layer with
        ``input_shape`` and ``output_shape`` given.
    input_shape, output_shape : sequence of int or None, optional
        Shapes with the batch axis first; default: the layer's first call in its model.

    Returns
    -------
    int
        MACs of one call, counted as the module docstring's table says; 0 for :data:`FREE_LAYERS`.

    Raises
    ------
    ConfigError
        For a layer this counter does not know (the message names it and what is known), or a shape
        with an unknown dimension besides the batch.
    """
    if isinstance(layer, FREE_LAYERS):
        return 0
    if hasattr(layer, "layers") and hasattr(layer, "get_config") and hasattr(layer, "inputs"):
        return model_macs(layer)  # a nested Model or Sequential
    if input_shape is None:
        input_shape = layer.input.shape
    if output_shape is None:
        output_shape = layer.output.shape
    if isinstance(layer, layers.Bidirectional):
        return layer_macs(layer.forward_layer, input_shape, output_shape) + layer_macs(
            layer.backward_layer, input_shape, output_shape
        )
    in_dims, out_dims = _dims(input_shape, "input", layer), _dims(output_shape, "output", layer)
    if isinstance(layer, layers.TimeDistributed):
        step_in, step_out = (1, *in_dims[1:]), (1, *out_dims[1:])
        return in_dims[0] * layer_macs(layer.layer, step_in, step_out)
    if isinstance(layer, layers.Dense):
        return math.prod(out_dims[:-1]) * in_dims[-1] * int(layer.units)
    if isinstance(layer, layers.SeparableConv1D | layers.SeparableConv2D):
        (out_pos, _), (_, cin) = _split_channels(out_dims, layer), _split_channels(in_dims, layer)
        depth = cin * int(layer.depth_multiplier)
        return math.prod(out_pos) * (depth * math.prod(layer.kernel_size) + depth * int(layer.filters))
    if isinstance(layer, layers.DepthwiseConv1D | layers.DepthwiseConv2D):
        (out_pos, _), (_, cin) = _split_channels(out_dims, layer), _split_channels(in_dims, layer)
        return math.prod(out_pos) * cin * int(layer.depth_multiplier) * math.prod(layer.kernel_size)
    if isinstance(layer, layers.Conv1DTranspose | layers.Conv2DTranspose | layers.Conv3DTranspose):
        in_pos, cin = _split_channels(in_dims, layer)
        return math.prod(in_pos) * cin * math.prod(layer.kernel_size) * int(layer.filters)
    if isinstance(layer, layers.Conv1D | layers.Conv2D | layers.Conv3D):
        (out_pos, cout), (_, cin) = _split_channels(out_dims, layer), _split_channels(in_dims, layer)
        return math.prod(out_pos) * cout * math.prod(layer.kernel_size) * cin // int(getattr(layer, "groups", 1))
    if isinstance(layer, layers.RNN):
        return _rnn_macs(layer, in_dims)
    raise ConfigError(
        f"cannot count the MACs of layer {layer.name!r} ({type(layer).__name__}): speech_dae.models.cost knows "
        "Dense, Conv1D/2D/3D (and their Transpose, Depthwise, Separable forms), SimpleRNN, GRU, LSTM, "
        "Bidirectional, TimeDistributed, nested models and the free layers of FREE_LAYERS; add a rule for it "
        "there rather than leaving it out"
    )


def _calls(model) -> dict[str, int]:
    """How many times each layer of a functional model is called in its graph (shared layers > 1)."""
    try:
        cfg = model.get_config()
    except (NotImplementedError, TypeError):
        return {}
    return {
        entry["config"].get("name", entry.get("name")): max(1, len(entry.get("inbound_nodes") or []))
        for entry in cfg.get("layers", [])
        if isinstance(entry, dict) and isinstance(entry.get("config"), dict)
    }


def model_macs(model) -> int:
    """Multiply-accumulates of one call of ``model`` on its input shape (batch size 1).

    Parameters
    ----------
    model : keras.Model
        A built Functional or Sequential model with a fixed input shape (besides the batch).

    Returns
    -------
    int
        The sum of :func:`layer_macs` over its layers; a layer called ``k`` times in a functional graph
        (shared weights) counts ``k`` times, each at the shapes of its first call.

    Raises
    ------
    ConfigError
        As :func:`layer_macs`.
    """
    calls = _calls(model)
    return sum(layer_macs(layer) * calls.get(layer.name, 1) for layer in model.layers)


def _fixed_length(model, frames: int):
    """A copy of a functional model whose free frame axis (input axis 1) is set to ``frames``; no weights."""
    cfg = model.get_config()
    for entry in cfg.get("layers", []):
        if entry.get("class_name") == "InputLayer":
            shape = list(entry["config"]["batch_shape"])
            entry["config"]["batch_shape"] = [shape[0], frames, *shape[2:]]
    return type(model).from_config(cfg)


def macs_per_frame(model, *, frames: int | None = None) -> int:
    """Multiply-accumulates per output frame of a frame-sequence model (input ``(batch, frames, n_bins)``).

    The MACs of one call on the model's input (:func:`model_macs`) divided by its number of input frames,
    rounded: the exact per-frame work of a stride-1 sequence model (a TCN run over a whole file does
    this much per frame), and the average per frame of one call for a patch model (a model run on
    overlapping patches every ``patch_hop`` frames does ``context / patch_hop`` times this per output
    frame; the caller multiplies). For a 2-D convolution the work of one time step is the work of
    its output row(s) per input frame.

    Parameters
    ----------
    model : keras.Model
        Input ``(batch, frames, n_bins)`` (or ``(batch, samples, 1)`` for a waveform model: then
        "frame" means sample).
    frames : int, optional
        Frames to count a free-length model (input frame axis None) at; default :data:`DEFAULT_FRAMES`.
        For a model of fixed length it must be None or equal to that length.

    Returns
    -------
    int
        MACs per frame, e.g. 40 for ``Dense(4)`` on 10 bins, 459,264 for ``configs/best.yaml``'s TCN
        (257 bins, units [256], 128 channels, kernel 3, 4 blocks).

    Raises
    ------
    ConfigError
        For a layer the counter does not know (:func:`layer_macs`), a model whose input is not
        ``(batch, frames, ...)``, or ``frames`` not matching a fixed-length model.
    """
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None or len(shape) < 3:
        raise ConfigError(
            f"macs_per_frame needs a single input (batch, frames, n_bins); model {model.name!r} takes "
            f"{model.input_shape}"
        )
    if shape[1] is None:
        n = DEFAULT_FRAMES if frames is None else int(frames)
        if n < 1:
            raise ConfigError(f"frames={frames!r} must be a whole number >= 1")
        model = _fixed_length(model, n)
    else:
        n = int(shape[1])
        if frames is not None and int(frames) != n:
            raise ConfigError(f"model {model.name!r} takes {n} frames per call, not frames={frames}; pass frames=None")
    return round(model_macs(model) / n)


def mmac_per_second(model, frames_per_second: float, *, frames: int | None = None) -> float:
    """Millions of multiply-accumulates per second of audio: :func:`macs_per_frame` x ``frames_per_second`` / 1e6.

    Parameters
    ----------
    model : keras.Model
        As :func:`macs_per_frame`.
    frames_per_second : float > 0
        Output frames per second of audio: ``sample_rate / hop_length`` (125 for 16 kHz and a
        128-sample hop).
    frames : int, optional
        As :func:`macs_per_frame`.

    Returns
    -------
    float
        MMAC/s, e.g. 57.4 for the best recipe's TCN at 125 frames/s.

    Raises
    ------
    ConfigError
        For a non-positive ``frames_per_second``, and as :func:`macs_per_frame`.
    """
    if not frames_per_second or frames_per_second <= 0:
        raise ConfigError(f"frames_per_second={frames_per_second!r} must be > 0, e.g. 125 (16 kHz, hop 128)")
    return macs_per_frame(model, frames=frames) * float(frames_per_second) / 1e6
