"""Framing shared by training and inference: patches, normalisation, overlap-add, block grids, even picks.

A spectral feature sequence ``(n_frames, n_bins)`` is cut into ``context``-frame
patches (:func:`patch_starts`, :func:`gather_patches`), standardised per bin
with training-split statistics (:class:`Normaliser`), and, after the model,
averaged back into one sequence (:func:`overlap_average`). Long recordings are
processed in blocks aligned to the model's grid (:func:`block_plan`); subsets
are taken evenly spaced (:func:`even_indices`). Nothing here imports a
framework: NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .artifacts import STAGE02, atomic_path
from .errors import ArtifactError, ConfigError

__all__ = ["Normaliser", "patch_starts", "gather_patches", "overlap_average", "block_plan", "even_indices"]


@dataclass(frozen=True)
class Normaliser:
    """Per-bin standardisation of noisy inputs (``x``) and clean targets (``y``).

    Arrays are float32, shape ``(n_bins,)``; statistics come from the training split only.
    """

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray

    @classmethod
    def identity(cls, n_bins: int) -> Normaliser:
        z, o = np.zeros(n_bins, np.float32), np.ones(n_bins, np.float32)
        return cls(z, o, z, o)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, shared: bool = True, floor: float = 1e-3) -> Normaliser:
        """Statistics of ``x`` and ``y`` (each ``(n_frames, n_bins)``), std floored at ``floor``.

        With ``shared`` the clean targets are scaled with the noisy statistics, so
        one affine map puts both on the same scale (identity = "no denoising").
        """

        def stats(a):
            a = np.asarray(a, dtype=np.float64)
            return a.mean(0).astype(np.float32), np.maximum(a.std(0), floor).astype(np.float32)

        xm, xs = stats(x)
        ym, ys = (xm, xs) if shared else stats(y)
        return cls(xm, xs, ym, ys)

    @classmethod
    def load(cls, path: str | Path) -> Normaliser:
        try:
            with np.load(path) as z:
                return cls(*(z[k].astype(np.float32) for k in ("x_mean", "x_std", "y_mean", "y_std")))
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise ArtifactError(f"{path}: cannot read normalisation statistics ({exc}); re-run {STAGE02}") from None

    def save(self, path: str | Path) -> Path:
        with atomic_path(path) as tmp:
            np.savez(tmp, x_mean=self.x_mean, x_std=self.x_std, y_mean=self.y_mean, y_std=self.y_std)
        return Path(path)

    def norm_x(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.x_mean) / self.x_std).astype(np.float32)

    def norm_y(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.y_mean) / self.y_std).astype(np.float32)

    def denorm_x(self, x: np.ndarray) -> np.ndarray:
        return (x * self.x_std + self.x_mean).astype(np.float32)

    def denorm_y(self, y: np.ndarray) -> np.ndarray:
        return (y * self.y_std + self.y_mean).astype(np.float32)


def patch_starts(n_frames: int, context: int, stride: int) -> np.ndarray:
    """Start frames of ``context``-frame patches every ``stride`` frames, the last one flush with the end.

    Parameters
    ----------
    n_frames : int
    context : int
        Patch length in frames.
    stride : int
        Frames between consecutive starts.

    Returns
    -------
    np.ndarray [shape=(n_patches,)], int64
        Empty when ``n_frames < context``. When ``stride <= context`` every frame
        is covered by at least one patch (larger strides skip frames, which only
        training may want).
    """
    if n_frames < context:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(0, n_frames - context + 1, stride, dtype=np.int64)
    if starts[-1] != n_frames - context:
        starts = np.append(starts, n_frames - context)
    return starts


def gather_patches(frames: np.ndarray, starts: np.ndarray, context: int) -> np.ndarray:
    """Patches ``frames[s:s + context]`` for every ``s`` in ``starts``, in one fancy index.

    Parameters
    ----------
    frames : np.ndarray [shape=(n_frames, n_bins)] (may be a memmap)
    starts : np.ndarray [shape=(n_patches,)], int
    context : int

    Returns
    -------
    np.ndarray [shape=(n_patches, context, n_bins)], same dtype as ``frames``
    """
    idx = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(context, dtype=np.int64)
    return np.asarray(frames[idx])


def overlap_average(
    patches: np.ndarray, starts: np.ndarray, n_frames: int, window: np.ndarray | None = None
) -> np.ndarray:
    """Weighted average of overlapping patches: ``sum(w * patch) / sum(w)`` per frame.

    Parameters
    ----------
    patches : np.ndarray [shape=(n_patches, context, n_bins)]
    starts : np.ndarray [shape=(n_patches,)], int, unique
        First frame of each patch.
    n_frames : int
        Length of the output sequence.
    window : np.ndarray [shape=(context,)], optional
        Weight of each patch position (default: all ones). Frames no patch covers are 0.

    Returns
    -------
    np.ndarray [shape=(n_frames, n_bins)], float32

    Notes
    -----
    Spectral patches (``context <= n_bins``): a loop over the ``context``
    positions, each step vectorised over all patches (starts are unique, so
    fancy-index ``+=`` is exact). Waveform chunks: ``np.bincount`` per bin.
    With a Hann ``window`` and a hop of half the chunk this is the
    Hann-weighted overlap-add of the Conv1D audio-restoration design, written
    as ``sum(w * y) / sum(w)`` rather than ``sum(w * y) / sum(w**2)`` because the
    chunks are not windowed before the model (the identity model must return its input).
    """
    n_patches, context, n_bins = patches.shape
    w = np.ones(context, np.float32) if window is None else np.asarray(window, np.float32)
    starts = np.asarray(starts, dtype=np.int64)
    norm = np.zeros(n_frames, np.float64)
    if context <= n_bins:  # spectral patches: loop over the few patch positions, vectorised over patches
        acc = np.zeros((n_frames, n_bins), np.float64)
        for r in range(context):
            acc[starts + r] += w[r] * patches[:, r, :]
            norm[starts + r] += w[r]
    else:  # long chunks of few bins (waveform): one bincount per bin over every (patch, position)
        idx = (starts[:, None] + np.arange(context)).ravel()
        weights = np.broadcast_to(w, (n_patches, context)).ravel()
        norm = np.bincount(idx, weights=weights, minlength=n_frames)[:n_frames]
        acc = np.stack(
            [
                np.bincount(idx, weights=(patches[:, :, b] * w).ravel(), minlength=n_frames)[:n_frames]
                for b in range(n_bins)
            ],
            axis=1,
        )
    return (acc / np.where(norm > 0, norm, 1.0)[:, None]).astype(np.float32)


def block_plan(n: int, block: int, margin: int, align: int) -> list[tuple[int, int, int, int]]:
    """Blocks covering ``n`` samples: ``(read_start, read_stop, keep_start, keep_stop)`` each.

    ``keep`` ranges tile ``[0, n)`` with starts on multiples of ``align``; each
    is read with up to ``margin`` samples (a multiple of ``align``) on both sides.

    Raises
    ------
    ConfigError
        If ``block``, ``align`` or ``margin`` are not positive multiples of ``align``.
    """
    if align < 1 or block < align or block % align or margin < 0 or margin % align:
        raise ConfigError(f"block {block} and margin {margin} must be multiples of the grid {align} samples")
    plan = []
    for keep_start in range(0, max(n, 1), block):
        keep_stop = min(keep_start + block, n)
        plan.append((max(0, keep_start - margin), min(n, keep_stop + margin), keep_start, keep_stop))
    return plan


def even_indices(n_items: int, n: int | None) -> np.ndarray:
    """Indices of at most ``n`` of ``n_items`` items, evenly spaced from the first to the last (sorted, unique).

    Spacing the picks through a list keeps every part of it represented
    (every utterance of a split, every speaker of a manifest) instead of the first few.

    Parameters
    ----------
    n_items : int
        Length of the list to pick from.
    n : int or None
        How many to pick; ``None`` (or ``n >= n_items``) picks all.

    Returns
    -------
    np.ndarray [shape=(min(n, n_items),)], int64
        ``round(linspace(0, n_items - 1, n))``; all indices when ``n`` is None or large enough.

    Examples
    --------
    >>> even_indices(10, 3).tolist()
    [0, 4, 9]
    """
    if n is None or n >= n_items:
        return np.arange(n_items, dtype=np.int64)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, n_items - 1, n).round().astype(np.int64))
