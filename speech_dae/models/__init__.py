"""Model registry: ``build_model(name, input_shape, **hparams) -> keras.Model``.

Every model maps a patch of ``input_shape = (context, n_bins)`` normalised
noisy features to a patch of the same shape (normalised clean features). They
are Functional models built from stock Keras layers, so
``keras.saving.load_model("model.keras")`` needs no ``custom_objects``.

==========  =====================================================================
name        lineage
==========  =====================================================================
``type1``   Conv1D / Conv1DTranspose autoencoder over context patches
            (Simple Speech Denoising Autoencoder, model type 1)
``type2``   dense autoencoder over the flattened patch (same project, model type 2)
==========  =====================================================================
"""

from __future__ import annotations

import inspect
from typing import Callable

from ..errors import ConfigError
from .autoencoders import build_type1, build_type2

__all__ = ["MODELS", "build_model", "model_names"]

MODELS: dict[str, Callable] = {
    "type1": build_type1,
    "type2": build_type2,
}


def model_names() -> list[str]:
    return sorted(MODELS)


def build_model(name: str, input_shape: tuple[int, int], **hparams):
    """Build registry model ``name`` for patches of ``input_shape = (context, n_bins)``.

    Raises
    ------
    ConfigError
        For an unknown model name or hyper-parameter (the message lists the valid ones).
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(model_names())}")
    builder = MODELS[name]
    valid = [p for p in inspect.signature(builder).parameters if p != "input_shape"]
    unknown = sorted(set(hparams) - set(valid))
    if unknown:
        raise ConfigError(f"model {name!r} has no hyper-parameter {', '.join(unknown)}; valid: {', '.join(valid)}")
    return builder(tuple(int(d) for d in input_shape), **hparams)
