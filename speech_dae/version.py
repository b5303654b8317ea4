"""The package version (one place; ``speech_dae.__version__`` re-exports it)."""

__version__ = "0.1.0"
