"""Stage 03: train a registry model on a stage-02 dataset -> ``models/<run>/``.

Plumbing is stock Keras: ``EarlyStopping`` (best weights restored, saved to
``model.keras``), ``CSVLogger`` to ``model_logs/<run>.csv`` and ``TensorBoard``
events in ``model_logs/<run>/``, plus libdse-style ``Loss/``, ``Ratio/``, ``SNR/``
and ``GradNorm/`` scalars, audio and spectrograms there (``training.tensorboard_media``).
``BackupAndRestore`` keeps the last completed epoch in ``models/<run>.partial/backup``:
a run killed mid-training resumes from it when started again. Batches are gathered from the memory-mapped
dataset by a ``tf.data`` pipeline (parallel, prefetched), so a dataset larger
than memory trains; ``training.distribute`` spreads them over several devices
or workers (``tf.distribute``).
The run folder is built as ``models/<run>.partial`` and renamed when training
ends, so ``models/<run>/`` always holds a finished run: ``model.keras``,
``run.json`` (everything stage 04 needs), ``norm.npz`` and ``training.png``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .artifacts import StagedOutput, atomic_path, fingerprint, package_versions, read_json, write_json
from .config import POINTWISE_LOSSES, Config, parse_loss
from .dataset import gather_patches, load_dataset
from .errors import ArtifactError, ConfigError

__all__ = [
    "train",
    "TrainSummary",
    "PatchSequence",
    "LabelledPatchSequence",
    "ClusterTask",
    "parse_tf_config",
    "logical_cpu_devices",
    "distribution",
]

log = logging.getLogger(__name__)


def _keras():
    import keras

    return keras


class _Batches:
    """A batch plan over memory-mapped frames: a seeded order per epoch, a batch per ``(epoch, index)``.

    Subclasses define :meth:`_starts` (window starts and soft labels of one
    batch), :meth:`_arrays` (the gathered numpy arrays) and :meth:`_structure`
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

    def _n_full(self) -> int:
        raise NotImplementedError

    def batch_size_of(self, i: int) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        n = self._n_full()
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
        starts, labels = self._starts(self.epoch, i)
        return self._structure(*self._arrays(starts, labels), lambda a: np.zeros(a.shape[0], np.float32))

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
        probe = self._arrays(*(None if a is None else a[:1] for a in self._starts(0, 0)))
        dtypes = [tf.as_dtype(a.dtype) for a in probe]

        def load(j):
            k, r = divmod(int(j), local)
            epoch, i = divmod(k, steps)
            starts, labels = self._starts(epoch, i)
            part = slice(first + r, None, parts)
            return self._arrays(starts[part], None if labels is None else labels[part])

        def structure(*flat):
            for t, a in zip(flat, probe):
                t.set_shape((None, *a.shape[1:]))
            return self._structure(*flat, lambda a: tf.zeros(tf.shape(a)[:1], tf.float32))

        ds = tf.data.Dataset.range(int(first_epoch) * steps * local, int(epochs) * steps * local)
        ds = ds.map(
            lambda j: tf.numpy_function(load, [j], dtypes, stateful=False),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        ds = ds.map(structure)
        return (ds.repeat() if repeat else ds).prefetch(tf.data.AUTOTUNE)


class PatchSequence(_Batches):
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

    def _n_full(self) -> int:
        return int(np.ceil(self.pools[0].size / self.batch_size))

    def batch_size_of(self, i: int) -> int:
        return int(min(self.batch_size, self.pools[0].size - i * self.batch_size))

    def _starts(self, epoch: int, i: int):
        return self.order(epoch)[0][i * self.batch_size : (i + 1) * self.batch_size], None

    def _arrays(self, starts, labels):
        xb, yb = gather_patches(self.x, starts, self.context), gather_patches(self.y, starts, self.context)
        yb = yb if self.target_fn is None else self.target_fn(xb, yb)
        return [np.asarray(xb, np.float32), np.asarray(yb, np.float32)]

    def _structure(self, xb, yb, zeros):
        return xb, yb


class LabelledPatchSequence(_Batches):
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

    def _n_full(self) -> int:
        return int(np.ceil(self.pools[0].size / self.n0))

    def batch_size_of(self, i: int) -> int:
        return int(min(self.n0, self.pools[0].size - i * self.n0) + self.n1)

    def _starts(self, epoch: int, i: int):
        speech, noise = self.order(epoch)
        speech = speech[i * self.n0 : (i + 1) * self.n0]
        noise = noise[(i * self.n1 + np.arange(self.n1)) % noise.size]
        labels = np.concatenate([np.zeros(speech.size, np.float32), np.ones(noise.size, np.float32)])
        return np.concatenate([speech, noise]), labels

    def _arrays(self, starts, labels):
        return [
            np.asarray(gather_patches(self.x, starts, self.context), np.float32),
            np.asarray(labels, np.float32)[:, None],
        ]

    def _structure(self, xb, yb, zeros):
        targets = {"recon": xb}
        if self.penalty_output:
            targets["penalty"] = zeros(xb)
        return (xb, yb), targets


def even_subset(windows: np.ndarray, n: int | None) -> np.ndarray:
    """At most ``n`` of ``windows``, evenly spaced (so every utterance of a split is represented)."""
    if n is None or windows.size <= n:
        return np.asarray(windows)
    return np.asarray(windows)[np.linspace(0, windows.size - 1, n).round().astype(np.int64)]


def _time_budget(keras, minutes: float):
    """A callback that stops training after the batch that crosses ``minutes`` of wall-clock time.

    Keras still runs the epoch's validation, so ``EarlyStopping`` and
    ``ModelCheckpoint`` see the partial epoch and the best weights are kept.
    """

    class TimeBudget(keras.callbacks.Callback):
        reached = False
        spent = 0.0  # seconds used before a kill (set by the resumed run's BackupAndRestore)

        def on_train_begin(self, logs=None):
            self.t0 = time.perf_counter()

        def elapsed(self) -> float:
            return self.spent + time.perf_counter() - self.t0

        def on_train_batch_end(self, batch, logs=None):
            if self.elapsed() >= 60.0 * minutes:
                self.reached = self.model.stop_training = True

    return TimeBudget()


@dataclass(frozen=True)
class ClusterTask:
    """This process's place in a ``MultiWorkerMirroredStrategy`` cluster, from ``TF_CONFIG``.

    Attributes
    ----------
    type : str
        ``"worker"`` or ``"chief"``.
    index : int
    n_workers : int
        Tasks that train (chief and workers).
    is_chief : bool
        The ``chief`` task, or worker 0 of a cluster without one: the only task
        that writes ``models/<run>/`` and the logs.
    """

    type: str
    index: int
    n_workers: int
    is_chief: bool


_TF_CONFIG_EXAMPLE = (
    """TF_CONFIG='{"cluster": {"worker": ["localhost:12345", "localhost:12346"]}, """
    """"task": {"type": "worker", "index": 0}}' (index 1 on the second worker)"""
)


def parse_tf_config(text: str | None) -> ClusterTask:
    """Check the ``TF_CONFIG`` environment variable of a multi-worker run and say which task this is.

    Parameters
    ----------
    text : str or None
        The JSON value of ``TF_CONFIG``: ``{"cluster": {"worker": ["host:port", ...],
        "chief": ["host:port"] (optional)}, "task": {"type": "worker", "index": i}}``.

    Returns
    -------
    ClusterTask

    Raises
    ------
    ConfigError
        If ``text`` is missing or empty, not JSON, has no ``cluster`` with a list
        of ``host:port`` workers, or its ``task`` is not a chief or worker with
        an index inside its list.
    """
    need = (
        f"training.distribute=multiworker reads the cluster from the TF_CONFIG environment variable, e.g. "
        f"{_TF_CONFIG_EXAMPLE}"
    )
    if not text or not text.strip():
        raise ConfigError(f"TF_CONFIG is not set; {need}")
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({exc.msg} at character {exc.pos}); {need}") from None
    cluster = conf.get("cluster") if isinstance(conf, dict) else None
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise ConfigError(f'TF_CONFIG has no "cluster" with a "worker" list; {need}')
    for kind, addrs in cluster.items():
        if kind not in ("chief", "worker"):
            raise ConfigError(
                f"TF_CONFIG cluster task type {kind!r} is not supported (only chief and worker train); {need}"
            )
        if (
            not isinstance(addrs, list)
            or not addrs
            or not all(isinstance(a, str) and a.rpartition(":")[0] and a.rpartition(":")[2].isdigit() for a in addrs)
        ):
            raise ConfigError(
                f'TF_CONFIG cluster.{kind} must be a non-empty list of "host:port" strings, got {addrs!r}; {need}'
            )
    task = conf.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ConfigError(
            f"TF_CONFIG task {task!r} must name a type of the cluster ({', '.join(cluster)}) and an index; {need}"
        )
    index = task.get("index", 0)
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[task["type"]]):
        raise ConfigError(
            f"TF_CONFIG task index {index!r} is outside cluster.{task['type']} "
            f"(0..{len(cluster[task['type']]) - 1}); {need}"
        )
    n = sum(len(a) for a in cluster.values())
    chief = task["type"] == "chief" or ("chief" not in cluster and index == 0)
    return ClusterTask(task["type"], index, n, chief)


def logical_cpu_devices(n: int) -> None:
    """Split the first physical CPU into ``n`` logical TensorFlow devices (``training.cpu_devices``).

    Lets ``training.distribute=mirrored`` run on a CPU-only machine (one replica
    per logical device; the devices share the cores). Must run before
    TensorFlow initialises its devices, i.e. early in a fresh process.

    Raises
    ------
    ConfigError
        If TensorFlow was already initialised with another number of CPU devices.
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != n:
            raise ConfigError(
                f"training.cpu_devices={n}: TensorFlow already started in this process with {have} "
                "CPU device(s); set it for a fresh process (e.g. 03_train_autoencoder.py "
                f"--set training.cpu_devices={n})"
            ) from None


def distribution(t) -> tuple[object | None, ClusterTask | None]:
    """The ``tf.distribute`` strategy of ``training.distribute`` (None for ``none``) and the cluster task.

    ``mirrored``: ``MirroredStrategy`` over this machine's GPUs, or over its
    logical CPU devices when it has none (see ``training.cpu_devices``).
    ``multiworker``: ``MultiWorkerMirroredStrategy`` configured by ``TF_CONFIG``
    (:func:`parse_tf_config`).

    Raises
    ------
    ConfigError
        If the Keras backend is not TensorFlow, ``TF_CONFIG`` is missing or
        malformed, or ``training.max_minutes`` is set with ``multiworker``
        (each worker's clock would stop it at another batch).
    """
    if t.distribute == "none" and not t.cpu_devices:
        return None, None
    task = None
    if t.distribute == "multiworker":
        task = parse_tf_config(os.environ.get("TF_CONFIG"))
        if t.max_minutes:
            raise ConfigError(
                "training.max_minutes cannot be used with training.distribute=multiworker (each "
                "worker's clock would stop it at another batch); use training.epochs or "
                "training.steps_per_epoch"
            )
    backend = _keras().backend.backend()
    if backend != "tensorflow":
        key = (
            f"training.distribute={t.distribute}" if t.distribute != "none" else f"training.cpu_devices={t.cpu_devices}"
        )
        raise ConfigError(
            f"{key} needs the TensorFlow Keras backend, but KERAS_BACKEND is {backend}; run with "
            "KERAS_BACKEND=tensorflow, or train on one device (training.distribute=none, "
            "training.cpu_devices=null)"
        )
    if t.cpu_devices:
        logical_cpu_devices(t.cpu_devices)
    if t.distribute == "none":
        return None, None
    import tensorflow as tf

    if t.distribute == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices]), None
    return _multi_worker_strategy(tf), task


def _multi_worker_strategy(tf):
    """A ``MultiWorkerMirroredStrategy`` whose ``reduce`` accepts what Keras 3's ``fit`` passes it.

    Keras 3 (checked with 3.15) calls ``strategy.reduce`` on the whole first
    batch, a nest, to build the model, and on every scalar metric with
    ``axis=0``; both fail under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585,
    tensorflow/tensorflow#72388: "Attempt to convert a value (PerReplica ...)",
    "Invalid reduction dimension 0 for input with 0 dimensions"). This
    subclass reduces a nest leaf by leaf and a scalar over the replicas
    (``axis=None``), which is what Keras means: the mean over every replica of
    every worker, so all workers see the same losses and stop together.
    """
    base = tf.distribute.MultiWorkerMirroredStrategy

    class KerasMultiWorkerMirroredStrategy(base):
        def reduce(self, reduce_op, value, axis=None):
            def one(v):
                parts = getattr(v, "values", (v,))
                scalar = all(getattr(getattr(p, "shape", None), "rank", None) == 0 for p in parts)
                return base.reduce(self, reduce_op, v, axis=None if scalar else axis)

            return tf.nest.map_structure(one, value)

    return KerasMultiWorkerMirroredStrategy()


def _epoch_timer(keras):
    """A callback that records the wall-clock seconds of every epoch (training and validation) in ``seconds``."""

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(round(time.perf_counter() - self.t0, 3))

    return EpochTimer()


def _backup_and_restore(keras, backup_dir: Path, *, epochs: int, early, timer, budget):
    """``keras.callbacks.BackupAndRestore`` that also carries the run's own state over a kill.

    Every epoch end writes, each file atomically, ``epoch<N>.weights.h5`` (model
    and optimizer variables, ``Model.save_weights``), ``best<E>.npz`` (the
    ``EarlyStopping`` best weights, when they change) and last ``state.json``:
    the epoch count ``N``, the full history, the ``EarlyStopping`` counters,
    the epoch timings and the seconds spent (for ``training.max_minutes``).
    Files of older epochs are then removed, so a kill at any moment leaves one
    consistent backup. A new run reads it (:attr:`initial_epoch`) before the
    input pipeline is built, so that pipeline starts with epoch ``N``'s
    shuffle; ``on_train_begin`` restores the weights, optimizer and counters
    (``early`` must come before this callback in the list). The caller
    deletes ``backup_dir`` when the run is committed.
    """

    class BackupAndRestore(keras.callbacks.BackupAndRestore):
        def __init__(self):
            super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
            self.state = self._read_state()
            self.history = {k: list(v) for k, v in self.state["history"].items()} if self.state else {}

        @staticmethod
        def _read_state():
            try:
                state = json.loads((backup_dir / "state.json").read_text(encoding="utf-8"))
                n, best = int(state["epoch"]), state["best"]
                if (backup_dir / f"epoch{n}.weights.h5").is_file() and (best is None or (backup_dir / best).is_file()):
                    return state
            except (OSError, ValueError, KeyError, TypeError):
                pass
            if backup_dir.exists():  # nothing usable (killed before the first epoch ended): start afresh
                shutil.rmtree(backup_dir)
            return None

        @property
        def initial_epoch(self) -> int:
            """Epochs completed before the kill (0 for a fresh run)."""
            return int(self.state["epoch"]) if self.state else 0

        @property
        def finished(self) -> bool:
            """The killed run had stopped training (last epoch, early stopping or time budget) before it was saved."""
            return bool(self.state and self.state["finished"])

        def restore(self, model) -> None:
            """Weights, optimizer and the counters of ``early`` / ``timer`` / ``budget`` from the backup."""
            n = self.initial_epoch
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            model.load_weights(str(backup_dir / f"epoch{n}.weights.h5"))
            e = self.state["early"]
            early.wait, early.best, early.best_epoch, early.stopped_epoch = (
                e["wait"],
                e["best"],
                e["best_epoch"],
                e["stopped_epoch"],
            )
            if self.state["best"] is not None:
                with np.load(backup_dir / self.state["best"]) as z:
                    early.best_weights = [z[f"w{i}"] for i in range(len(z.files))]
            timer.seconds = list(self.state["epoch_seconds"])
            if budget is not None:
                budget.spent = float(self.state["train_seconds"])
                budget.reached = bool(self.state["budget_reached"])

        def on_train_begin(self, logs=None):
            if self.state:
                self.restore(self.model)

        def on_epoch_end(self, epoch, logs=None):
            n = epoch + 1
            for k, v in (logs or {}).items():
                self.history.setdefault(k, []).append(float(v))
            backup_dir.mkdir(parents=True, exist_ok=True)
            tmp = backup_dir / "tmp.weights.h5"
            self.model.save_weights(str(tmp), overwrite=True)
            os.replace(tmp, backup_dir / f"epoch{n}.weights.h5")
            best = None
            if early.best_weights is not None:
                best = f"best{early.best_epoch}.npz"
                if not (backup_dir / best).is_file():
                    with open(backup_dir / "tmp.npz", "wb") as fh:
                        np.savez(fh, **{f"w{i}": w for i, w in enumerate(early.best_weights)})
                    os.replace(backup_dir / "tmp.npz", backup_dir / best)
            spent = budget.elapsed() if budget is not None else float(sum(timer.seconds))
            write_json(
                backup_dir / "state.json",
                {
                    "epoch": n,
                    "history": self.history,
                    "best": best,
                    "early": {
                        "wait": early.wait,
                        "best": None if early.best is None else float(early.best),
                        "best_epoch": early.best_epoch,
                        "stopped_epoch": early.stopped_epoch,
                    },
                    "epoch_seconds": timer.seconds,
                    "train_seconds": spent,
                    "budget_reached": bool(budget is not None and budget.reached),
                    "resumed_at_epochs": self.resumed_at_epochs,
                    "finished": bool(self.model.stop_training) or n >= epochs,
                },
            )
            for p in backup_dir.iterdir():
                if p.name not in (f"epoch{n}.weights.h5", best, "state.json"):
                    p.unlink(missing_ok=True)

        @property
        def resumed_at_epochs(self) -> list[int]:
            """Every epoch count this run was resumed at (empty for an uninterrupted run)."""
            if not self.state:
                return []
            return list(self.state.get("resumed_at_epochs", [])) + [self.initial_epoch]

    return BackupAndRestore()


def _validation_clips(
    dataset: Path, info: dict, n: int, max_s: float = 4.0
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The first ``n`` validation utterances with a clean reference: ``(id, noisy, clean)`` float32 waveforms.

    Read from the stage-01 folder the dataset was built from (``mixtures/``, ``references/``), at most
    ``max_s`` seconds each; empty when that folder is gone.
    """
    from .segments import read_mono, referenced_pairs

    sr = int(info["features_params"]["sample_rate"])
    out = []
    for uid, mix, ref in referenced_pairs(dataset, info, "val"):
        if not (mix.is_file() and ref.is_file()):
            continue
        out.append((uid, read_mono(mix, int(max_s * sr)), read_mono(ref, int(max_s * sr))))
        if len(out) == n:
            break
    if not out:
        log.info(
            "no validation utterance with a clean reference under %s: TensorBoard gets no SNR/val, audio or "
            "spectrograms",
            info.get("source", ""),
        )
    return out


def _spectrogram_image(signals: list[np.ndarray], n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Log-magnitude spectrograms of ``signals`` stacked top to bottom, low frequencies down: uint8 RGB
    ``(n_signals * (n_fft // 2 + 1), n_frames, 3)`` (magma colour map, 80 dB range)."""
    import librosa
    from matplotlib import colormaps

    mags = [np.abs(librosa.stft(np.asarray(y, np.float32), n_fft=n_fft, hop_length=hop)) for y in signals]
    width = min(m.shape[1] for m in mags)
    db = librosa.amplitude_to_db(
        np.concatenate([m[::-1, :width] for m in mags]),
        ref=max(float(np.max(np.concatenate([m.ravel() for m in mags]))), 1e-10),
        top_db=80.0,
    )
    return (colormaps["magma"]((db + 80.0) / 80.0)[..., :3] * 255).astype(np.uint8)


def _tensorboard_scalars(
    keras, log_dir: Path, *, model, fit_model, batch, clips, dataset: Path, info: dict, cfg: Config
):
    """A callback writing libdse-style TensorBoard summaries to ``log_dir`` at the end of every epoch.

    Scalars: ``Loss/train``, ``Loss/val``, ``Ratio/val_to_train`` (from the epoch logs), ``SNR/val``
    (mean SI-SDR improvement in dB of the denoised over the noisy waveform on ``clips``, through the
    stage-04 inference path: :class:`speech_dae.reconstruct.Denoiser` on the in-memory model), and
    ``GradNorm/encoder`` / ``GradNorm/decoder`` (global gradient norm of the first / second half of the
    trainable variables on the fixed training ``batch``, ``tf.GradientTape``, inference mode so no
    random state is used). Media: ``Audio/<id>`` (denoised waveform) and ``Spectrogram/<id>`` (noisy,
    denoised, clean from top to bottom) for every clip. The step is the epoch index (as Keras's own
    ``TensorBoard`` callback). TensorFlow backend only: ``None`` (and a debug log) on the others.
    """
    if keras.backend.backend() != "tensorflow":
        log.debug(
            "TensorBoard scalars and media need the TensorFlow backend; %s writes the stock curves only",
            keras.backend.backend(),
        )
        return None
    import tensorflow as tf

    from .dataset import Normaliser
    from .metrics import si_sdr
    from .reconstruct import Denoiser

    params = info["features_params"]
    sr = int(params["sample_rate"])
    # the stage-04 inference path, on the model being trained (no run folder yet)
    run_info = {
        "sample_rate": sr,
        "features": params["features"],
        "context": info["context"],
        "feature": info.get("feature"),
        "target": cfg.training.target,
    }
    den = Denoiser.from_model(
        model,
        run_info,
        Normaliser.load(dataset / "norm.npz"),
        patch_hop=cfg.reconstruct.patch_hop,
        batch_size=cfg.reconstruct.batch_size,
        max_gain=cfg.reconstruct.max_gain,
    )

    class TensorBoardScalars(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.writer = tf.summary.create_file_writer(str(log_dir))

        def grad_norms(self) -> tuple[float, float]:
            x, y = batch
            variables = fit_model.trainable_variables
            with tf.GradientTape() as tape:
                loss = fit_model.compute_loss(x=x, y=y, y_pred=fit_model(x, training=False), training=False)
            grads = tape.gradient(loss, variables)
            half = max(1, len(variables) // 2)
            return tuple(
                float(tf.linalg.global_norm([g for g in part if g is not None]))
                for part in (grads[:half], grads[half:])
            )

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            scalars = {}
            if "loss" in logs:
                scalars["Loss/train"] = float(logs["loss"])
            if "val_loss" in logs:
                scalars["Loss/val"] = float(logs["val_loss"])
            if "loss" in logs and "val_loss" in logs and float(logs["loss"]) != 0:
                scalars["Ratio/val_to_train"] = float(logs["val_loss"]) / float(logs["loss"])
            scalars["GradNorm/encoder"], scalars["GradNorm/decoder"] = self.grad_norms()
            denoised = [den(noisy) for _, noisy, _ in clips]
            if clips:
                scalars["SNR/val"] = float(
                    np.mean([si_sdr(clean, d) - si_sdr(clean, noisy) for (_, noisy, clean), d in zip(clips, denoised)])
                )
            with self.writer.as_default(step=epoch):
                for tag, value in scalars.items():
                    tf.summary.scalar(tag, value)
                for (uid, noisy, clean), d in zip(clips, denoised):
                    peak = max(float(np.max(np.abs(d))), 1e-9)
                    tf.summary.audio(
                        f"Audio/{uid}",
                        (d / max(peak, 1.0))[None, :, None],
                        sr,
                        max_outputs=1,
                        description="denoised (validation)",
                    )
                    tf.summary.image(
                        f"Spectrogram/{uid}",
                        _spectrogram_image([noisy, d, clean])[None],
                        max_outputs=1,
                        description="noisy / denoised / clean (top to bottom)",
                    )
            self.writer.flush()

        def on_train_end(self, logs=None):
            self.writer.close()

    return TensorBoardScalars()


@dataclass
class TrainSummary:
    run_dir: Path
    info: dict
    up_to_date: bool = False
    discarded: bool = False  # a non-chief worker of a multi-worker run: the chief wrote run_dir

    def lines(self) -> list[str]:
        i = self.info
        if self.up_to_date:
            return [
                f"{self.run_dir} is up to date (same dataset, model and training parameters); pass --force to retrain"
            ]
        if self.discarded:
            return [
                f"{i['cluster_task']}: trained {i['model']} for {i['epochs_run']} epochs in "
                f"{i['train_seconds']:.0f} s; best epoch {i['best_epoch']} val_loss {i['best_val_loss']:.4f}; "
                f"the chief writes {self.run_dir} (this worker's copy was discarded)"
            ]
        resumed = "".join(f"; resumed from epoch {n}" for n in i.get("resumed_at_epochs") or [])
        return [
            f"trained {i['model']} ({i['n_params']:,} parameters) for {i['epochs_run']} epochs in "
            f"{i['train_seconds']:.0f} s ({i['stop_reason']}{resumed}); best epoch {i['best_epoch']} "
            f"val_loss {i['best_val_loss']:.4f}{_val_size(i)}; saved {self.run_dir}/model.keras"
        ]


def _val_size(info: dict) -> str:
    if "val_frames" not in info:
        return ""
    return f" on {info['val_frames']:,} validation frames ({info['val_minutes']:g} min)"


def _mask_target_fn(dataset: Path, info: dict):
    """Per-batch ideal ratio mask from normalised noisy / clean patches (see ``FeatureExtractor.mask_target``)."""
    from .config import FeatureConfig
    from .dataset import Normaliser
    from .features import FeatureExtractor

    params = info["features_params"]
    fx = FeatureExtractor(FeatureConfig(**params["features"]), params["sample_rate"])
    norm = Normaliser.load(dataset / "norm.npz")

    def target_fn(xb: np.ndarray, yb: np.ndarray) -> np.ndarray:
        return fx.mask_target(norm.denorm_x(xb), norm.denorm_y(yb))

    return target_fn


def _sequences(dataset: Path, info: dict, t, seed: int, *, semi: bool, penalty: bool):
    """Train and validation sequences of stage 03, and their patch counts.

    Supervised models get :func:`PatchSequence` (clean or mask targets);
    ``semi`` models get :func:`LabelledPatchSequence` (soft labels, the input
    as target). Validation uses at most ``training.val_max_patches`` patches,
    evenly spaced.
    """

    def mm(kind, split):
        return np.load(dataset / f"{kind}_{split}.npy", mmap_mode="r")

    def labels(split):
        path = dataset / f"labels_{split}.npy"
        return np.load(path) if path.is_file() else np.zeros(mm("windows", split).shape[0], np.float32)

    from .segments import mixture_sequences, uses_audio

    if uses_audio(t):
        if semi:
            raise ConfigError(
                "the semi-supervised models train on the stage-02 patches: set training.mixing=fixed "
                "and training.loss=mse"
            )
        return mixture_sequences(dataset, info, t, seed)
    context = int(info["context"])
    windows = {"train": np.asarray(mm("windows", "train")), "val": np.asarray(mm("windows", "val"))}
    lab = {"train": labels("train"), "val": labels("val")}
    keep = even_subset(np.arange(windows["val"].size), t.val_max_patches)
    windows["val"], lab["val"] = windows["val"][keep], lab["val"][keep]
    if windows["val"].size == 0:
        raise ArtifactError(f"{dataset} has no validation patches; rebuild it with mixing.val_fraction > 0")
    n_patches = {
        **{s: int(w.size) for s, w in windows.items()},
        **_covered(windows["val"], context, info["features_params"]),
    }
    if semi:
        seqs = [
            LabelledPatchSequence(
                mm("x", s),
                windows[s],
                lab[s],
                context=context,
                batch_size=t.batch_size,
                noise_only_fraction=t.noise_only_fraction,
                shuffle=s == "train",
                seed=seed,
                penalty_output=penalty,
                max_batches=t.steps_per_epoch if s == "train" else None,
            )
            for s in ("train", "val")
        ]
        return seqs[0], seqs[1], n_patches
    target_fn = _mask_target_fn(dataset, info) if t.target == "mask" else None
    speech = {s: windows[s][lab[s] < 0.5] for s in windows}  # noise-only patches have no use with clean targets
    train_seq = PatchSequence(
        mm("x", "train"),
        mm("y", "train"),
        speech["train"],
        context=context,
        batch_size=t.batch_size,
        shuffle=True,
        seed=seed,
        target_fn=target_fn,
        max_batches=t.steps_per_epoch,
    )
    val_seq = PatchSequence(
        mm("x", "val"),
        mm("y", "val"),
        speech["val"],
        context=context,
        batch_size=max(t.batch_size, 512),
        shuffle=False,
        seed=seed,
        target_fn=target_fn,
    )
    return (
        train_seq,
        val_seq,
        {**{s: int(w.size) for s, w in speech.items()}, **_covered(speech["val"], context, info["features_params"])},
    )


def _covered(starts: np.ndarray, context: int, params: dict) -> dict:
    """``val_frames`` (distinct frames under the patches starting at ``starts``; samples for waveform
    chunks) and ``val_minutes``."""
    s = np.sort(np.asarray(starts, np.int64))
    frames = int(np.minimum(np.diff(s), context).sum() + context) if s.size else 0
    step = 1 if params["feature"] == "waveform" else int(params["features"]["hop_length"])  # waveform: samples
    return {"val_frames": frames, "val_minutes": round(frames * step / int(params["sample_rate"]) / 60.0, 2)}


def _loss(t, info: dict):
    """What ``compile`` gets for ``training.loss``: ``"mse"`` / ``"mae"``, or a :class:`speech_dae.losses.SpectralLoss`
    on the dataset's STFT framing."""
    terms, weights = parse_loss(t.loss, t.loss_weights)
    if terms[0] in POINTWISE_LOSSES:
        return terms[0]
    from .losses import SpectralLoss

    f = info["features_params"]["features"]
    return SpectralLoss(
        terms=terms, weights=weights, n_fft=int(f["n_fft"]), hop_length=int(f["hop_length"]), window=f["window"]
    )


def _optimizer(keras, t):
    """Adam, or AdamW (decoupled weight decay, Loshchilov & Hutter 2019) when ``training.weight_decay > 0``."""
    if t.weight_decay:
        return keras.optimizers.AdamW(learning_rate=t.learning_rate, weight_decay=t.weight_decay)
    return keras.optimizers.Adam(learning_rate=t.learning_rate)


def _distribute(seq: _Batches, strategy, *, epochs: int = 1, repeat: bool = False, first_epoch: int = 0):
    """``seq.dataset(...)``, or one input pipeline per worker through ``strategy.distribute_datasets_from_function``."""
    if strategy is None:
        return seq.dataset(epochs, repeat=repeat, first_epoch=first_epoch)
    return strategy.distribute_datasets_from_function(
        lambda ctx: seq.dataset(epochs, input_context=ctx, repeat=repeat, first_epoch=first_epoch)
    )


#: ``training`` keys that say how to run, not what to train: left out of the run fingerprint.
_EXECUTION_KEYS = ("distribute", "cpu_devices")


def train(
    cfg: Config,
    *,
    dataset: str | Path,
    run: str,
    models_dir: str | Path = "models",
    logs_dir: str | Path = "model_logs",
    force: bool = False,
    progress: bool = True,
    extra_callbacks: list | None = None,
) -> TrainSummary:
    """Run stage 03: train ``cfg.model.name`` on ``dataset`` and write ``models/<run>/``.

    Parameters
    ----------
    cfg : Config
        ``model`` and ``training`` sections, ``seed``.
    dataset : str or Path
        A ``datasets/<name>/`` folder written by stage 02.
    run : str
        Run name: the folder under ``models_dir`` and the log names under ``logs_dir``.
    extra_callbacks : list of keras.callbacks.Callback, optional
        Appended to the callbacks of ``fit`` (e.g. the Optuna pruning callback of :mod:`speech_dae.tuning`).

    Notes
    -----
    Batches stream through ``tf.data`` from the memory-mapped dataset
    (:meth:`PatchSequence.dataset`), with every Keras backend. With
    ``training.distribute`` ``mirrored`` or ``multiworker`` the model is built
    and compiled in the strategy's scope and every batch is split over the
    replicas (see :func:`distribution`). In a multi-worker run only the chief
    writes ``models/<run>/`` and the logs (the other workers write to a
    temporary folder and delete it), and the run is always retrained (the
    workers cannot agree to skip it without talking to each other).

    Raises
    ------
    ArtifactError
        If the dataset is missing, incomplete or stale (names stage 02), or
        ``models/<run>`` holds a run of another configuration and ``force`` is false.
    ConfigError
        For an unknown model or hyper-parameter, a bad run name, or a
        distribution that cannot run (see :func:`distribution`).
    """
    if not run or "/" in run or run.startswith("."):
        raise ConfigError(f"--run {run!r} must be a plain folder name such as logmag_type2")
    dataset = Path(dataset)
    info = load_dataset(dataset)
    name = cfg.model.name
    hparams = cfg.model.params_for(name)
    t = cfg.training
    from .models import MODEL_FEATURES, MODEL_TARGETS, SEMI_SUPERVISED

    if name in MODEL_FEATURES and info["feature"] not in MODEL_FEATURES[name]:
        raise ConfigError(
            f"model {name} works on {' or '.join(MODEL_FEATURES[name])} features, but {dataset} holds "
            f"{info['feature']}; rebuild with 01_extract_features.py --feature {MODEL_FEATURES[name][0]}"
        )
    if name in MODEL_TARGETS and t.target not in MODEL_TARGETS[name]:
        raise ConfigError(f"model {name} supports --target {' or '.join(MODEL_TARGETS[name])}, not {t.target}")
    if name not in SEMI_SUPERVISED and not info.get("clean_targets", True):
        raise ConfigError(
            f"{dataset} has no clean references (stage 01 --noisy without --clean), so only the "
            f"semi-supervised models ({', '.join(SEMI_SUPERVISED)}) can train on it, not {name}"
        )
    # how many devices train does not change the run: left out of the fingerprint (runs stay up to date)
    fp = fingerprint(
        __version__,
        info["fingerprint"],
        name,
        hparams,
        {k: v for k, v in cfg.to_dict()["training"].items() if k not in _EXECUTION_KEYS},
        cfg.seed,
    )
    strategy, task = distribution(t)
    if task is not None and not task.is_chief:  # only the chief writes models/<run>/ and the logs
        scratch = Path(tempfile.mkdtemp(prefix=f"speech_dae_{task.type}{task.index}_"))
        try:
            summary = _train(
                cfg,
                dataset,
                info,
                run,
                scratch / "models",
                scratch / "logs",
                True,
                progress,
                fp,
                strategy,
                task,
                extra_callbacks=extra_callbacks,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return TrainSummary(Path(models_dir) / run, summary.info, discarded=True)
    # workers cannot agree to skip without talking to each other: a multi-worker run always retrains
    return _train(
        cfg,
        dataset,
        info,
        run,
        Path(models_dir),
        Path(logs_dir),
        force or task is not None,
        progress,
        fp,
        strategy,
        task,
        extra_callbacks=extra_callbacks,
    )


def _keep_csv_epochs(path: Path, n: int) -> None:
    """Keep the header and the rows of epochs ``0 .. n-1`` of a ``CSVLogger`` file (a resumed run appends)."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    keep = lines[:1] + [
        ln
        for ln in lines[1:]
        if ln.split(",", 1)[0].strip().isdigit() and int(ln.split(",", 1)[0]) < n and ln.endswith("\n")
    ]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("".join(keep), encoding="utf-8")


def _train(
    cfg: Config,
    dataset: Path,
    info: dict,
    run: str,
    models_dir: Path,
    logs_dir: Path,
    force: bool,
    progress: bool,
    fp: str,
    strategy,
    task: ClusterTask | None,
    extra_callbacks=None,
) -> TrainSummary:
    """The body of :func:`train` once the inputs are checked: one process's part of a run."""
    from .models import SEMI_SUPERVISED, build_model

    name, t = cfg.model.name, cfg.training
    hparams = cfg.model.params_for(name)
    run_dir = models_dir / run
    staged = StagedOutput(run_dir, fp, marker="run.json", force=force)
    if staged.is_current():
        return TrainSummary(run_dir, read_json(run_dir / "run.json"), up_to_date=True)
    keras = _keras()
    keras.utils.set_random_seed(cfg.seed)
    context, n_bins = int(info["context"]), int(info["n_bins"])

    def scope():
        return strategy.scope() if strategy is not None else contextlib.nullcontext()

    with scope():
        model = build_model(name, (context, n_bins), target=t.target, **hparams)
    work = staged.begin()  # a killed run's .partial folder (same fingerprint) is kept, with its backup
    early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=t.patience, restore_best_weights=True)
    budget = _time_budget(keras, t.max_minutes) if t.max_minutes else None
    timer = _epoch_timer(keras)
    # a multi-worker run always retrains (see train): no backup
    backup = (
        None
        if task is not None
        else _backup_and_restore(keras, work / "backup", epochs=t.epochs, early=early, timer=timer, budget=budget)
    )
    first = backup.initial_epoch if backup is not None else 0
    logs_dir = Path(logs_dir)
    logs_dir.mkdir(parents=True, exist_ok=True)
    tb_dir, csv_path = logs_dir / run, logs_dir / f"{run}.csv"
    if first:
        log.info(
            "resumed from epoch %d: %s holds the backup of %d completed epoch(s) of %d",
            first,
            work / "backup",
            first,
            t.epochs,
        )
        _keep_csv_epochs(csv_path, first)
    elif tb_dir.exists():
        shutil.rmtree(tb_dir)

    semi = name in SEMI_SUPERVISED
    train_seq, val_seq, n_patches = _sequences(dataset, info, t, cfg.seed, semi=semi, penalty=name == "partitioned")
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    steps = {"train": train_seq.steps(replicas), "val": val_seq.steps(replicas)}
    train_ds = _distribute(train_seq, strategy, epochs=t.epochs, first_epoch=first)
    val_ds = _distribute(val_seq, strategy, repeat=True)
    with scope():
        if semi:
            from .models.thesis import identity_loss, semi_supervised_trainer

            fit_model = semi_supervised_trainer(model, name, penalty=hparams.get("penalty", 0.75))
            losses = {"recon": t.loss, **({"penalty": identity_loss} if name == "partitioned" else {})}
        else:
            fit_model, losses = model, _loss(t, info)
            if not isinstance(losses, str):  # compile a twin sharing the layers: model.keras keeps no reference
                fit_model = keras.Model(model.input, model.output, name=f"{model.name}_trainer")  # to the loss
        fit_model.compile(optimizer=_optimizer(keras, t), loss=losses)
    # order matters: the backup saves the state early / timer / budget hold at the end of each epoch, and is
    # written before the CSV row (a logged epoch is a saved one)
    callbacks = [
        early,
        timer,
        *([budget] if budget else []),
        *([backup] if backup else []),
        keras.callbacks.CSVLogger(str(csv_path), append=bool(first)),
        keras.callbacks.TensorBoard(log_dir=str(tb_dir), write_graph=False),
    ]
    if t.tensorboard_media:
        scalars = _tensorboard_scalars(
            keras,
            tb_dir,
            model=model,
            fit_model=fit_model,
            batch=train_seq[0],
            clips=_validation_clips(dataset, info, t.tensorboard_utterances),
            dataset=dataset,
            info=info,
            cfg=cfg,
        )
        callbacks += [scalars] if scalars is not None else []
    callbacks += list(extra_callbacks or [])
    log.info(
        "training %s on %s: %d train / %d val patches of %dx%d (%s mixing; validation %d frames, %.1f min), "
        "up to %d epochs of %d steps on %d replica(s) (Keras backend %s)",
        name,
        dataset,
        n_patches["train"],
        n_patches["val"],
        context,
        n_bins,
        t.mixing,
        n_patches["val_frames"],
        n_patches["val_minutes"],
        t.epochs,
        steps["train"],
        replicas,
        keras.backend.backend(),
    )
    t0 = time.perf_counter()
    spent = float(backup.state["train_seconds"]) if first else 0.0
    if backup is not None and backup.finished:  # killed after training ended, before the run was committed
        backup.restore(fit_model)
        if early.best_weights is not None:
            fit_model.set_weights(early.best_weights)
        h = backup.history
    else:
        history = fit_model.fit(
            train_ds,
            steps_per_epoch=steps["train"],
            validation_data=val_ds,
            validation_steps=steps["val"],
            epochs=t.epochs,
            initial_epoch=first,
            callbacks=callbacks,
            shuffle=False,
            verbose=1 if progress else 2,
        )
        h = (
            backup.history
            if backup is not None
            else {k: [float(v) for v in vals] for k, vals in history.history.items()}
        )
    seconds = spent + time.perf_counter() - t0
    model.save(work / "model.keras")  # the inference model, with the best epoch's weights (EarlyStopping restores)
    resumed = backup.resumed_at_epochs if backup is not None else []
    epochs_run = len(h["loss"])
    best = int(np.argmin(h["val_loss"]))
    if early.stopped_epoch:
        stop = f"early stopping: val_loss did not improve for {t.patience} epochs"
    elif budget is not None and budget.reached:
        stop = f"time budget of {t.max_minutes:g} min reached"
    else:
        stop = f"reached {t.epochs} epochs"
    shutil.copy2(dataset / "norm.npz", work / "norm.npz")
    from .plots import plot_training_curves

    plot_training_curves(h, work / "training.png", title=f"{run}: {name} on {info['feature']}")
    fparams = info["features_params"]
    run_info = {
        "stage": "03_train_autoencoder",
        "fingerprint": fp,
        "run": run,
        "model": name,
        "hparams": hparams,
        "input_shape": [context, n_bins],
        "target": t.target,
        "loss": t.loss,
        "loss_weights": list(parse_loss(t.loss, t.loss_weights)[1]),
        "optimizer": {
            "name": "adamw" if t.weight_decay else "adam",
            "learning_rate": t.learning_rate,
            **({"weight_decay": t.weight_decay} if t.weight_decay else {}),
        },
        "mixing": t.mixing,
        "training": cfg.to_dict()["training"],
        "epochs_run": epochs_run,
        "best_epoch": best + 1,
        "best_val_loss": h["val_loss"][best],
        "stop_reason": stop,
        "train_seconds": round(seconds, 1),
        "resumed_at_epochs": resumed,
        "epoch_seconds": timer.seconds,
        "train_patches": n_patches["train"],
        "val_patches": n_patches["val"],
        "val_frames": n_patches["val_frames"],
        "val_minutes": n_patches["val_minutes"],
        "semi_supervised": semi,
        "keras_backend": keras.backend.backend(),
        "replicas": replicas,
        **({"cluster_task": f"{task.type} {task.index} of {task.n_workers}"} if task is not None else {}),
        "n_params": int(model.count_params()),
        "history": h,
        "dataset": str(dataset),
        "dataset_fingerprint": info["fingerprint"],
        "context": context,
        "n_bins": n_bins,
        "feature": info["feature"],
        "sample_rate": fparams["sample_rate"],
        "features": fparams["features"],
        "features_dir": info["source"],
        "seed": cfg.seed,
        "versions": {**package_versions(), "speech_dae": __version__},
    }
    write_json(work / "run.json", run_info)
    shutil.rmtree(work / "backup", ignore_errors=True)  # kept until now: a kill before the commit resumes from it
    staged.commit()
    return TrainSummary(run_dir, run_info)
