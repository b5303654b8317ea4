"""Hyper-parameter tuning with Optuna (``06_tune.py``).

A study searches the hyper-parameters of one registry model: the model's own
space in :data:`SEARCH_SPACES` (layer widths / filters, dropout where the model
has it, ...) plus :data:`TRAINING_SPACE` (learning rate, batch size). Every
trial trains with the ordinary stage-03 code (:func:`speech_dae.stages.train.train`)
on the dataset's train / validation splits (the test split is never read),
into a temporary folder that is deleted afterwards, so nothing is left in
``models/``. Each epoch's ``val_loss`` is reported to Optuna, whose
``MedianPruner`` stops trials that lag the median of the earlier trials at the
same epoch; the objective is the trial's best ``val_loss`` (minimised).

The study lives in an Optuna storage (``sqlite:///tuning.db``) and resumes
from it: ``--trials N`` is the number of finished (complete or pruned) trials
the study should hold in total, so a rerun after an interruption runs only the
missing ones and never repeats a finished trial. A trial that was interrupted
(Ctrl-C, or a process that was killed and left it ``RUNNING``) is marked
failed, does not count, and is run again first with the same parameters.
The best parameters are written as a partial config (merged over
``configs/default.yaml`` like any ``--config`` file).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ..artifacts import atomic_path, fingerprint
from ..config import EXECUTION_KEYS, Config, load_config
from ..errors import ConfigError
from ..folders import load_dataset

__all__ = [
    "SEARCH_SPACES",
    "TRAINING_SPACE",
    "suggest",
    "decode_params",
    "pruning_callback",
    "tune",
    "TuneSummary",
    "write_tuned_config",
]

log = logging.getLogger(__name__)

# A spec is ("float", low, high, log), ("int", low, high, log) or ("choice", [values]); a choice of lists
# (layer widths) is shown to Optuna as strings such as "512-128" and written back as lists.
#: Search space of every registry model: ``{model: {hyper-parameter of model.hparams.<model>: spec}}``.
SEARCH_SPACES: dict[str, dict[str, tuple]] = {
    "type1": {
        "filters": ("choice", [[64, 16], [128, 32], [256, 64], [128, 64, 32]]),
        "kernel_size": ("choice", [3, 5, 7]),
        "dropout": ("float", 0.0, 0.3, False),
    },
    "type2": {
        "units": ("choice", [[256, 64], [512, 128], [1024, 256], [1024, 256, 64], [2048, 512]]),
        "dropout": ("float", 0.0, 0.3, False),
    },
    "dense_ln": {
        "units": ("choice", [[512, 128, 64, 128, 512], [1024, 256, 128, 256, 1024], [2048, 500, 180, 500, 2048]]),
        "dropout": ("float", 0.0, 0.3, False),
    },
    "conv1d_time": {
        "filters": ("choice", [[16, 8], [32, 16], [64, 32], [32, 16, 8]]),
        "kernel_size": ("choice", [5, 9, 15]),
    },
    "cnn2d": {"filters": ("choice", [8, 16, 32]), "depth": ("choice", [2, 3]), "kernel_size": ("choice", [3, 5])},
    "unet": {
        "base_filters": ("choice", [8, 16, 32]),
        "depth": ("choice", [2, 3, 4]),
        "dropout": ("float", 0.0, 0.2, False),
    },
    "shallow": {"units": ("choice", [500, 1000, 2000, 4000])},
    "partitioned": {
        "units": ("choice", [500, 1000, 2000]),
        "background": ("float", 0.1, 0.5, False),
        "penalty": ("float", 0.1, 3.0, True),
    },
    "curro": {"units": ("choice", [[1024, 1024], [2048, 2048]]), "decoder_units": ("choice", [[512], [1024]])},
    "tcn": {
        "units": ("choice", [[256], [512], [1024, 512]]),
        "channels": ("choice", [64, 128, 256]),
        "dilations": ("choice", [[1, 2, 4], [1, 2, 4, 8], [1, 2, 4, 8, 16]]),
        "dropout": ("float", 0.0, 0.3, False),
        "lookahead": ("choice", [0, 1, 2]),
    },
    "erbnet": {
        "channels": ("choice", [8, 16, 24, 32]),
        "dilations": ("choice", [[1, 2, 4, 8], [1, 2, 4, 8, 1, 2, 4, 8]]),
        "lookahead": ("choice", [0, 1, 2]),
    },
}
#: Searched for every model: keys of the ``training`` section.
TRAINING_SPACE: dict[str, tuple] = {
    "learning_rate": ("float", 1e-4, 3e-3, True),
    "batch_size": ("choice", [64, 128, 256, 512]),
}
#: ``MedianPruner`` settings: no pruning during the first 2 trials, nor at a trial's first epoch.
PRUNER = {"n_startup_trials": 2, "n_warmup_steps": 1}


def _optuna():
    import optuna

    return optuna


def _label(value: Any) -> Any:
    return "-".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value


def _space(model: str) -> dict[str, tuple[str, tuple]]:
    """``{optuna parameter name: (dotted config key, spec)}`` of ``model`` (model space, then training space)."""
    if model not in SEARCH_SPACES:  # the registry's names (tests check the two agree)
        raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(sorted(SEARCH_SPACES))}")
    return {
        **{k: (f"model.hparams.{model}.{k}", s) for k, s in SEARCH_SPACES[model].items()},
        **{k: (f"training.{k}", s) for k, s in TRAINING_SPACE.items()},
    }


def suggest(trial, model: str) -> dict[str, Any]:
    """Draw one point of ``model``'s search space from an Optuna trial.

    Returns
    -------
    dict
        ``{dotted config key: value}``, e.g. ``{"model.hparams.type2.units": [512, 128],
        "training.learning_rate": 0.0012, ...}``, ready for :meth:`Config.replace`.

    Raises
    ------
    ConfigError
        If ``model`` is not a registry model.
    """
    out = {}
    for name, (key, spec) in _space(model).items():
        kind = spec[0]
        if kind == "float":
            out[key] = trial.suggest_float(name, spec[1], spec[2], log=spec[3])
        elif kind == "int":
            out[key] = trial.suggest_int(name, spec[1], spec[2], log=spec[3])
        else:
            labels = {_label(v): v for v in spec[1]}
            out[key] = labels[trial.suggest_categorical(name, list(labels))]
    return out


def decode_params(model: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna parameters of a finished trial (``trial.params``) -> ``{dotted config key: value}``."""
    out = {}
    for name, (key, spec) in _space(model).items():
        if name in params:
            out[key] = {_label(v): v for v in spec[1]}[params[name]] if spec[0] == "choice" else params[name]
    return out


def pruning_callback(trial, monitor: str = "val_loss"):
    """A Keras callback that reports ``monitor`` to ``trial`` after every epoch and prunes it.

    Epoch ``e`` (0-based) is reported as step ``e``; when ``trial.should_prune()``
    the callback raises ``optuna.TrialPruned``, which ends ``fit`` and the trial
    (Optuna records it as pruned). A NaN loss is reported and prunes at once.
    """
    import keras

    optuna = _optuna()

    class OptunaPruning(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get(monitor)
            if value is None:
                return
            value = float(value)
            trial.report(value, step=epoch)
            if value != value or trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} ({monitor} {value:.4f})")

    return OptunaPruning()


@dataclass
class TuneSummary:
    study: str
    storage: str
    counts: dict
    new_trials: int
    best: Any = None  # optuna FrozenTrial or None
    best_values: dict = field(default_factory=dict)
    out: Path | None = None
    next_command: str = ""

    def lines(self) -> list[str]:
        c = self.counts
        lines = [
            f"study {self.study} in {self.storage}: {c['complete'] + c['pruned']} finished trials "
            f"({c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed or interrupted); "
            f"{self.new_trials} run now"
        ]
        if self.best is None:
            return lines + ["no trial has completed yet; re-run the same command to continue"]
        a = self.best.user_attrs
        vals = ", ".join(f"{k.rsplit('.', 1)[1]}={_fmt(v)}" for k, v in self.best_values.items())
        lines.append(
            f"best trial #{self.best.number}: val_loss {self.best.value:.4f} (epoch {a.get('best_epoch')} of "
            f"{a.get('epochs_run')}, {a.get('train_seconds', 0):.0f} s, {a.get('n_params', 0):,} parameters): "
            f"{vals}"
        )
        return lines + [f"wrote {self.out}", f"next: {self.next_command}"]


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _nested(values: Mapping[str, Any]) -> dict:
    out: dict = {}
    for key, value in values.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _deep_update(base: dict, other: Mapping) -> dict:
    for k, v in other.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


class _Dumper(yaml.SafeDumper):
    """Block-style sections, flow-style lists (``units: [512, 128]``), as in ``configs/default.yaml``."""


_Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def write_tuned_config(
    path: str | Path, model: str, values: Mapping[str, Any], *, base: str | Path | None = None, header: str = ""
) -> Path:
    """Write the tuned ``values`` as a config file for ``--config``, atomically.

    Parameters
    ----------
    path : str or Path
        The YAML file to write.
    model : str
        Written as ``model.name``.
    values : mapping
        ``{dotted config key: value}`` (see :func:`suggest`).
    base : str or Path, optional
        A ``--config`` file the study ran with: its content is kept and the
        tuned values are merged over it.
    header : str
        Comment lines written at the top.

    Raises
    ------
    ConfigError
        If the result is not a valid config (checked with :func:`load_config` before it replaces ``path``).
    """
    data = {}
    if base is not None:
        data = yaml.safe_load(Path(base).read_text(encoding="utf-8")) or {}
    _deep_update(data, _nested({"model.name": model, **values}))
    text = "".join(f"# {line}\n" for line in header.splitlines()) + yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False
    )
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
        load_config(tmp)
    return Path(path)


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return True  # unknown: leave the trial alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _recover(study, storage) -> None:
    """Fail the trials a killed process left ``RUNNING`` (same host, process gone) and re-enqueue interrupted trials.

    The temporary training folder of such a trial is deleted.

    Every interrupted trial (user attribute ``interrupted``) that has no retry
    yet is enqueued once with the same parameters (user attribute ``retry_of``).
    A trial that failed with an error is not retried.
    """
    optuna = _optuna()
    state = optuna.trial.TrialState
    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        if t.user_attrs.get("host") == host and not _alive(t.user_attrs.get("pid")):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
            storage.set_trial_user_attr(trial_id, "interrupted", True)
            storage.set_trial_state_values(trial_id, state.FAIL)
            workdir = Path(t.user_attrs.get("workdir", ""))
            if workdir.name.startswith("speech_dae_tune_") and workdir.is_dir():  # its temporary trial folder
                shutil.rmtree(workdir, ignore_errors=True)
            log.info(
                "trial %d was left running by process %s, which is gone: marked failed",
                t.number,
                t.user_attrs.get("pid"),
            )
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if t.state == state.FAIL and t.user_attrs.get("interrupted") and t.params and t.number not in retried:
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
            log.info("trial %d was interrupted: it runs again first with the same parameters", t.number)


def _settings(cfg: Config, model: str, info: dict) -> dict:
    """What every trial of a study must share: model, dataset and the untuned settings."""
    tuned = set(_space(model))
    hp = {k: v for k, v in cfg.model.params_for(model).items() if k not in tuned}
    training = {k: v for k, v in cfg.to_dict()["training"].items() if k not in tuned and k not in EXECUTION_KEYS}
    return {
        "model": model,
        "dataset_fingerprint": info["fingerprint"],
        "settings": fingerprint(hp, training, cfg.seed),
        "training": training,
    }


def tune(
    cfg: Config,
    *,
    dataset: str | Path,
    model: str,
    trials: int,
    storage: str,
    study_name: str | None = None,
    out: str | Path | None = None,
    timeout_min: float | None = None,
    base_config: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> TuneSummary:
    """Run (or resume) an Optuna study over ``model``'s hyper-parameters and write the best as a config file.

    Parameters
    ----------
    cfg : Config
        Base configuration: the untuned hyper-parameters and the training
        budgets of every trial (``training.epochs``, ``steps_per_epoch``,
        ``max_minutes``, ``patience``, ...), and the seed (the same for every trial).
    dataset : str or Path
        A stage-02 folder; only its train and val splits are used.
    model : str
        Registry model name.
    trials : int
        Finished (complete + pruned) trials the study should hold in total.
    storage : str
        Optuna RDB storage URL, e.g. ``sqlite:///tuning.db``.
    study_name : str, optional
        Default ``<dataset name>_<model>`` (``_mask`` for ``training.target: mask``).
    out : str or Path, optional
        Config file to write; default ``configs/tuned_<model>.yaml``.
    timeout_min : float, optional
        Start no new trial after this many minutes (Optuna ``timeout``).
    base_config : str or Path, optional
        The ``--config`` file ``cfg`` was loaded from; its content is kept in ``out``.
    force : bool
        Delete an existing study of that name from ``storage`` and start afresh.
    progress : bool
        Keras progress bars.

    Returns
    -------
    TuneSummary

    Raises
    ------
    ConfigError
        For an unknown model, a model that does not fit the dataset's features,
        ``trials < 1``, a storage URL Optuna cannot open, or an existing study
        of that name that was run with another model, dataset or untuned settings.
    ArtifactError
        If the dataset is missing, incomplete or stale.
    """
    _space(model)
    if trials < 1:
        raise ConfigError(f"--trials {trials} must be >= 1")
    if timeout_min is not None and timeout_min <= 0:
        raise ConfigError(f"--timeout {timeout_min} must be > 0 minutes")
    dataset = Path(dataset)
    info = load_dataset(dataset)
    from ..models import MODEL_FEATURES

    if info["feature"] not in MODEL_FEATURES[model]:
        raise ConfigError(
            f"model {model} works on {' or '.join(MODEL_FEATURES[model])} features, but {dataset} "
            f"holds {info['feature']}"
        )
    cfg = cfg.replace(**{"model.name": model})
    optuna = _optuna()
    state = optuna.trial.TrialState
    study_name = study_name or f"{dataset.name}_{model}{'_mask' if cfg.training.target == 'mask' else ''}"
    try:
        rdb = optuna.storages.RDBStorage(storage)
    except Exception as exc:  # sqlalchemy / optuna raise many kinds for a bad URL
        raise ConfigError(
            f"--storage {storage!r} cannot be opened by Optuna ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); use e.g. sqlite:///tuning.db"
        ) from None
    if force and study_name in {s.study_name for s in optuna.get_all_study_summaries(rdb)}:
        optuna.delete_study(study_name=study_name, storage=rdb)
        log.info("deleted the existing study %s (--force)", study_name)
    study = optuna.create_study(
        storage=rdb,
        study_name=study_name,
        direction="minimize",
        load_if_exists=True,
        pruner=optuna.pruners.MedianPruner(**PRUNER),
    )
    settings = _settings(cfg, model, info)
    known = study.user_attrs.get("speech_dae")
    if known is None:
        study.set_user_attr("speech_dae", {**settings, "dataset": str(dataset)})
    elif any(known.get(k) != settings[k] for k in ("model", "dataset_fingerprint", "settings")):
        what = {
            "model": "model",
            "dataset_fingerprint": "dataset",
            "settings": "trial settings (training budgets, untuned hyper-parameters, seed)",
        }
        diff = [w for k, w in what.items() if known.get(k) != settings[k]]
        raise ConfigError(
            f"study {study_name!r} in {storage} was run with a different {' and '.join(diff)} (model "
            f"{known.get('model')}, dataset {known.get('dataset')}, training {known.get('training')}); "
            "resume it with the same options, pass --study NEW_NAME, or --force to start it afresh"
        )
    _recover(study, rdb)
    finished = (state.COMPLETE, state.PRUNED)
    # a fresh sampler seed per resume, so the random start-up trials do not repeat the first run's draws
    study.sampler = optuna.samplers.TPESampler(seed=cfg.seed + len(study.trials))
    before = len(study.get_trials(deepcopy=False, states=finished))
    missing = trials - before
    if missing > 0:
        log.info("study %s: %d of %d trials finished, running %d more", study_name, before, trials, missing)
        study.optimize(
            _objective(cfg, dataset, model, progress),
            n_trials=missing,
            timeout=None if timeout_min is None else 60.0 * timeout_min,
            gc_after_trial=True,
        )
    all_trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state.name.lower() == s for t in all_trials) for s in ("complete", "pruned", "fail")}
    summary = TuneSummary(study_name, storage, counts, counts["complete"] + counts["pruned"] - before)
    if not counts["complete"]:
        return summary
    best = study.best_trial
    values = decode_params(model, best.params)
    out = Path(out) if out is not None else Path("configs") / f"tuned_{model}.yaml"
    header = (
        f"Tuned by 06_tune.py: study {study_name} ({storage}), best of {counts['complete']} complete and "
        f"{counts['pruned']} pruned trials\ntrial #{best.number}: val_loss {best.value:.6g} on {dataset} "
        f"(train/val splits), {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}\n"
        f"trial budget (not written below): training {settings['training']}"
    )
    write_tuned_config(out, model, values, base=base_config, header=header)
    run = f"{dataset.name}_{model}_tuned"
    summary.best, summary.best_values, summary.out = best, values, out
    summary.next_command = (
        f"python 03_train_autoencoder.py --config {out} --dataset {dataset} --model {model} --run {run}"
    )
    return summary


def _objective(cfg: Config, dataset: Path, model: str, progress: bool):
    from .train import train

    def objective(trial) -> float:
        import keras

        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        values = suggest(trial, model)
        trial_cfg = cfg.replace(**values)
        keras.backend.clear_session()
        try:
            with tempfile.TemporaryDirectory(prefix="speech_dae_tune_") as tmp:
                trial.set_user_attr("workdir", tmp)
                summary = train(
                    trial_cfg,
                    dataset=dataset,
                    run=f"trial{trial.number}",
                    models_dir=Path(tmp) / "models",
                    logs_dir=Path(tmp) / "logs",
                    force=True,
                    progress=progress,
                    extra_callbacks=[pruning_callback(trial)],
                )
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        i = summary.info
        for key in ("best_epoch", "epochs_run", "train_seconds", "n_params", "stop_reason"):
            trial.set_user_attr(key, getattr(i, key))
        value = float("nan") if i.best_val_loss is None else float(i.best_val_loss)
        if value != value:
            raise _optuna().TrialPruned("val_loss is NaN")
        return value

    return objective
