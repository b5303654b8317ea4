"""The trainer of stage 03: builds the model, the batches and the callbacks, fits, and writes the run folder.

Plumbing is stock Keras: ``EarlyStopping`` (best weights restored, saved to
``model.keras``), ``CSVLogger`` to ``model_logs/<run>.csv`` and ``TensorBoard``
events in ``model_logs/<run>/``, the optimizer's weight averaging
(``training.ema``: ``use_ema`` with ``SwapEMAWeights``), plus the extras of
:mod:`speech_dae.training.callbacks` (libdse-style scalars, audio and
spectrograms; a time budget; a learning-rate schedule; backup and restore over
a kill). Runs with a spectral loss also log the pooled SI-SDR of the masked
estimate (:class:`speech_dae.losses.PooledSISDR`, ``si_sdr`` / ``val_si_sdr``). Batches come
from :mod:`speech_dae.training.batches` (stage-02 patches) or
:mod:`speech_dae.training.examples` (examples cut from audio, dynamic mixing)
through ``tf.data``; :mod:`speech_dae.training.distribute` spreads them over
devices or workers. The run folder is built as ``models/<run>.partial`` and
renamed when training ends, so ``models/<run>/`` always holds a finished run:
``model.keras``, ``run.json`` (:class:`~speech_dae.runinfo.RunInfo`),
``norm.npz`` and ``training.png``. The stage entry that checks the inputs is
:func:`speech_dae.stages.train.train`.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifacts import StagedOutput, atomic_path, package_versions
from ..config import POINTWISE_LOSSES, Config, FeatureConfig, parse_loss
from ..errors import ArtifactError, ConfigError
from ..features import FeatureExtractor
from ..framing import Normaliser, even_indices
from ..plots import plot_training_curves
from ..runinfo import RunInfo
from ..version import __version__
from .batches import Batches, LabelledPatchSequence, PatchSequence
from .callbacks import (
    backup_and_restore,
    epoch_timer,
    lr_schedule,
    tensorboard_scalars,
    time_budget,
    validation_clips,
)
from .distribute import ClusterTask
from .examples import mixture_sequences, uses_audio

__all__ = ["fit_run", "TrainSummary"]

log = logging.getLogger(__name__)


@dataclass
class TrainSummary:
    run_dir: Path
    info: RunInfo
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
                f"{i.cluster_task}: trained {i.model} for {i.epochs_run} epochs in "
                f"{i.train_seconds:.0f} s; best epoch {i.best_epoch} val_loss {i.best_val_loss:.4f}"
                f"{_best_si_sdr(i)}; the chief writes {self.run_dir} (this worker's copy was discarded)"
            ]
        resumed = "".join(f"; resumed from epoch {n}" for n in i.resumed_at_epochs)
        return [
            f"trained {i.model} ({i.n_params:,} parameters) for {i.epochs_run} epochs in "
            f"{i.train_seconds:.0f} s ({i.stop_reason}{resumed}); best epoch {i.best_epoch} "
            f"val_loss {i.best_val_loss:.4f}{_best_si_sdr(i)}{_val_size(i)}; saved {self.run_dir}/model.keras"
        ]


def _best_si_sdr(info: RunInfo) -> str:
    """`` val_si_sdr X dB`` of the best epoch (runs with a spectral loss log it), else ``""``."""
    values = (info.history or {}).get("val_si_sdr") or []
    return f" val_si_sdr {values[info.best_epoch - 1]:.2f} dB" if 0 < info.best_epoch <= len(values) else ""


def _val_size(info: RunInfo) -> str:
    return f" on {info.val_frames:,} validation frames ({info.val_minutes:g} min)" if info.val_frames else ""


def _mask_target_fn(dataset: Path, info: dict):
    """Per-batch ideal ratio mask from normalised noisy / clean patches (see ``FeatureExtractor.mask_target``)."""
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
    keep = even_indices(windows["val"].size, t.val_max_patches)
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
    """What ``compile`` gets for ``training.loss`` and its metrics: ``("mse" / "mae", [])``, or a
    :class:`speech_dae.losses.SpectralLoss` on the dataset's STFT framing and the pooled SI-SDR of the
    same masked estimate (:class:`speech_dae.losses.PooledSISDR`)."""
    terms, weights = parse_loss(t.loss, t.loss_weights)
    if terms[0] in POINTWISE_LOSSES:
        return terms[0], []
    from ..losses import PooledSISDR, SpectralLoss  # imports Keras

    f = info["features_params"]["features"]
    framing = {"n_fft": int(f["n_fft"]), "hop_length": int(f["hop_length"]), "window": f["window"]}
    return SpectralLoss(terms=terms, weights=weights, **framing), [PooledSISDR(**framing)]


def _optimizer(keras, t):
    """Adam, or AdamW (decoupled weight decay, Loshchilov & Hutter 2019) when ``training.weight_decay > 0``;
    with ``training.ema > 0`` the optimizer also keeps an exponential moving average of the weights
    (Polyak averaging, Keras's ``use_ema`` / ``ema_momentum``)."""
    ema = {"use_ema": True, "ema_momentum": t.ema} if t.ema else {}
    if t.weight_decay:
        return keras.optimizers.AdamW(learning_rate=t.learning_rate, weight_decay=t.weight_decay, **ema)
    return keras.optimizers.Adam(learning_rate=t.learning_rate, **ema)


def _optimizer_info(t) -> dict:
    """run.json's ``optimizer``: name, peak learning rate, weight decay, schedule and weight averaging."""
    return {
        "name": "adamw" if t.weight_decay else "adam",
        "learning_rate": t.learning_rate,
        **({"weight_decay": t.weight_decay} if t.weight_decay else {}),
        "lr_schedule": t.lr_schedule,
        **(
            {"warmup": t.warmup_fraction, "lr_min": t.lr_min}
            if t.lr_schedule != "constant" or t.warmup_fraction
            else {}
        ),
        "ema": t.ema,
    }


def _schedule(keras, t, budget):
    """The learning-rate callback of ``training.lr_schedule``, or ``None`` for a constant rate without warm-up
    (Keras then keeps ``training.learning_rate`` throughout, as before schedules existed)."""
    if t.lr_schedule == "constant" and not t.warmup_fraction:
        return None
    return lr_schedule(
        keras,
        t.lr_schedule,
        t.learning_rate,
        warmup=t.warmup_fraction,
        lr_min=t.lr_min,
        clock=budget.elapsed if budget is not None else None,
        budget_s=60.0 * t.max_minutes if t.max_minutes else None,
    )


def _distribute(seq: Batches, strategy, *, epochs: int = 1, repeat: bool = False, first_epoch: int = 0):
    """``seq.dataset(...)``, or one input pipeline per worker through ``strategy.distribute_datasets_from_function``."""
    if strategy is None:
        return seq.dataset(epochs, repeat=repeat, first_epoch=first_epoch)
    return strategy.distribute_datasets_from_function(
        lambda ctx: seq.dataset(epochs, input_context=ctx, repeat=repeat, first_epoch=first_epoch)
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


def fit_run(
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
    from ..models import SEMI_SUPERVISED, build_model  # imports Keras

    name, t = cfg.model.name, cfg.training
    hparams = cfg.model.params_for(name)
    run_dir = models_dir / run
    staged = StagedOutput(run_dir, fp, marker="run.json", force=force)
    if staged.is_current():
        return TrainSummary(run_dir, RunInfo.load(run_dir), up_to_date=True)
    import keras

    keras.utils.set_random_seed(cfg.seed)
    context, n_bins = int(info["context"]), int(info["n_bins"])

    def scope():
        return strategy.scope() if strategy is not None else contextlib.nullcontext()

    with scope():
        model = build_model(name, (context, n_bins), target=t.target, **hparams)
    work = staged.begin()  # a killed run's .partial folder (same fingerprint) is kept, with its backup
    early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=t.patience, restore_best_weights=True)
    budget = time_budget(keras, t.max_minutes) if t.max_minutes else None
    timer = epoch_timer(keras)
    # weight averaging: the averaged weights are swapped into the model for validation and at every epoch end,
    # so EarlyStopping's best weights, the backup and model.keras hold them (the swap must come before those)
    swap_ema = keras.callbacks.SwapEMAWeights(swap_on_epoch=True) if t.ema else None
    schedule = _schedule(keras, t, budget)
    # a multi-worker run always retrains (see train): no backup
    backup = (
        None
        if task is not None
        else backup_and_restore(
            keras, work / "backup", epochs=t.epochs, early=early, timer=timer, budget=budget, ema=bool(t.ema)
        )
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
        metrics = []
        if semi:
            from ..models.thesis import identity_loss, semi_supervised_trainer

            fit_model = semi_supervised_trainer(model, name, penalty=hparams.get("penalty", 0.75))
            losses = {"recon": t.loss, **({"penalty": identity_loss} if name == "partitioned" else {})}
        else:
            fit_model, (losses, metrics) = model, _loss(t, info)
            if not isinstance(losses, str):  # compile a twin sharing the layers: model.keras keeps no reference
                fit_model = keras.Model(model.input, model.output, name=f"{model.name}_trainer")  # to the loss
        fit_model.compile(optimizer=_optimizer(keras, t), loss=losses, metrics=metrics)
    # order matters: the EMA swap puts the averaged weights in the model at the end of each epoch before early
    # stopping records its best weights; the schedule writes learning_rate into the epoch logs; the backup
    # saves the state early / timer / budget hold at the end of each epoch, and is written before the CSV row
    # (a logged epoch is a saved one)
    callbacks = [
        *([swap_ema] if swap_ema else []),
        early,
        timer,
        *([budget] if budget else []),
        *([schedule] if schedule else []),
        *([backup] if backup else []),
        keras.callbacks.CSVLogger(str(csv_path), append=bool(first)),
        keras.callbacks.TensorBoard(log_dir=str(tb_dir), write_graph=False),
    ]
    if t.tensorboard_media:
        scalars = tensorboard_scalars(
            keras,
            tb_dir,
            model=model,
            fit_model=fit_model,
            batch=train_seq[0],
            clips=validation_clips(dataset, info, t.tensorboard_utterances),
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
    plot_training_curves(h, work / "training.png", title=f"{run}: {name} on {info['feature']}")
    fparams = info["features_params"]
    run_info = RunInfo(
        stage="03_train_autoencoder",
        fingerprint=fp,
        run=run,
        model=name,
        hparams=hparams,
        input_shape=[context, n_bins],
        target=t.target,
        patch_hop=cfg.reconstruct.patch_hop,
        loss=t.loss,
        loss_weights=list(parse_loss(t.loss, t.loss_weights)[1]),
        optimizer=_optimizer_info(t),
        mixing=t.mixing,
        training=cfg.to_dict()["training"],
        epochs_run=epochs_run,
        best_epoch=best + 1,
        best_val_loss=h["val_loss"][best],
        stop_reason=stop,
        train_seconds=round(seconds, 1),
        resumed_at_epochs=resumed,
        epoch_seconds=timer.seconds,
        train_patches=n_patches["train"],
        val_patches=n_patches["val"],
        val_frames=n_patches["val_frames"],
        val_minutes=n_patches["val_minutes"],
        semi_supervised=semi,
        keras_backend=keras.backend.backend(),
        replicas=replicas,
        cluster_task=f"{task.type} {task.index} of {task.n_workers}" if task is not None else None,
        n_params=int(model.count_params()),
        history=h,
        dataset=str(dataset),
        dataset_fingerprint=info["fingerprint"],
        context=context,
        n_bins=n_bins,
        feature=info["feature"],
        sample_rate=fparams["sample_rate"],
        features=fparams["features"],
        features_dir=info["source"],
        seed=cfg.seed,
        versions={**package_versions(), "speech_dae": __version__},
    )
    run_info.save(work)
    shutil.rmtree(work / "backup", ignore_errors=True)  # kept until now: a kill before the commit resumes from it
    staged.commit()
    return TrainSummary(run_dir, run_info)
