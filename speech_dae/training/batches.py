"""Batch plans over memory-mapped frames, streamed to Keras through ``tf.data``.

A batch is a pure function of ``(epoch, index)`` and the seed, so batches can
be gathered in parallel threads, split over replicas and redrawn exactly by a
resumed run. :class:`Batches` is the plan; :class:`PatchSequence` serves
supervised ``(noisy, clean-or-mask)`` patches of a stage-02 dataset,
:class:`LabelledPatchSequence` the semi-supervised models' batches, and
:class:`speech_dae.training.examples.MixtureBatches` examples cut from audio.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import ConfigError
from ..framing import gather_patches

__all__ = ["Batches", "PatchSequence", "LabelledPatchSequence"]


class Batches:
    """A batch plan over memory-mapped frames: a seeded order per epoch, a batch per ``(epoch, index)``.

    Subclasses define :meth:`batch_starts` (window starts and soft labels of one
    batch), :meth:`gather` (the gathered numpy arrays) and :meth:`structure`
    (the ``(inputs, targets)`` nest Keras expects). A batch is a pure function
    of ``(epoch, index)``, so :meth:`dataset` can gather batches in parallel
    threads and the result is the same for a given seed whatever the timing.
    Indexing (``plan[i]``, ``len(plan)``, ``on_epoch_end()``) serves the
    batches of the current epoch in numpy, as a ``keras.utils.PyDataset`` would.
    """

    def __init__(self, pools, *, batch_size: int, shuffle: bool, seed: int, max_batches: int | None):
        self.pools = [np.asarray(p) for p in pools]
        self.batch_size, self.shuffle, self.seed, self.max_batches = int(batch_size), shuffle, int(seed), max_batches
        self.epoch = 0
        self._lock = threading.Lock()
        self._orders: dict[int, list[np.ndarray]] = {}

    def order(self, epoch: int) -> list[np.ndarray]:
        """Every pool in epoch ``epoch``'s order: the stored order in epoch 0, then ``default_rng([seed, epoch])``
        permutations (the last two epochs' orders are cached)."""
        if not self.shuffle or epoch == 0:
            return self.pools
        with self._lock:
            if epoch not in self._orders:
                rng = np.random.default_rng([self.seed, epoch])
                self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
                self._orders[epoch] = [p[rng.permutation(p.size)] for p in self.pools]
            return self._orders[epoch]

    def n_full_batches(self) -> int:
        raise NotImplementedError

    def batch_size_of(self, i: int) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        n = self.n_full_batches()
        return n if self.max_batches is None else min(n, self.max_batches)

    def steps(self, parts: int = 1) -> int:
        """Batches per epoch when every batch is split over ``parts`` replicas.

        A last batch with fewer than ``parts`` patches is dropped (a replica would get none).

        Raises
        ------
        ConfigError
            If not one batch has ``parts`` patches.
        """
        n = len(self)
        if n and self.batch_size_of(n - 1) < parts:
            n -= 1
        if n < 1:
            raise ConfigError(
                f"{self.pools[0].size} patches make no batch of at least {parts} patches (one per "
                "replica); use more data, a larger training.batch_size or fewer replicas"
            )
        return n

    def __getitem__(self, i: int):
        starts, labels = self.batch_starts(self.epoch, i)
        return self.structure(*self.gather(starts, labels), lambda a: np.zeros(a.shape[0], np.float32))

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.epoch += 1

    def dataset(self, epochs: int = 1, *, input_context=None, repeat: bool = False, first_epoch: int = 0):
        """The batches of ``epochs`` epochs as a ``tf.data.Dataset`` (gathered by ``tf.numpy_function``).

        Element ``k`` is batch ``k % steps`` of epoch ``k // steps``, gathered
        from the memmaps in parallel threads (``num_parallel_calls=AUTOTUNE``,
        order kept) and prefetched; nothing is loaded whole. Pass
        ``steps_per_epoch=steps()`` to ``fit``, which then walks one iterator
        through all epochs.

        Parameters
        ----------
        epochs : int
        input_context : tf.distribute.InputContext, optional
            From ``strategy.distribute_datasets_from_function``: every batch is
            split into ``num_replicas_in_sync`` interleaved parts
            (``starts[r::replicas]``) and this input pipeline yields, per batch,
            the parts of its local replicas.
        repeat : bool
            Repeat forever (validation: ``validation_steps=steps()`` batches per evaluation).
        first_epoch : int
            Start with this epoch's batches (a run resumed by :class:`BackupAndRestore` at
            ``initial_epoch``): its shuffle is the one an uninterrupted run would draw.
        """
        import tensorflow as tf

        parts, local, first = 1, 1, 0
        if input_context is not None:
            parts = input_context.num_replicas_in_sync
            local = parts // input_context.num_input_pipelines
            first = input_context.input_pipeline_id * local
        steps = self.steps(parts)
        probe = self.gather(*(None if a is None else a[:1] for a in self.batch_starts(0, 0)))
        dtypes = [tf.as_dtype(a.dtype) for a in probe]

        def load(j):
            k, r = divmod(int(j), local)
            epoch, i = divmod(k, steps)
            starts, labels = self.batch_starts(epoch, i)
            part = slice(first + r, None, parts)
            return self.gather(starts[part], None if labels is None else labels[part])

        def structure(*flat):
            for t, a in zip(flat, probe):
                t.set_shape((None, *a.shape[1:]))
            return self.structure(*flat, lambda a: tf.zeros(tf.shape(a)[:1], tf.float32))

        ds = tf.data.Dataset.range(int(first_epoch) * steps * local, int(epochs) * steps * local)
        ds = ds.map(
            lambda j: tf.numpy_function(load, [j], dtypes, stateful=False),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        ds = ds.map(structure)
        return (ds.repeat() if repeat else ds).prefetch(tf.data.AUTOTUNE)


class PatchSequence(Batches):
    """Batches of ``(x_patch, y_patch)`` gathered from memory-mapped frames (supervised models).

    Parameters
    ----------
    x, y : np.ndarray [shape=(n_frames, n_bins)], float32 (memmaps)
    windows : np.ndarray [shape=(n_patches,)], int64
        Patch start frames.
    context : int
    batch_size : int
    shuffle : bool
        A fresh seeded order every epoch (epoch 0 keeps the stored order).
    seed : int
    target_fn : callable, optional
        ``target_fn(x_patches, y_patches) -> targets`` replaces the clean patches
        as targets (e.g. the ratio mask of ``training.target: mask``).
    max_batches : int, optional
        Batches per epoch (``training.steps_per_epoch``): each epoch serves the
        first ``max_batches`` batches of its own shuffle, so successive epochs
        see different patches.

    Notes
    -----
    ``plan[i]`` is ``(x_patches, targets)``, float32 ``(batch, context, n_bins)``;
    :meth:`dataset` streams the same batches through ``tf.data``.
    """

    def __init__(
        self,
        x,
        y,
        windows,
        *,
        context: int,
        batch_size: int,
        shuffle: bool,
        seed: int,
        target_fn=None,
        max_batches: int | None = None,
    ):
        super().__init__([windows], batch_size=batch_size, shuffle=shuffle, seed=seed, max_batches=max_batches)
        self.x, self.y, self.context, self.target_fn = x, y, int(context), target_fn

    def n_full_batches(self) -> int:
        return int(np.ceil(self.pools[0].size / self.batch_size))

    def batch_size_of(self, i: int) -> int:
        return int(min(self.batch_size, self.pools[0].size - i * self.batch_size))

    def batch_starts(self, epoch: int, i: int):
        return self.order(epoch)[0][i * self.batch_size : (i + 1) * self.batch_size], None

    def gather(self, starts, labels):
        xb, yb = gather_patches(self.x, starts, self.context), gather_patches(self.y, starts, self.context)
        yb = yb if self.target_fn is None else self.target_fn(xb, yb)
        return [np.asarray(xb, np.float32), np.asarray(yb, np.float32)]

    def structure(self, xb, yb, zeros):
        return xb, yb


class LabelledPatchSequence(Batches):
    """Batches for the semi-supervised models: a fixed share of noise-only patches, the input as target.

    Every batch holds ``round(noise_only_fraction * batch_size)`` (at least 1)
    patches with soft label >= 0.5 (noise-only recordings), drawn cyclically
    from their own shuffle, and the rest from the other patches; an epoch
    walks once through the latter. ``plan[i]`` is ``((x_patches, labels), targets)``
    with ``targets = {"recon": x_patches}`` (plus a zero ``penalty`` target for
    the partitioned trainer): no clean features are read (Stowell & Turner 2015;
    Lusterman 2016). :meth:`dataset` streams the same batches through ``tf.data``.

    Parameters
    ----------
    x : np.ndarray [shape=(n_frames, n_bins)], float32 (memmap)
    windows : np.ndarray [shape=(n_patches,)], int64
    labels : np.ndarray [shape=(n_patches,)], float32
        Soft label of each window.
    context, batch_size : int
    noise_only_fraction : float in (0, 1)
    shuffle : bool
    seed : int
    penalty_output : bool
        Add the ``penalty`` target (partitioned).
    max_batches : int, optional

    Raises
    ------
    ConfigError
        If there is no noise-only or no other patch.
    """

    def __init__(
        self,
        x,
        windows,
        labels,
        *,
        context: int,
        batch_size: int,
        noise_only_fraction: float,
        shuffle: bool,
        seed: int,
        penalty_output: bool,
        max_batches: int | None = None,
    ):
        labels = np.asarray(labels)
        pools = [np.asarray(windows)[labels < 0.5], np.asarray(windows)[labels >= 0.5]]
        if pools[0].size == 0 or pools[1].size == 0:
            raise ConfigError(
                f"semi-supervised training needs noise-only patches and noisy-speech patches; got "
                f"{pools[1].size} and {pools[0].size}: re-run 01_extract_features.py with "
                "--noise-only DIR"
            )
        super().__init__(pools, batch_size=batch_size, shuffle=shuffle, seed=seed, max_batches=max_batches)
        self.x, self.context, self.penalty_output = x, int(context), penalty_output
        self.n1 = max(1, int(round(noise_only_fraction * batch_size)))
        self.n0 = max(1, batch_size - self.n1)

    def n_full_batches(self) -> int:
        return int(np.ceil(self.pools[0].size / self.n0))

    def batch_size_of(self, i: int) -> int:
        return int(min(self.n0, self.pools[0].size - i * self.n0) + self.n1)

    def batch_starts(self, epoch: int, i: int):
        speech, noise = self.order(epoch)
        speech = speech[i * self.n0 : (i + 1) * self.n0]
        noise = noise[(i * self.n1 + np.arange(self.n1)) % noise.size]
        labels = np.concatenate([np.zeros(speech.size, np.float32), np.ones(noise.size, np.float32)])
        return np.concatenate([speech, noise]), labels

    def gather(self, starts, labels):
        return [
            np.asarray(gather_patches(self.x, starts, self.context), np.float32),
            np.asarray(labels, np.float32)[:, None],
        ]

    def structure(self, xb, yb, zeros):
        targets = {"recon": xb}
        if self.penalty_output:
            targets["penalty"] = zeros(xb)
        return (xb, yb), targets
