"""Stage 03: train a registry model on a stage-02 dataset -> ``models/<run>/``.

This module checks what the user asked for (the dataset is complete and
current, the model fits its features, target and labels, the run name is a
folder name), fingerprints the run and picks the distribution; the training
itself is :func:`speech_dae.training.trainer.fit_run`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..artifacts import fingerprint
from ..config import EXECUTION_KEYS, Config
from ..errors import ConfigError
from ..folders import load_dataset
from ..training.distribute import distribution
from ..training.trainer import TrainSummary, fit_run
from ..version import __version__

__all__ = ["train", "TrainSummary"]


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
        Appended to the callbacks of ``fit`` (e.g. the Optuna pruning callback of :mod:`speech_dae.stages.tune`).

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
    from ..models import MODEL_FEATURES, MODEL_TARGETS, SEMI_SUPERVISED  # imports Keras

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
        {k: v for k, v in cfg.to_dict()["training"].items() if k not in EXECUTION_KEYS},
        cfg.seed,
    )
    strategy, task = distribution(t)
    if task is not None and not task.is_chief:  # only the chief writes models/<run>/ and the logs
        scratch = Path(tempfile.mkdtemp(prefix=f"speech_dae_{task.type}{task.index}_"))
        try:
            summary = fit_run(
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
    return fit_run(
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
