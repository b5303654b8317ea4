"""Pieces shared by the registry builders: target checks, output heads, 2-D padding.

Everything here is built from stock Keras layers, so a model that uses it
saves to ``model.keras`` and loads with ``keras.saving.load_model`` without
``custom_objects``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import keras
from keras import layers

from ..config import TARGETS
from ..errors import ConfigError

__all__ = [
    "SPECTRAL_TARGETS",
    "check_target",
    "max_norm",
    "output_head",
    "positive_int",
    "positive_ints",
    "patch_input",
    "check_lookahead",
    "to_image",
    "from_image",
    "pad_to_multiple",
    "crop_padding",
]

#: Targets every spectral (patch) model supports: the order of ``speech_dae.config.TARGETS``.
SPECTRAL_TARGETS: tuple[str, ...] = tuple(TARGETS)


def check_target(model: str, target: str, valid: Sequence[str] = SPECTRAL_TARGETS) -> str:
    """Return ``target`` if model ``model`` supports it.

    Raises
    ------
    ConfigError
        If ``target`` is not one of ``valid`` (the message lists them).
    """
    if target not in valid:
        raise ConfigError(
            f"model {model!r} does not support target={target!r}; valid: {', '.join(valid)} (set training.target)"
        )
    return target


def _whole(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer() and value >= 1


def positive_int(model: str, name: str, value, example: int) -> int:
    """``value`` as an int >= 1, else a ConfigError naming ``model: name``."""
    if not _whole(value):
        raise ConfigError(f"{model}: {name}={value!r} must be a whole number >= 1, e.g. {example}")
    return int(value)


def positive_ints(model: str, name: str, values, example: str) -> list[int]:
    """``values`` as a non-empty list of ints >= 1, else a ConfigError naming ``model: name``."""
    if not isinstance(values, (list, tuple)) or not values or not all(_whole(v) for v in values):
        raise ConfigError(f"{model}: {name}={values!r} must list at least one whole number >= 1, e.g. {example}")
    return [int(v) for v in values]


def check_lookahead(model: str, lookahead, kernel_size: int, first_dilation: int, causal: bool = True) -> int:
    """``lookahead`` as an int after checking it fits a first block of ``kernel_size`` at ``first_dilation``.

    The look-ahead of ``tcn`` and ``erbnet`` shifts their first temporal kernel into the future, so it
    can reach at most ``(kernel_size - 1) * first_dilation`` frames.

    Raises
    ------
    ConfigError
        If it is not a whole number in ``0 .. (kernel_size - 1) * first_dilation``, or is non-zero for a
        centred (``causal: false``) model.
    """
    most = (int(kernel_size) - 1) * int(first_dilation)
    if isinstance(lookahead, bool) or not isinstance(lookahead, int) or not 0 <= lookahead <= most:
        raise ConfigError(
            f"{model}: lookahead={lookahead!r} must be a whole number of frames in 0..{most} "
            "((kernel_size - 1) * dilations[0]), e.g. 2"
        )
    if lookahead and not causal:
        raise ConfigError(
            f"{model}: lookahead applies to causal {model.upper()}s; a centred one (causal: false) already looks ahead"
        )
    return int(lookahead)


def max_norm(value: float | None):
    """A ``MaxNorm`` kernel constraint, or None when ``value`` is falsy."""
    return keras.constraints.MaxNorm(float(value)) if value else None


def patch_input(input_shape: tuple[int, int]):
    """The ``keras.Input`` of a spectral model: ``(batch, context, n_bins)`` float32, named ``noisy``."""
    context, n_bins = input_shape
    return keras.Input(shape=(int(context), int(n_bins)), name="noisy")


def output_head(inputs, decoded, *, target: str, residual: bool = False):
    """The model's output layer.

    ``target="mapping"``: named ``clean``; ``decoded`` unchanged (linear) or,
    with ``residual``, ``inputs + decoded``. The residual form still maps noisy
    to clean features but starts from the identity: on data_sample/ the plain
    mapping learned a blurred average spectrum that lowered SI-SDR at every
    input SNR, while the residual form keeps the detail of the input (see
    README, "Results"). It needs noisy and clean on one scale
    (``dataset.normalise: shared``).

    ``target="mask"``: named ``mask``; ``sigmoid(decoded)``, a gain in [0, 1]
    on the noisy magnitude. ``residual`` is ignored (a gain is not a
    correction of the input features).
    """
    if target == "mask":
        return layers.Activation("sigmoid", name="mask")(decoded)
    if residual:
        return layers.Add(name="clean")([inputs, decoded])
    return layers.Activation("linear", name="clean")(decoded)


def to_image(x, input_shape: tuple[int, int]):
    """``(batch, context, n_bins)`` -> ``(batch, context, n_bins, 1)`` for Conv2D layers."""
    context, n_bins = input_shape
    return layers.Reshape((int(context), int(n_bins), 1), name="to_image")(x)


def from_image(x, input_shape: tuple[int, int]):
    """``(batch, context, n_bins, 1)`` -> ``(batch, context, n_bins)``, named ``decoded``."""
    context, n_bins = input_shape
    return layers.Reshape((int(context), int(n_bins)), name="decoded")(x)


def _split(total: int) -> tuple[int, int]:
    return total // 2, total - total // 2


def pad_to_multiple(x, input_shape: tuple[int, int], multiple: int):
    """Zero-pad both axes of an image ``(batch, context, n_bins, c)`` up to multiples of ``multiple``.

    The padding is split between the two ends (the extra row, if odd, at the
    end), so the centre frame of a patch stays in the centre. Returns the
    padded tensor and the ``((top, bottom), (left, right))`` padding, for
    :func:`crop_padding`.
    """
    pads = tuple(_split((-int(d)) % int(multiple)) for d in input_shape)
    if any(sum(p) for p in pads):
        x = layers.ZeroPadding2D(pads, name="pad")(x)
    return x, pads


def crop_padding(x, pads):
    """Undo :func:`pad_to_multiple` with ``Cropping2D``."""
    if any(sum(p) for p in pads):
        x = layers.Cropping2D(pads, name="crop")(x)
    return x
