"""Pictures people would rather look at than read: spectrograms and training curves (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .artifacts import atomic_path

__all__ = ["pyplot", "plot_spectrograms", "plot_training_curves"]


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
    import librosa
    import librosa.display

    plt = pyplot()
    limit = int(max_s * sample_rate) if max_s else None
    specs = []
    for title, y in signals:
        y = np.asarray(y, dtype=np.float32)[:limit]
        S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length))
        specs.append((title, 20 * np.log10(S + 1e-10)))
    vmax = max(float(s.max()) for _, s in specs)
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
