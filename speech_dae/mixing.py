"""Mixing clean speech with noise at a target SNR, and splitting corpora.

The SNR is the power ratio over the whole utterance,
``snr_db = 10 log10(sum(s**2) / sum(n**2))``. The noise is cropped at a seeded
random offset, or looped when shorter than the speech. When the mixture would
clip, the mixture *and* the clean target are scaled by the same gain, so the
target stays the exact clean component of the mixture and the SNR is kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from .errors import AudioError, ConfigError

__all__ = [
    "Mixture",
    "fit_noise",
    "mix_at_snr",
    "peak_gain",
    "seeded_rng",
    "split_items",
    "hold_out_groups",
    "snr_db_of",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Mixture:
    """Result of :func:`mix_at_snr` (all arrays float32, shape (n_samples,))."""

    noisy: np.ndarray
    clean: np.ndarray
    noise: np.ndarray
    gain: float
    noise_offset: int


def seeded_rng(seed: int, *keys: object) -> np.random.Generator:
    """A NumPy generator determined by ``seed`` and ``keys`` alone (order-independent across items)."""
    digest = hashlib.sha256(repr((seed,) + keys).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def fit_noise(noise: np.ndarray, n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Crop ``noise`` to ``n_samples`` at a random offset, or loop it when shorter.

    Parameters
    ----------
    noise : np.ndarray [shape=(n_noise,)], float32
    n_samples : int
    rng : np.random.Generator

    Returns
    -------
    segment : np.ndarray [shape=(n_samples,)], float32
    offset : int
        Start sample in ``noise`` (a looped noise starts at a random offset too).
        Offsets whose segment would be all zeros are never drawn.

    Raises
    ------
    AudioError
        If ``noise`` is empty or has no non-silent segment of ``n_samples``.
    """
    if noise.size == 0:
        raise AudioError("noise signal is empty")
    if noise.size >= n_samples:
        # draw among the offsets whose segment is not digital silence (all of them for ordinary noise)
        energy = np.concatenate([[0.0], np.cumsum(np.square(noise, dtype=np.float64))])
        valid = np.flatnonzero(energy[n_samples:] - energy[:-n_samples] > 0)
        if valid.size == 0:
            raise AudioError(f"noise holds no non-silent stretch of {n_samples} samples")
        offset = int(valid[rng.integers(0, valid.size)])
        return noise[offset : offset + n_samples].astype(np.float32, copy=True), offset
    offset = int(rng.integers(0, noise.size))
    idx = (offset + np.arange(n_samples)) % noise.size
    return noise[idx].astype(np.float32), offset


def snr_db_of(clean: np.ndarray, noise: np.ndarray) -> float:
    """SNR in dB of ``clean`` over ``noise`` (power ratio over the whole signal)."""
    ps = float(np.sum(np.square(clean, dtype=np.float64)))
    pn = float(np.sum(np.square(noise, dtype=np.float64)))
    if pn == 0:
        return float("inf")
    if ps == 0:
        return float("-inf")
    return 10.0 * np.log10(ps / pn)


def peak_gain(peak, clip_peak: float) -> np.ndarray:
    """The gain that brings a mixture whose peak is ``peak`` down to ``clip_peak``, or 1 when it is below.

    The one rule of the clipping guard, for one mixture (stage 01, :func:`mix_at_snr`) or a
    batch of them (dynamic mixing in stage 03): the noisy mixture and its clean target are
    both multiplied by this gain, so the target stays the clean part of the input.

    Parameters
    ----------
    peak : float or np.ndarray, >= 0
        ``max|noisy|`` of each mixture (after any level change).
    clip_peak : float in (0, 1]
        ``mixing.clip_peak``.

    Returns
    -------
    np.ndarray, float64, shape of ``peak``
        ``clip_peak / peak`` where ``peak > clip_peak``, else 1.
    """
    peak = np.asarray(peak, dtype=np.float64)
    return np.where(peak > clip_peak, clip_peak / np.maximum(peak, 1e-12), 1.0)


def mix_at_snr(
    clean: np.ndarray, noise: np.ndarray, snr_db: float, *, rng: np.random.Generator, clip_peak: float = 0.99
) -> Mixture:
    """Mix ``clean`` with ``noise`` so that the utterance SNR is ``snr_db``.

    Parameters
    ----------
    clean : np.ndarray [shape=(n_samples,)], float32
        Clean speech in [-1, 1].
    noise : np.ndarray [shape=(n_noise,)], float32
        Noise recording; cropped or looped to ``n_samples``.
    snr_db : float
        Target SNR in dB (power ratio over the utterance).
    rng : np.random.Generator
        Chooses the noise offset.
    clip_peak : float
        If ``max|noisy|`` exceeds this, noisy, clean and noise are all scaled by
        ``clip_peak / max|noisy|``.

    Returns
    -------
    Mixture

    Raises
    ------
    AudioError
        If the clean signal or the noise segment is all zeros (no SNR is defined).
    """
    clean = np.asarray(clean, dtype=np.float32)
    segment, offset = fit_noise(np.asarray(noise, dtype=np.float32), clean.size, rng)
    ps = np.sum(np.square(clean, dtype=np.float64))
    pn = np.sum(np.square(segment, dtype=np.float64))
    if ps == 0:
        raise AudioError("clean signal is all zeros; an SNR is undefined")
    if pn == 0:
        raise AudioError("noise segment is all zeros; an SNR is undefined")
    scale = np.sqrt(ps / (pn * 10.0 ** (snr_db / 10.0)))
    noise_scaled = segment.astype(np.float64) * scale
    noisy = clean.astype(np.float64) + noise_scaled
    peak = float(np.max(np.abs(noisy)))
    gain = float(peak_gain(peak, clip_peak))
    return Mixture(
        noisy=(noisy * gain).astype(np.float32),
        clean=(clean * gain).astype(np.float32),
        noise=(noise_scaled * gain).astype(np.float32),
        gain=float(gain),
        noise_offset=offset,
    )


def split_items(items: Sequence[T], fractions: Sequence[float], *, seed: int, key: str = "") -> list[list[T]]:
    """Shuffle ``items`` with ``seed`` and cut them into consecutive groups by ``fractions``.

    The first group takes what the others leave. Each group with a non-zero
    fraction gets at least one item when there are enough items for every such group.

    Parameters
    ----------
    items : sequence
    fractions : sequence of float
        Shares of groups 2.. (group 1 gets the rest), e.g. ``(val, test)``.
    seed : int
    key : str
        Distinguishes independent splits made with the same seed.

    Returns
    -------
    list of lists, ``len(fractions) + 1`` groups.
    """
    order = list(items)
    rng = seeded_rng(seed, "split", key)
    perm = rng.permutation(len(order))
    order = [order[i] for i in perm]
    n = len(order)
    wanted = [f for f in fractions]
    if sum(wanted) >= 1:
        raise ConfigError(
            f"split fractions {list(wanted)} add up to {sum(wanted):g}; they must leave a share (> 0) for training"
        )
    counts = [int(round(f * n)) for f in wanted]
    if n > sum(1 for f in wanted if f > 0):
        counts = [max(c, 1) if f > 0 else 0 for c, f in zip(counts, wanted)]
    else:
        counts = [0 for _ in wanted]
    while sum(counts) > n - 1 and any(counts):  # rounding up to 1 each must still leave a training item
        counts[counts.index(max(counts))] -= 1
    groups, start = [], n - sum(counts)
    groups.append(order[:start])
    for c in counts:
        groups.append(order[start : start + c])
        start += c
    return groups


def hold_out_groups(
    items: Sequence[T], groups: Sequence[str], target: float, *, seed: int, key: str = ""
) -> tuple[list[T], list[T]] | None:
    """Hold out whole groups (speakers) holding about ``target`` of ``items``.

    The groups are shuffled with ``seed``; each is taken while it brings the held-out count
    closer to ``target`` (the first always, at least one group is always left).

    Parameters
    ----------
    items : sequence
    groups : sequence of str, same length
        The group (speaker) of each item.
    target : float >= 0
        Items wanted in the held-out part.
    seed : int
    key : str
        Distinguishes independent splits made with the same seed.

    Returns
    -------
    (kept, held) : two lists in the order of ``items``, or None when there are fewer than two groups.
    """
    names = sorted(set(groups))
    if len(names) < 2:
        return None
    counts = {n: 0 for n in names}
    for g in groups:
        counts[g] += 1
    order = seeded_rng(seed, "split-groups", key).permutation(len(names))
    held: set[str] = set()
    n = 0
    for i in order[:-1]:
        c = counts[names[i]]
        if held and abs(n + c - target) >= abs(n - target):
            continue
        held.add(names[i])
        n += c
        if n >= target:
            break
    kept = [it for it, g in zip(items, groups) if g not in held]
    return kept, [it for it, g in zip(items, groups) if g in held]
