"""The networks of the partitioned-autoencoder thesis (Lusterman 2016) and their semi-supervised training graphs.

E. Lusterman, "A Partitioned Autoencoder for Audio De-Noising", Cooper Union
M.Eng. thesis, 2016 (Lasagne/Theano), compares three dense networks on single
``|STFT|`` frames (1024-sample Hann frames, 50 % overlap, identity output
layer, the mReLU activation):

- ``shallow``: supervised, after Liu, Smaragdis & Kim (Interspeech 2014):
  input batch normalisation, one hidden layer of 2000 units, trained on
  noisy -> clean magnitudes.
- ``partitioned``: semi-supervised, after Stowell & Turner (arXiv 1509.05982,
  2015): the latent code is split into signal and background units. Every
  example is reconstructed from the whole code; noise-only examples (soft
  label ``y`` = 1) are also penalised for using the signal units. At
  inference the background units are zeroed, so the output holds what the
  signal units explain.
- ``curro``: semi-supervised (Lusterman's design): shared encoder layers end
  in a code split 50/50 into signal and noise halves; one decoder, applied to
  each half with the same weights, gives ``S`` and ``N``. Noisy speech is
  reconstructed by ``S + N``, noise-only examples by ``N`` alone; inference
  outputs ``S + alpha * N`` (``alpha = 0``: the signal branch).

No clean speech is needed to train ``partitioned`` and ``curro``: their
target is the input itself plus the soft label. Each builder returns the
*inference* model of the registry contract (input ``noisy``, output
``clean``); :func:`semi_supervised_trainer` wraps it in the training graph.
All layers are stock Keras; the one custom object, :func:`mrelu`, is
registered, so ``keras.saving.load_model`` needs no ``custom_objects`` once
``speech_dae.models`` is imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers, ops

from ..errors import ConfigError
from .blocks import check_target, output_head, patch_input, positive_int, positive_ints

__all__ = [
    "MRELU_EPSILON",
    "mrelu",
    "build_shallow",
    "build_partitioned",
    "build_curro",
    "SEMI_SUPERVISED",
    "semi_supervised_trainer",
    "partitioned_penalty",
]

#: epsilon of the mReLU (Lusterman 2016).
MRELU_EPSILON = 1e-5
#: Registry names trained from noisy + noise-only examples and soft labels (no clean targets).
SEMI_SUPERVISED = ("partitioned", "curro")


@keras.saving.register_keras_serializable(package="speech_dae", name="mrelu")
def mrelu(x):
    """The thesis's mReLU: ``x`` for ``x >= eps``, ``-eps / (x - 1 - eps)`` below, ``eps = 1e-5``.

    Continuous at ``eps`` (both sides equal ``eps``), positive everywhere and
    tending to 0 as ``x -> -inf``, with a non-zero gradient
    ``eps / (x - 1 - eps)**2`` below ``eps`` (1 above), so no unit dies.
    Source: Lusterman 2016, section on activations.

    Parameters
    ----------
    x : tensor, float

    Returns
    -------
    tensor, same shape and dtype
    """
    eps = MRELU_EPSILON
    # min(x, eps) keeps the unused branch finite (its pole is at x = 1 + eps), so gradients never see inf * 0
    below = -eps / (ops.minimum(x, eps) - 1.0 - eps)
    return ops.where(x >= eps, x, below)


def _encoder_input(inputs, batch_norm: bool):
    x = layers.Flatten(name="flatten")(inputs)
    return layers.BatchNormalization(name="input_norm")(x) if batch_norm else x


def build_shallow(
    input_shape: tuple[int, int],
    *,
    target: str = "mapping",
    units: int = 2000,
    batch_norm: bool = True,
    residual: bool = False,
) -> keras.Model:
    """Supervised one-hidden-layer network (Liu, Smaragdis & Kim 2014, as in Lusterman 2016).

    ``Flatten -> BatchNormalization (optional) -> Dense(units, mReLU) ->
    Dense(context * n_bins)`` reshaped to the patch; identity output
    (``mapping``) or sigmoid (``mask``).

    Parameters
    ----------
    input_shape : (context, n_bins)
        The thesis uses single frames: ``context = 1`` of 513 ``magnitude`` bins
        (``n_fft`` 1024); see ``configs/thesis.yaml``.
    target : {"mapping", "mask"}
    units : int
        Hidden units (thesis: 2000).
    batch_norm : bool
        Batch normalisation of the input (the thesis compares with and without).
    residual : bool
        ``mapping`` only: output = input + decoded (the thesis has none).

    Returns
    -------
    keras.Model
        ``(batch, context, n_bins) -> (batch, context, n_bins)``, float32.

    Raises
    ------
    ConfigError
        For an unknown target or a non-positive ``units``.
    """
    check_target("shallow", target)
    units = positive_int("shallow", "units", units, 2000)
    context, n_bins = input_shape
    inputs = patch_input(input_shape)
    h = layers.Dense(units, activation=mrelu, name="hidden")(_encoder_input(inputs, batch_norm))
    x = layers.Dense(context * n_bins, name="dense_out")(h)
    x = layers.Reshape((context, n_bins), name="decoded")(x)
    return keras.Model(inputs, output_head(inputs, x, target=target, residual=residual), name="shallow")


def build_partitioned(
    input_shape: tuple[int, int],
    *,
    target: str = "mapping",
    units: int = 2000,
    background: float = 0.25,
    penalty: float = 0.75,
    batch_norm: bool = True,
) -> keras.Model:
    """Partitioned autoencoder (Stowell & Turner 2015; Lusterman 2016): inference model.

    ``Flatten -> BatchNormalization (optional)``, then two Dense mReLU layers
    that together form the latent code of ``units`` units: ``latent_signal``
    (``units * (1 - background)``) and ``latent_background``
    (``units * background``). The decoder is linear and split the same way:
    ``decode_signal`` (with bias) and ``decode_background`` (no bias), so
    ``decoder([h_s, h_b]) = decode_signal(h_s) + decode_background(h_b)`` is
    one Dense layer on the whole code. In this inference model the background
    code passes through ``zero_background`` (a ``Rescaling(0)``): the output is
    the decoder of ``[h_s, 0]``. The training graph
    (:func:`semi_supervised_trainer`) decodes the whole code.

    Parameters
    ----------
    input_shape : (context, n_bins)
    target : {"mapping"}
        The target is the input itself (reconstruction); masks are not defined.
    units : int
        Latent units (thesis: 2000).
    background : float in (0, 1)
        Share of background units (Stowell & Turner: 0.25; the thesis code 0.5).
    penalty : float >= 0
        lambda of the loss, used by the training graph only (thesis code: 0.75).
    batch_norm : bool

    Returns
    -------
    keras.Model
        ``(batch, context, n_bins) -> (batch, context, n_bins)`` named ``clean``.

    Raises
    ------
    ConfigError
        For ``target="mask"``, ``background`` outside (0, 1) or leaving no unit
        on either side, or a negative ``penalty``.
    """
    check_target("partitioned", target, ("mapping",))
    units = positive_int("partitioned", "units", units, 2000)
    n_background = int(round(units * float(background)))
    if not 0 < float(background) < 1 or not 0 < n_background < units:
        raise ConfigError(
            f"partitioned: background={background!r} must be a share in (0, 1) leaving at least one "
            f"signal and one background unit of units={units}, e.g. 0.25"
        )
    if float(penalty) < 0:
        raise ConfigError(f"partitioned: penalty={penalty!r} must be >= 0, e.g. 0.75")
    context, n_bins = input_shape
    inputs = patch_input(input_shape)
    x = _encoder_input(inputs, batch_norm)
    h_s = layers.Dense(units - n_background, activation=mrelu, name="latent_signal")(x)
    h_b = layers.Dense(n_background, activation=mrelu, name="latent_background")(x)
    zeroed = layers.Rescaling(0.0, name="zero_background")(h_b)
    d_s = layers.Dense(context * n_bins, name="decode_signal")(h_s)
    d_b = layers.Dense(context * n_bins, use_bias=False, name="decode_background")(zeroed)
    out = layers.Add(name="decoded_flat")([d_s, d_b])
    out = layers.Reshape((context, n_bins), name="clean")(out)
    return keras.Model(inputs, out, name="partitioned")


def build_curro(
    input_shape: tuple[int, int],
    *,
    target: str = "mapping",
    units: Sequence[int] = (2048, 2048),
    decoder_units: Sequence[int] = (1024,),
    alpha: float = 0.0,
    batch_norm: bool = True,
) -> keras.Model:
    """Curro autoencoder (Lusterman 2016): inference model.

    Shared encoder ``Dense(u, mReLU)`` for every ``u`` in ``units[:-1]``; the
    last width ``units[-1]`` is the code, built as two Dense mReLU halves
    ``latent_signal`` and ``latent_noise`` (one Dense layer split 50/50). One
    decoder (``Dense(u, mReLU)`` for ``decoder_units``, then a linear
    ``decode_out``), applied with the same weights to each half, gives the
    signal estimate ``S`` and the noise estimate ``N``. Output
    ``clean = S + alpha * N`` (``noise_scale``, a ``Rescaling(alpha)``).

    Parameters
    ----------
    input_shape : (context, n_bins)
    target : {"mapping"}
    units : sequence of int
        Encoder widths; the last is the whole code (thesis: 2048, 2048).
    decoder_units : sequence of int
        Hidden widths of the shared decoder (thesis: 1024).
    alpha : float
        Share of the noise branch in the output (0: the signal branch alone;
        1: the training reconstruction ``S + N``).
    batch_norm : bool

    Returns
    -------
    keras.Model
        ``(batch, context, n_bins) -> (batch, context, n_bins)`` named ``clean``.

    Raises
    ------
    ConfigError
        For ``target="mask"``, non-positive widths or an odd code width.
    """
    check_target("curro", target, ("mapping",))
    widths = positive_ints("curro", "units", units, "[2048, 2048]")
    dec_widths = positive_ints("curro", "decoder_units", decoder_units, "[1024]") if decoder_units else []
    if widths[-1] % 2 or widths[-1] < 2:
        raise ConfigError(f"curro: the code width units[-1]={widths[-1]} must be even (split 50/50), e.g. 2048")
    context, n_bins = input_shape
    inputs = patch_input(input_shape)
    x = _encoder_input(inputs, batch_norm)
    for i, u in enumerate(widths[:-1]):
        x = layers.Dense(u, activation=mrelu, name=f"encode{i}")(x)
    halves = [layers.Dense(widths[-1] // 2, activation=mrelu, name=f"latent_{part}")(x) for part in ("signal", "noise")]
    decoder = [layers.Dense(u, activation=mrelu, name=f"decode{i}") for i, u in enumerate(dec_widths)]
    decoder.append(layers.Dense(context * n_bins, name="decode_out"))
    branches = []
    for h in halves:
        for layer in decoder:
            h = layer(h)
        branches.append(h)
    s, n = branches
    out = layers.Add(name="decoded_flat")([s, layers.Rescaling(float(alpha), name="noise_scale")(n)])
    out = layers.Reshape((context, n_bins), name="clean")(out)
    return keras.Model(inputs, out, name="curro")


def partitioned_penalty(labels, signal_code, penalty: float):
    """Per-example soft-label penalty of the partitioned autoencoder.

    ``(lambda * y / mean(C)) * mean((C * f(Y))**2)`` over the whole code, with
    ``C`` the 0/1 mask of the signal units; equal to
    ``lambda * y * mean(h_s**2)`` over the signal units ``h_s`` alone.

    Parameters
    ----------
    labels : tensor [shape=(batch,) or (batch, 1)], float
        Soft labels, 1 for noise-only examples.
    signal_code : tensor [shape=(batch, n_signal)], float
    penalty : float
        lambda.

    Returns
    -------
    tensor [shape=(batch,)], float
    """
    y = ops.reshape(labels, (-1,))
    return float(penalty) * y * ops.mean(ops.square(signal_code), axis=-1)


def _flat(model: keras.Model, name: str):
    """Output tensor of layer ``name`` (called once) in ``model``'s graph."""
    return model.get_layer(name).output


def semi_supervised_trainer(model: keras.Model, name: str, *, penalty: float = 0.75) -> keras.Model:
    """The training graph of a ``partitioned`` or ``curro`` inference model (shares its weights).

    Inputs ``[noisy (batch, context, n_bins), label (batch, 1)]``. Outputs:

    - ``recon`` ``(batch, context, n_bins)``: partitioned: the decoder of the
      whole code; curro: ``(1 - y) * S + N``, so noise-only examples are
      reconstructed by the noise branch alone and noisy speech by the sum.
    - ``penalty`` ``(batch,)`` (partitioned only): :func:`partitioned_penalty`.

    Train with ``mse`` on ``recon`` against the (normalised) input itself and
    the identity loss on ``penalty`` (its mean over the batch): the total is
    ``mean((Y - X^)**2) + lambda * y * mean(h_s**2)`` per example, averaged.

    Raises
    ------
    ConfigError
        If ``name`` is not in :data:`SEMI_SUPERVISED`.
    """
    if name not in SEMI_SUPERVISED:
        raise ConfigError(f"{name} is trained with clean targets; semi-supervised models: {', '.join(SEMI_SUPERVISED)}")
    noisy = model.inputs[0]
    label = keras.Input(shape=(1,), name="label")
    context, n_bins = noisy.shape[1], noisy.shape[2]
    reshape = layers.Reshape((context, n_bins), name="recon")
    if name == "partitioned":
        h_s, h_b = _flat(model, "latent_signal"), _flat(model, "latent_background")
        recon = layers.Add()([_flat(model, "decode_signal"), model.get_layer("decode_background")(h_b)])
        pen = layers.Identity(name="penalty")(partitioned_penalty(label, h_s, penalty))
        return keras.Model([noisy, label], {"recon": reshape(recon), "penalty": pen}, name="partitioned_trainer")
    s = model.get_layer("decoded_flat").input[0]  # the signal branch (the other input is alpha * N)
    n = model.get_layer("noise_scale").input
    recon = (1.0 - label) * s + n
    return keras.Model([noisy, label], {"recon": reshape(recon)}, name="curro_trainer")


def identity_loss(y_true, y_pred):
    """Loss whose value is the prediction itself (the penalty output of the partitioned trainer)."""
    return ops.mean(ops.reshape(y_pred, (ops.shape(y_pred)[0], -1)), axis=-1)
