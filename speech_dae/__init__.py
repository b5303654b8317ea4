"""speech-dae: denoising autoencoders for speech, from features to audio.

The numbered scripts at the repository root are thin command-line wrappers
over :mod:`speech_dae.stages` (01 extract, 02 dataset, 03 train, 04
reconstruct, 05 evaluate, 06 tune). They rest on the components
(:mod:`speech_dae.models`, :mod:`speech_dae.framing`,
:mod:`speech_dae.inference`, :mod:`speech_dae.training`,
:mod:`speech_dae.scores`, :mod:`speech_dae.report`, :mod:`speech_dae.runinfo`)
and the basics (config, errors, audio, mixing, features, losses, metrics,
baselines, plots, artifacts). ``docs/architecture.md`` draws the layers.

``speech_dae.Denoiser`` is :class:`speech_dae.inference.Denoiser`, imported on first use.
"""

from .version import __version__

__all__ = ["Denoiser", "__version__"]


def __getattr__(name: str):
    if name == "Denoiser":  # lazy: importing the package stays cheap (no NumPy-heavy or framework imports)
        from .inference import Denoiser

        return Denoiser
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
