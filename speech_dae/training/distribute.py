"""Distribution of stage-03 training: ``tf.distribute`` strategies from ``training.distribute``.

``mirrored`` spreads each batch over this machine's GPUs or logical CPU
devices; ``multiworker`` over processes configured by ``TF_CONFIG``
(:func:`parse_tf_config`), where only the chief writes the run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["ClusterTask", "parse_tf_config", "logical_cpu_devices", "distribution", "multi_worker_strategy"]


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
    import keras

    backend = keras.backend.backend()
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
    return multi_worker_strategy(tf), task


def multi_worker_strategy(tf):
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
