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
from .blocks import check_lookahead, check_target, output_head, patch_input, positive_int, positive_ints

__all__ = ["build_tcn", "build_tcn_step", "receptive_field", "tcn_context", "tcn_step_onnx"]


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
    lookahead: int = 0,
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
    lookahead : int
        ``causal`` only: future frames output frame ``t`` may see, in
        ``0 .. (kernel_size - 1) * dilations[0]``. The first block's kernel is
        shifted by ``lookahead`` frames (zero padding ``(kernel_size - 1) *
        dilations[0] - lookahead`` frames before and ``lookahead`` after, layer
        ``tcn0_pad``), so the whole network sees input frames ``t - receptive_field
        + 1 + lookahead .. t + lookahead``. Each frame adds one hop of latency
        (8 ms at 128 samples and 16 kHz); DeepFilterNet uses 2 frames of look-ahead
        (Schröter et al. 2022). A model with look-ahead has no frame step: it
        streams by patches.

    Returns
    -------
    keras.Model
        ``(batch, context, n_bins) -> (batch, context, n_bins)``, float32.

    Raises
    ------
    ConfigError
        For an unknown ``target``, non-positive ``channels`` or ``kernel_size``,
        empty or non-positive ``dilations``, non-positive ``units``, a
        ``dropout`` outside [0, 1), a non-boolean ``causal``, or a ``lookahead``
        that is not a whole number in ``0 .. (kernel_size - 1) * dilations[0]``
        (or is set with ``causal: false``).
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
    shift = check_lookahead("tcn", lookahead, k, rates[0], causal)
    padding = "causal" if causal else "same"
    n_bins = int(input_shape[1])

    inputs = patch_input(input_shape)
    x = inputs
    for i, u in enumerate(widths):
        x = layers.Dense(u, activation="relu", name=f"enc{i}")(x)
    x = layers.Dense(width, name="bottleneck_in")(x)
    for i, d in enumerate(rates):
        if i == 0 and shift:
            h = layers.ZeroPadding1D(((k - 1) * d - shift, shift), name="tcn0_pad")(x)
            h = layers.Conv1D(width, k, dilation_rate=d, padding="valid", name="tcn0_conv")(h)
        else:
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


def tcn_context(
    kernel_size: int = 3, dilations: Sequence[int] = (1, 2, 4, 8), causal: bool = True, lookahead: int = 0
) -> tuple[int, int]:
    """``(past, future)``: the frames before and after an output frame that it depends on.

    ``causal``: ``(receptive_field - 1 - lookahead, lookahead)``. Centred (``padding="same"``): each block's
    ``(kernel_size - 1) * d`` frames split as Keras pads them, ``// 2`` before and the rest after.
    The per-frame encoder and decoder add nothing, so a free-length copy of the model run on a
    block with ``past`` frames before and ``future`` after the frames it keeps gives exactly the
    outputs of one call on the whole sequence.
    """
    k = positive_int("tcn", "kernel_size", kernel_size, 3)
    ds = positive_ints("tcn", "dilations", dilations, "[1, 2, 4, 8]")
    if causal:
        shift = check_lookahead("tcn", lookahead, k, ds[0], causal)
        return receptive_field(k, ds) - 1 - shift, shift
    total = [(k - 1) * d for d in ds]
    return sum(t // 2 for t in total), sum(t - t // 2 for t in total)


def _causal_tcn_parts(model: keras.Model):
    """A trained causal TCN's layers in order, for its frame step.

    Returns ``(encoders, blocks, decoders, head)``: the names of the per-frame encoder layers, one
    ``(i, conv, past)`` per dilated block (its causal Conv1D and the ``(kernel_size - 1) * dilation``
    input frames it looks back), the names of the decoder layers, and the output layer. Raises
    ConfigError for any other model, or a TCN with centred kernels.
    """
    names = {layer.name for layer in model.layers}
    if "bottleneck_in" not in names or "tcn0_conv" not in names:
        raise ConfigError(f"model {model.name!r} is not a tcn; only causal tcn runs have a frame step")

    def numbered(prefix: str) -> list[str]:
        found = []
        while f"{prefix}{len(found)}" in names:
            found.append(f"{prefix}{len(found)}")
        return found

    blocks = []
    while f"tcn{len(blocks)}_conv" in names:
        i = len(blocks)
        conv = model.get_layer(f"tcn{i}_conv")
        cfg = conv.get_config()
        if cfg["padding"] != "causal":
            raise ConfigError(f"tcn block {i} pads {cfg['padding']!r}; only causal tcn runs have a frame step")
        blocks.append((i, conv, (int(cfg["kernel_size"][0]) - 1) * int(cfg["dilation_rate"][0])))
    head = model.get_layer("mask" if "mask" in names else "clean")
    return numbered("enc"), blocks, numbered("dec"), head


def build_tcn_step(model: keras.Model) -> keras.Model:
    """The stateful frame step of a trained causal :func:`build_tcn` model: frames and state in, outputs and state out.

    Each dilated block's ``Conv1D(kernel_size, dilation_rate=d, padding="causal")`` becomes
    the same convolution with ``padding="valid"`` over the block's state (its last
    ``(kernel_size - 1) * d`` input frames) followed by the new frames; the new state is the
    last ``(kernel_size - 1) * d`` frames of that concatenation. Every other layer is the
    trained model's own (shared weights). Zero states are the causal zero padding of a
    sequence's start, so running a sequence through the step in pieces of any size, carrying
    the state, gives the model's one-call output on the whole sequence (float rounding; tested).
    This is the graph ``speech-dae export --format onnx`` writes for causal TCN runs
    (Bai, Kolter & Koltun 2018 for the TCN; carried convolution state as in RNNoise's and
    DeepFilterNet's frame-synchronous inference).

    Parameters
    ----------
    model : keras.Model
        A causal ``tcn`` (layers named as :func:`build_tcn` names them).

    Returns
    -------
    keras.Model
        Inputs ``frames`` ``(batch, T, n_bins)`` float32 (any ``T`` >= 0) and ``state{i}``
        ``(batch, (kernel_size - 1) * d_i, channels)`` for every block with ``kernel_size > 1``;
        outputs the model's output for those frames ``(batch, T, n_bins)`` and the new states, in
        the same order.

    Raises
    ------
    ConfigError
        If ``model`` is not a causal TCN.
    """
    encoders, blocks, decoders, head = _causal_tcn_parts(model)
    frames = keras.Input(shape=(None, int(model.input_shape[-1])), name="frames")
    x = frames
    for name in encoders:
        x = model.get_layer(name)(x)
    x = model.get_layer("bottleneck_in")(x)
    states, new_states = [], []
    for i, conv, past in blocks:
        cfg = conv.get_config()
        if past:
            state = keras.Input(shape=(past, int(cfg["filters"])), name=f"state{i}")
            full = layers.Concatenate(axis=1, name=f"tcn{i}_with_state")([state, x])
            states.append(state)
            new_states.append(full[:, -past:, :])
        else:
            full = x
        valid = layers.Conv1D.from_config({**cfg, "padding": "valid", "name": f"tcn{i}_conv_valid"})
        valid.build(full.shape)
        valid.set_weights(conv.get_weights())
        h = valid(full)
        h = model.get_layer(f"tcn{i}_relu")(h)
        h = model.get_layer(f"tcn{i}_norm")(h)
        h = model.get_layer(f"tcn{i}_proj")(h)
        x = model.get_layer(f"tcn{i}_add")([x, h])
    for name in decoders:
        x = model.get_layer(name)(x)
    x = model.get_layer("decoded")(x)
    out = head([frames, x]) if isinstance(head, layers.Add) else head(x)
    return keras.Model([frames, *states], [out, *new_states], name="tcn_step")


def tcn_step_onnx(model: keras.Model, *, opset: int = 17):
    """The frame step of :func:`build_tcn_step` written directly as an ONNX graph, from the trained weights.

    Same inputs, outputs and arithmetic as the Keras step (``frames``, ``state{i}`` -> output,
    new states), in about half the nodes the TensorFlow converter emits for it (each
    dilated convolution is ``kernel_size`` matrix products of fixed slices of the state
    followed by the new frames, each LayerNormalization one node), because a frame-by-frame
    stream pays onnxruntime's cost per node on every call: 124 -> ~50 us per 8 ms frame on
    2 cores (``benchmarks/streaming.py``). ``speech-dae export`` checks it against Keras like
    any export.

    Parameters
    ----------
    model : keras.Model
        A trained causal TCN (:func:`build_tcn`).
    opset : int
        ONNX opset (>= 17 for LayerNormalization).

    Returns
    -------
    onnx.ModelProto

    Raises
    ------
    ConfigError
        If ``model`` is not a causal TCN.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    encoders, blocks, decoders, head = _causal_tcn_parts(model)
    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def dense(x, layer_name, relu=False):
        w, b = model.get_layer(layer_name).get_weights()
        y = f"{layer_name}_mm"
        nodes.append(helper.make_node("MatMul", [x, const(f"{layer_name}_w", w.astype(np.float32))], [y]))
        nodes.append(
            helper.make_node("Add", [y, const(f"{layer_name}_b", b.astype(np.float32))], [f"{layer_name}_out"])
        )
        y = f"{layer_name}_out"
        if relu:
            nodes.append(helper.make_node("Relu", [y], [f"{layer_name}_relu"]))
            y = f"{layer_name}_relu"
        return y

    n_bins = int(model.input_shape[-1])
    inputs = [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["batch", "T", n_bins])]
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", "T", n_bins])]
    axis1 = const("axis1", np.array([1], np.int64))
    big = const("int_max", np.array([np.iinfo(np.int64).max], np.int64))
    x = "frames"
    for name in encoders:
        x = dense(x, name, relu=True)
    x = dense(x, "bottleneck_in")
    for i, conv, past in blocks:
        cfg = conv.get_config()
        k, d = int(cfg["kernel_size"][0]), int(cfg["dilation_rate"][0])
        kernel, bias = conv.get_weights()  # (k, c_in, c_out), (c_out,)
        if past:
            state_in, state_out = f"state{i}", f"new_state{i}"
            inputs.append(helper.make_tensor_value_info(state_in, TensorProto.FLOAT, ["batch", past, kernel.shape[1]]))
            outputs.append(
                helper.make_tensor_value_info(state_out, TensorProto.FLOAT, ["batch", past, kernel.shape[1]])
            )
            full = f"tcn{i}_full"
            nodes.append(helper.make_node("Concat", [state_in, x], [full], axis=1))
            start = const(f"tcn{i}_state_start", np.array([-past], np.int64))
            nodes.append(helper.make_node("Slice", [full, start, big, axis1], [state_out]))
        else:
            full = x
        taps = []
        for j in range(k):  # output t = [full[t], full[t + d], ...] @ [W[0]; W[1]; ...]
            piece = full
            if past:
                piece = f"tcn{i}_tap{j}"
                end = big if j * d == past else const(f"tcn{i}_end{j}", np.array([j * d - past], np.int64))
                start = const(f"tcn{i}_start{j}", np.array([j * d], np.int64))
                nodes.append(helper.make_node("Slice", [full, start, end, axis1], [piece]))
            taps.append(piece)
        if len(taps) > 1:
            nodes.append(helper.make_node("Concat", taps, [f"tcn{i}_taps"], axis=-1))
        w = kernel.reshape(-1, kernel.shape[2]).astype(np.float32)  # (k * c_in, c_out), tap-major like the concat
        nodes.append(
            helper.make_node(
                "MatMul", [f"tcn{i}_taps" if len(taps) > 1 else taps[0], const(f"tcn{i}_w", w)], [f"tcn{i}_mm"]
            )
        )
        nodes.append(
            helper.make_node("Add", [f"tcn{i}_mm", const(f"tcn{i}_b", bias.astype(np.float32))], [f"tcn{i}_conv_out"])
        )
        nodes.append(helper.make_node("Relu", [f"tcn{i}_conv_out"], [f"tcn{i}_relu"]))
        norm = model.get_layer(f"tcn{i}_norm")
        gamma, beta = norm.get_weights()
        nodes.append(
            helper.make_node(
                "LayerNormalization",
                [
                    f"tcn{i}_relu",
                    const(f"tcn{i}_gamma", gamma.astype(np.float32)),
                    const(f"tcn{i}_beta", beta.astype(np.float32)),
                ],
                [f"tcn{i}_norm"],
                axis=-1,
                epsilon=float(norm.epsilon),
            )
        )
        model_proj = model.get_layer(f"tcn{i}_proj")
        w, b = model_proj.get_weights()  # (1, c, c)
        nodes.append(
            helper.make_node(
                "MatMul", [f"tcn{i}_norm", const(f"tcn{i}_proj_w", w[0].astype(np.float32))], [f"tcn{i}_proj_mm"]
            )
        )
        nodes.append(
            helper.make_node(
                "Add", [f"tcn{i}_proj_mm", const(f"tcn{i}_proj_b", b.astype(np.float32))], [f"tcn{i}_proj"]
            )
        )
        nodes.append(helper.make_node("Add", [x, f"tcn{i}_proj"], [f"tcn{i}_add"]))
        x = f"tcn{i}_add"
    for name in decoders:
        x = dense(x, name, relu=True)
    x = dense(x, "decoded")
    if head.name == "mask":  # sigmoid
        nodes.append(helper.make_node("Sigmoid", [x], ["out"]))
    elif isinstance(head, layers.Add):  # residual mapping
        nodes.append(helper.make_node("Add", ["frames", x], ["out"]))
    else:
        nodes.append(helper.make_node("Identity", [x], ["out"]))
    graph = helper.make_graph(nodes, "tcn_step", inputs, outputs, initializer=inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="speech_dae")
    onnx.checker.check_model(proto)
    return proto
