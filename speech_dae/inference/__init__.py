"""Inference: the engine (:class:`Denoiser`), exported runtimes, streaming, file denoising and export.

Layout (each module imports only those above it in this list):

- :mod:`.runtimes`: onnxruntime / TFLite / SavedModel runtimes of exported models
- :mod:`.engine`: :class:`Denoiser`, the one loader of a run folder
- :mod:`.streaming`: block-by-block processing with stated latency (used by ``Denoiser.process_block``)
- :mod:`.files`: ``speech-dae denoise``, files and folders of any length in flat memory
- :mod:`.export`: ``speech-dae export``, checked against Keras

``from speech_dae.inference import Denoiser`` imports no framework; Keras is
imported when a Keras run is loaded.
"""

from .engine import ENGINES, Denoiser

__all__ = ["Denoiser", "ENGINES"]
