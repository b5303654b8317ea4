"""Inference: the engine (:class:`Denoiser`), exported runtimes, streaming, file denoising and export.

Layout:

- :mod:`.runtimes`: onnxruntime / TFLite / SavedModel runtimes of exported models
- :mod:`.streaming`: block-by-block processing with stated latency; it drives a Denoiser it is given and
  imports none of the modules below
- :mod:`.engine`: :class:`Denoiser`, the one loader of a run folder (imports the two above; streaming on
  first use of ``Denoiser.process_block``)
- :mod:`.files`, :mod:`.export`: ``speech-dae denoise`` (files and folders of any length in flat memory) and
  ``speech-dae export`` (checked against Keras), both on :mod:`.engine`

``from speech_dae.inference import Denoiser`` imports no framework; Keras is
imported when a Keras run is loaded.
"""

from .engine import ENGINES, Denoiser

__all__ = ["Denoiser", "ENGINES"]
