"""speech-dae: denoising autoencoders for speech, from features to audio.

The numbered scripts at the repository root are thin command-line wrappers
over this package: :mod:`speech_dae.extract` (01), :mod:`speech_dae.dataset`
(02), :mod:`speech_dae.training` (03) and :mod:`speech_dae.reconstruct` (04).
"""

__version__ = "0.1.0"
