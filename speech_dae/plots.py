"""Pictures people would rather look at than read: spectrograms and training curves (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .artifacts import atomic_path

__all__ = ["pyplot", "spectrograms_db", "plot_spectrograms", "plot_training_curves"]


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def spectrograms_db(
    signals: Sequence[np.ndarray],
    *,
    n_fft: int = 512,
    hop_length: int = 128,
    max_s: float | None = None,
    sample_rate: int | None = None,
) -> tuple[list[np.ndarray], float]:
    """Log-magnitude STFT spectrograms of several signals, and their common peak (for one colour scale).

    Parameters
    ----------
    signals : sequence of np.ndarray [shape=(n_samples,)], float
        Mono waveforms (cast to float32).
    n_fft, hop_length : int
        STFT size and hop (samples; centred frames, Hann window).
    max_s : float, optional
        Use at most this many seconds from the start of each signal (needs ``sample_rate``).
    sample_rate : int, optional
        Hz; only used with ``max_s``.

    Returns
    -------
    specs : list of np.ndarray [shape=(n_fft // 2 + 1, n_frames)], float32
        ``20 * log10(|STFT| + 1e-10)`` in dB, low frequencies first.
    vmax : float
        The largest value over all ``specs`` (dB).

    Raises
    ------
    ValueError
        If ``signals`` is empty, or ``max_s`` is given without ``sample_rate``.
    """
    import librosa

    if not len(signals):
        raise ValueError("spectrograms_db needs at least one signal")
    if max_s and not sample_rate:
        raise ValueError("spectrograms_db: max_s needs sample_rate")
    limit = int(max_s * sample_rate) if max_s else None
    mags = [
        np.abs(librosa.stft(np.asarray(y, np.float32)[:limit], n_fft=n_fft, hop_length=hop_length)) for y in signals
    ]
    specs = [20 * np.log10(m + 1e-10) for m in mags]
    return specs, max(float(s.max()) for s in specs)


def plot_spectrograms(
    signals: Sequence[tuple[str, np.ndarray]],
    path: str | Path,
    *,
    sample_rate: int,
    n_fft: int = 512,
    hop_length: int = 128,
    max_s: float | None = None,
    suptitle: str | None = None,
    dynamic_range_db: float = 80.0,
) -> Path:
    """Stack the log-magnitude spectrograms of several signals on one colour scale.

    Parameters
    ----------
    signals : sequence of (title, y)
        ``y`` is ``np.ndarray [shape=(n_samples,)]``, float, at ``sample_rate``.
    path : str or Path
        PNG to write (atomically).
    sample_rate : int
        Hz.
    n_fft, hop_length : int
        STFT used for the pictures (samples).
    max_s : float, optional
        Show at most this many seconds from the start.
    dynamic_range_db : float
        The colour scale spans ``[peak - dynamic_range_db, peak]`` dB over all panels.

    Returns
    -------
    Path
    """
    import librosa.display

    plt = pyplot()
    titles = [title for title, _ in signals]
    dbs, vmax = spectrograms_db(
        [y for _, y in signals], n_fft=n_fft, hop_length=hop_length, max_s=max_s, sample_rate=sample_rate
    )
    specs = list(zip(titles, dbs))
    vmin = vmax - dynamic_range_db
    fig, axes = plt.subplots(len(specs), 1, figsize=(10, 2.4 * len(specs) + 0.4), sharex=True, squeeze=False)
    img = None
    for ax, (title, S_db) in zip(axes[:, 0], specs):
        img = librosa.display.specshow(
            S_db,
            sr=sample_rate,
            hop_length=hop_length,
            x_axis="time",
            y_axis="hz",
            ax=ax,
            vmin=vmin,
            vmax=vmax,
            cmap="magma",
        )
        ax.set_title(title, fontsize=10, loc="left")
        ax.set_xlabel("")
    axes[-1, 0].set_xlabel("time (s)")
    fig.colorbar(img, ax=axes[:, 0].tolist(), format="%+.0f dB", pad=0.01)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(path)


def plot_training_curves(history: Mapping[str, Sequence[float]], path: str | Path, *, title: str = "") -> Path:
    """Training and validation loss per epoch, best epoch marked; written atomically as PNG."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = np.arange(1, len(history["loss"]) + 1)
    ax.plot(epochs, history["loss"], label="train loss")
    if "val_loss" in history:
        val = np.asarray(history["val_loss"])
        ax.plot(epochs, val, label="val loss")
        best = int(np.argmin(val))
        ax.axvline(best + 1, color="grey", ls=":", label=f"best epoch {best + 1}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(path)
