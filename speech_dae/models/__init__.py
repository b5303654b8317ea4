"""Model registry: ``build_model(name, input_shape, *, target="mapping", **hparams) -> keras.Model``.

Every spectral model maps a patch of ``input_shape = (context, n_bins)``
normalised noisy features to a patch of the same shape: the normalised clean
features (``target="mapping"``, output layer ``clean``, linear) or a gain in
[0, 1] on the noisy magnitude (``target="mask"``, output layer ``mask``,
sigmoid). The waveform model maps ``(chunk_size, 1)`` noisy samples to clean
samples (mapping only). :data:`MODEL_FEATURES` and :data:`MODEL_TARGETS` say
which feature types and targets each model accepts. All are Functional models
built from stock Keras layers, so ``keras.saving.load_model("model.keras")``
needs no ``custom_objects``.

===============  ==========================  =======================================================
name             features / targets          lineage
===============  ==========================  =======================================================
``type1``        spectral / mapping, mask    Conv1D / Conv1DTranspose autoencoder over context
                                             patches (Simple Speech Denoising Autoencoder, type 1)
``type2``        spectral / mapping, mask    dense autoencoder over the flattened patch (same
                                             project, model type 2)
``dense_ln``     spectral / mapping, mask    LayerNorm + Dense 2048-500-180-500-2048 + ReLU +
                                             LayerNorm (libdse; Nossier et al. 2020, architecture (d))
``conv1d_time``  waveform / mapping          Conv1D + MaxPooling1D encoder, UpSampling1D + Conv1D
                                             decoder on 2048-sample chunks (Conv1D audio-restoration
                                             autoencoder)
``cnn2d``        spectral / mapping, mask    strided Conv2D / Conv2DTranspose autoencoder on the
                                             patch as an image (CNN / U-Net denoising autoencoder)
``unet``         spectral / mapping, mask    U-Net with BatchNorm and Concatenate skip connections
                                             (same project; Optuna best base_filters 32, depth 4)
``shallow``      spectral / mapping, mask    input BatchNorm + Dense 2000 mReLU + linear output
                                             (Liu, Smaragdis & Kim 2014 via Lusterman 2016)
``partitioned``  spectral / mapping          latent split into signal / background units, soft-label
                                             penalty, background zeroed at inference; trained without
                                             clean speech (Stowell & Turner 2015 via Lusterman 2016)
``curro``        spectral / mapping          split code, one shared decoder for the signal and noise
                                             halves; trained without clean speech (Lusterman 2016)
``tcn``          spectral / mapping, mask    per-frame dense encoder/decoder around a causal dilated
                                             Conv1D (TCN) bottleneck, 31-frame receptive field by
                                             default (Bai et al. 2018; Pandey & Wang 2019)
``erbnet``       logmag, magnitude, power /  ERB-band compression, frequency-strided Conv2D encoder /
                 mask                        decoder, causal grouped temporal convolution blocks
                                             (after GTCRN, Rong et al. 2024, and DeepFilterNet)
===============  ==========================  =======================================================

"spectral" is the feature types ``fbank``, ``logmag``, ``logmel``, ``power`` and ``magnitude``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ..config import SPECTRAL_FEATURES, STFT_FEATURES
from ..errors import ConfigError
from .autoencoders import build_type1, build_type2
from .blocks import SPECTRAL_TARGETS
from .erbnet import build_erbnet, erbnet_context
from .libdse import build_dense_ln
from .spectrogram import build_cnn2d, build_unet
from .tcn import build_tcn, build_tcn_step, tcn_context, tcn_step_onnx
from .thesis import SEMI_SUPERVISED, build_curro, build_partitioned, build_shallow
from .waveform import WAVEFORM_TARGETS, build_conv1d_time

__all__ = [
    "MODELS",
    "MODEL_FEATURES",
    "MODEL_TARGETS",
    "SEMI_SUPERVISED",
    "SPECTRAL_FEATURES",
    "build_model",
    "build_step",
    "build_step_onnx",
    "free_length",
    "has_step",
    "hparam_names",
    "model_names",
    "sequence_context",
]

MODELS: dict[str, Callable] = {
    "type1": build_type1,
    "type2": build_type2,
    "dense_ln": build_dense_ln,
    "conv1d_time": build_conv1d_time,
    "cnn2d": build_cnn2d,
    "unet": build_unet,
    "shallow": build_shallow,
    "partitioned": build_partitioned,
    "curro": build_curro,
    "tcn": build_tcn,
    "erbnet": build_erbnet,
}

#: Feature types (``features.type``) of the patches / chunks each model accepts.
MODEL_FEATURES: dict[str, tuple[str, ...]] = {
    name: ("waveform",) if name == "conv1d_time" else SPECTRAL_FEATURES for name in MODELS
}
MODEL_FEATURES["erbnet"] = STFT_FEATURES  # its ERB bands pool STFT bins
#: Training targets (``training.target``) each model supports.
MODEL_TARGETS: dict[str, tuple[str, ...]] = {
    name: WAVEFORM_TARGETS if name == "conv1d_time" else ("mapping",) if name in SEMI_SUPERVISED else SPECTRAL_TARGETS
    for name in MODELS
}
MODEL_TARGETS["erbnet"] = ("mask",)


def model_names() -> list[str]:
    return sorted(MODELS)


def hparam_names(name: str) -> list[str]:
    """The hyper-parameters of registry model ``name`` (its builder's keywords, less ``target``)."""
    return [p for p in inspect.signature(MODELS[name]).parameters if p not in ("input_shape", "target")]


def build_model(name: str, input_shape: tuple[int, int], *, target: str = "mapping", **hparams):
    """Build registry model ``name`` for inputs of ``input_shape``.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    input_shape : (context, n_bins) or (chunk_size, 1)
        Spectral patch (frames, bins) or waveform chunk (samples, 1 channel).
    target : {"mapping", "mask"}
        What the model predicts; must be in ``MODEL_TARGETS[name]``.
    **hparams
        The builder's hyper-parameters (``model.hparams.<name>`` in the config).

    Returns
    -------
    keras.Model
        Functional model whose output shape equals ``input_shape``, float32.

    Raises
    ------
    ConfigError
        For an unknown model name, target or hyper-parameter (the message
        lists the valid ones), or hyper-parameter values the builder rejects.
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(model_names())}")
    if target not in MODEL_TARGETS[name]:
        raise ConfigError(
            f"model {name!r} does not support target={target!r}; valid: "
            f"{', '.join(MODEL_TARGETS[name])} (set training.target)"
        )
    valid = hparam_names(name)
    unknown = sorted(set(hparams) - set(valid))
    if unknown:
        raise ConfigError(f"model {name!r} has no hyper-parameter {', '.join(unknown)}; valid: {', '.join(valid)}")
    return MODELS[name](tuple(int(d) for d in input_shape), target=target, **hparams)


def _type1_context(filters=(128, 32), kernel_size: int = 3, **_) -> tuple[int, int]:
    """type1: every Conv1D / Conv1DTranspose of ``kernel_size`` frames ("same", stride 1) reaches
    ``kernel_size - 1`` frames in all; counted on both sides (an upper bound is enough for blocks)."""
    reach = 2 * len(filters) * (int(kernel_size) - 1)
    return reach, reach


#: Models whose graph takes any number of frames, and their ``(past, future)`` frames of context
#: from the hyper-parameters (see :func:`sequence_context`).
_SEQUENCE: dict[str, Callable] = {
    "tcn": lambda kernel_size=3, dilations=(1, 2, 4, 8), causal=True, lookahead=0, **_: tcn_context(
        kernel_size, dilations, causal, lookahead
    ),
    "type1": _type1_context,
    "erbnet": erbnet_context,
}
#: Causal models with a stateful frame step: its Keras model (:func:`build_step`) and its ONNX graph
#: (:func:`build_step_onnx`).
_STEPS: dict[str, Callable] = {"tcn": build_tcn_step}
_STEPS_ONNX: dict[str, Callable] = {"tcn": tcn_step_onnx}


def sequence_context(name: str, hparams: dict | None = None) -> tuple[int, int] | None:
    """``(past, future)`` frames of context of a model that can run on whole sequences, or None.

    Models of fixed patches (dense layers over the flattened patch, 2-D convolutions with
    padding to a multiple, the waveform model) return None and are run patch by patch. For the
    others a block of frames with ``past`` extra frames before and ``future`` after gives
    exactly the one-call outputs of its middle: ``tcn`` (``(30, 0)`` for the causal default)
    and ``type1`` (Conv1D / Conv1DTranspose with "same" padding).

    Parameters
    ----------
    name : str
        Registry name (``run.json`` ``model``).
    hparams : dict, optional
        ``run.json`` ``hparams`` (missing keys take the builder's defaults).
    """
    fn = _SEQUENCE.get(name)
    if fn is None:
        return None
    past, future = fn(**dict(hparams or {}))
    return int(past), int(future)


def free_length(model):
    """A copy of a functional ``(batch, context, n_bins)`` model that takes any number of frames, same weights.

    Only for models of :func:`sequence_context` (other graphs fix the frame count in a
    ``Flatten`` or ``Reshape``). The copy is built from ``model.get_config()`` with the input's
    frame axis set to None, so it also serves run folders saved before sequence inference existed.

    Returns
    -------
    keras.Model
        ``(batch, None, n_bins) -> (batch, None, n_bins)``; ``model`` itself if its frame axis is already free.
    """
    import keras

    if model.input_shape[1] is None:
        return model
    cfg = model.get_config()
    for layer in cfg["layers"]:
        if layer["class_name"] == "InputLayer":
            shape = list(layer["config"]["batch_shape"])
            layer["config"]["batch_shape"] = [shape[0], None, *shape[2:]]
    clone = keras.Model.from_config(cfg)
    clone.set_weights(model.get_weights())
    return clone


def has_step(name: str, hparams: dict | None = None) -> bool:
    """True if registry model ``name`` with these hyper-parameters is causal with a frame step (:func:`build_step`)."""
    ctx = sequence_context(name, hparams)
    return name in _STEPS and ctx is not None and ctx[1] == 0


def build_step(name: str, model, hparams: dict | None = None):
    """The stateful frame step of a trained causal model (:func:`speech_dae.models.tcn.build_tcn_step`), or None.

    None for every model that is not causal (a step needs output frame ``t`` to depend on
    frames ``<= t`` only) or has no step builder.
    """
    return _STEPS[name](model) if has_step(name, hparams) else None


def build_step_onnx(name: str, model, hparams: dict | None = None):
    """The frame step of a trained causal model as an ``onnx.ModelProto``, or None.

    See :func:`speech_dae.models.tcn.tcn_step_onnx`.
    """
    return _STEPS_ONNX[name](model) if has_step(name, hparams) else None
