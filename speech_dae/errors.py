"""Exception hierarchy of speech-dae.

Every mistake a user can make (a bad config value, an unreadable WAV, a stage
run out of order) raises a :class:`SpeechDAEError` subclass whose message says
what was wrong, with the offending value, and what to do about it. The
numbered scripts print that message on one line and exit with status 2.
"""

from __future__ import annotations

__all__ = ["SpeechDAEError", "ConfigError", "AudioError", "ArtifactError"]


class SpeechDAEError(Exception):
    """Base class of every error speech-dae raises on purpose."""


class ConfigError(SpeechDAEError, ValueError):
    """A configuration value or command-line option is invalid."""


class AudioError(SpeechDAEError, ValueError):
    """An audio file or array cannot be used (unreadable, empty, silent, NaN, ...)."""


class ArtifactError(SpeechDAEError):
    """A stage's input folder is missing, incomplete, stale or from another configuration."""
