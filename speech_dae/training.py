"""Stage 03: train a registry model on a stage-02 dataset -> ``models/<run>/``.

Plumbing is stock Keras: ``EarlyStopping`` (best weights restored),
``ModelCheckpoint`` of the best ``val_loss`` to ``model.keras``, ``CSVLogger``
to ``model_logs/<run>.csv`` and ``TensorBoard`` events in ``model_logs/<run>/``.
The run folder is built as ``models/<run>.partial`` and renamed when training
ends, so ``models/<run>/`` always holds a finished run: ``model.keras``,
``run.json`` (everything stage 04 needs), ``norm.npz`` and ``training.png``.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .artifacts import StagedOutput, fingerprint, package_versions, read_json, write_json
from .config import Config
from .dataset import gather_patches, load_dataset
from .errors import ArtifactError, ConfigError

__all__ = ["train", "TrainSummary", "PatchSequence"]

log = logging.getLogger(__name__)


def _keras():
    import keras

    return keras


def PatchSequence(x, y, windows, *, context: int, batch_size: int, shuffle: bool, seed: int,
                  target_fn=None, max_batches: int | None = None):
    """A ``keras.utils.PyDataset`` of ``(x_patch, y_patch)`` batches gathered from memory-mapped frames.

    Parameters
    ----------
    x, y : np.ndarray [shape=(n_frames, n_bins)], float32 (memmaps)
    windows : np.ndarray [shape=(n_patches,)], int64
        Patch start frames.
    context : int
    batch_size : int
    shuffle : bool
        Reshuffle the patch order after every epoch (seeded).
    seed : int
    target_fn : callable, optional
        ``target_fn(x_patches, y_patches) -> targets`` replaces the clean patches
        as targets (e.g. the ratio mask of ``training.target: mask``).
    max_batches : int, optional
        Batches per epoch (``training.steps_per_epoch``): each epoch serves the
        first ``max_batches`` batches of its own shuffle, so successive epochs
        see different patches.
    """
    keras = _keras()

    class _PatchSequence(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.order = np.asarray(windows)
            self.rng = np.random.default_rng(seed)

        def __len__(self):
            n = int(np.ceil(self.order.size / batch_size))
            return n if max_batches is None else min(n, max_batches)

        def __getitem__(self, i):
            starts = self.order[i * batch_size:(i + 1) * batch_size]
            xb, yb = gather_patches(x, starts, context), gather_patches(y, starts, context)
            return xb, (yb if target_fn is None else target_fn(xb, yb))

        def on_epoch_end(self):
            if shuffle:
                self.order = self.order[self.rng.permutation(self.order.size)]

    return _PatchSequence()


def LabelledPatchSequence(x, windows, labels, *, context: int, batch_size: int, noise_only_fraction: float,
                          shuffle: bool, seed: int, penalty_output: bool, max_batches: int | None = None):
    """Batches for the semi-supervised models: a fixed share of noise-only patches, the input as target.

    Every batch holds ``round(noise_only_fraction * batch_size)`` (at least 1)
    patches with soft label >= 0.5 (noise-only recordings), drawn cyclically
    from their own shuffle, and the rest from the other patches; an epoch
    walks once through the latter. Returns ``((x_patches, labels), targets)``
    with ``targets = {"recon": x_patches}`` (plus a zero ``penalty`` target for
    the partitioned trainer): no clean features are read (Stowell & Turner 2015;
    Lusterman 2016).

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
    keras = _keras()
    labels = np.asarray(labels)
    pools = [np.asarray(windows)[labels < 0.5], np.asarray(windows)[labels >= 0.5]]
    if pools[0].size == 0 or pools[1].size == 0:
        raise ConfigError(f"semi-supervised training needs noise-only patches and noisy-speech patches; got "
                          f"{pools[1].size} and {pools[0].size}: re-run 01_extract_features.py with --noise-only DIR")
    n1 = max(1, int(round(noise_only_fraction * batch_size)))
    n0 = max(1, batch_size - n1)
    lab = {0: np.zeros(n0, np.float32), 1: np.ones(n1, np.float32)}

    class _LabelledSequence(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.orders = [p.copy() for p in pools]

        def __len__(self):
            n = int(np.ceil(self.orders[0].size / n0))
            return n if max_batches is None else min(n, max_batches)

        def __getitem__(self, i):
            speech = self.orders[0][i * n0:(i + 1) * n0]
            noise = self.orders[1][(i * n1 + np.arange(n1)) % self.orders[1].size]
            xb = gather_patches(x, np.concatenate([speech, noise]), context)
            yb = np.concatenate([lab[0][:speech.size], lab[1]])[:, None]
            targets = {"recon": xb}
            if penalty_output:
                targets["penalty"] = np.zeros(xb.shape[0], np.float32)
            return (xb, yb), targets

        def on_epoch_end(self):
            if shuffle:
                self.orders = [o[self.rng.permutation(o.size)] for o in self.orders]

    return _LabelledSequence()


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

        def on_train_begin(self, logs=None):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if time.perf_counter() - self.t0 >= 60.0 * minutes:
                self.reached = self.model.stop_training = True

    return TimeBudget()


@dataclass
class TrainSummary:
    run_dir: Path
    info: dict
    up_to_date: bool = False

    def lines(self) -> list[str]:
        i = self.info
        if self.up_to_date:
            return [f"{self.run_dir} is up to date (same dataset, model and training parameters); "
                    "pass --force to retrain"]
        return [f"trained {i['model']} ({i['n_params']:,} parameters) for {i['epochs_run']} epochs in "
                f"{i['train_seconds']:.0f} s ({i['stop_reason']}); best epoch {i['best_epoch']} "
                f"val_loss {i['best_val_loss']:.4f}; saved {self.run_dir}/model.keras"]


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

    context = int(info["context"])
    windows = {"train": np.asarray(mm("windows", "train")), "val": np.asarray(mm("windows", "val"))}
    lab = {"train": labels("train"), "val": labels("val")}
    keep = even_subset(np.arange(windows["val"].size), t.val_max_patches)
    windows["val"], lab["val"] = windows["val"][keep], lab["val"][keep]
    if windows["val"].size == 0:
        raise ArtifactError(f"{dataset} has no validation patches; rebuild it with mixing.val_fraction > 0")
    n_patches = {s: int(w.size) for s, w in windows.items()}
    if semi:
        seqs = [LabelledPatchSequence(mm("x", s), windows[s], lab[s], context=context, batch_size=t.batch_size,
                                      noise_only_fraction=t.noise_only_fraction, shuffle=s == "train", seed=seed,
                                      penalty_output=penalty, max_batches=t.steps_per_epoch if s == "train" else None)
                for s in ("train", "val")]
        return seqs[0], seqs[1], n_patches
    target_fn = _mask_target_fn(dataset, info) if t.target == "mask" else None
    speech = {s: windows[s][lab[s] < 0.5] for s in windows}  # noise-only patches have no use with clean targets
    train_seq = PatchSequence(mm("x", "train"), mm("y", "train"), speech["train"], context=context,
                              batch_size=t.batch_size, shuffle=True, seed=seed, target_fn=target_fn,
                              max_batches=t.steps_per_epoch)
    val_seq = PatchSequence(mm("x", "val"), mm("y", "val"), speech["val"], context=context,
                            batch_size=max(t.batch_size, 512), shuffle=False, seed=seed, target_fn=target_fn)
    return train_seq, val_seq, {s: int(w.size) for s, w in speech.items()}


def train(cfg: Config, *, dataset: str | Path, run: str, models_dir: str | Path = "models",
          logs_dir: str | Path = "model_logs", force: bool = False, progress: bool = True) -> TrainSummary:
    """Run stage 03: train ``cfg.model.name`` on ``dataset`` and write ``models/<run>/``.

    Parameters
    ----------
    cfg : Config
        ``model`` and ``training`` sections, ``seed``.
    dataset : str or Path
        A ``datasets/<name>/`` folder written by stage 02.
    run : str
        Run name: the folder under ``models_dir`` and the log names under ``logs_dir``.

    Raises
    ------
    ArtifactError
        If the dataset is missing, incomplete or stale (names stage 02), or
        ``models/<run>`` holds a run of another configuration and ``force`` is false.
    ConfigError
        For an unknown model or hyper-parameter, or a bad run name.
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
        raise ConfigError(f"model {name} works on {' or '.join(MODEL_FEATURES[name])} features, but {dataset} holds "
                          f"{info['feature']}; rebuild with 01_extract_features.py --feature {MODEL_FEATURES[name][0]}")
    if name in MODEL_TARGETS and t.target not in MODEL_TARGETS[name]:
        raise ConfigError(f"model {name} supports --target {' or '.join(MODEL_TARGETS[name])}, not {t.target}")
    if name not in SEMI_SUPERVISED and not info.get("clean_targets", True):
        raise ConfigError(f"{dataset} has no clean references (stage 01 --noisy without --clean), so only the "
                          f"semi-supervised models ({', '.join(SEMI_SUPERVISED)}) can train on it, not {name}")
    fp = fingerprint(__version__, info["fingerprint"], name, hparams, cfg.to_dict()["training"], cfg.seed)
    run_dir = Path(models_dir) / run
    staged = StagedOutput(run_dir, fp, marker="run.json", force=force)
    if staged.is_current():
        return TrainSummary(run_dir, read_json(run_dir / "run.json"), up_to_date=True)
    from .models import build_model

    keras = _keras()
    keras.utils.set_random_seed(cfg.seed)
    context, n_bins = int(info["context"]), int(info["n_bins"])
    model = build_model(name, (context, n_bins), target=t.target, **hparams)
    work = staged.begin()
    logs_dir = Path(logs_dir)
    logs_dir.mkdir(parents=True, exist_ok=True)
    tb_dir = logs_dir / run
    if tb_dir.exists():
        shutil.rmtree(tb_dir)

    semi = name in SEMI_SUPERVISED
    train_seq, val_seq, n_patches = _sequences(dataset, info, t, cfg.seed, semi=semi, penalty=name == "partitioned")
    if semi:
        from .models.thesis import identity_loss, semi_supervised_trainer

        fit_model = semi_supervised_trainer(model, name, penalty=hparams.get("penalty", 0.75))
        losses = {"recon": t.loss, **({"penalty": identity_loss} if name == "partitioned" else {})}
    else:
        fit_model, losses = model, t.loss
    fit_model.compile(optimizer=keras.optimizers.Adam(learning_rate=t.learning_rate), loss=losses)
    early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=t.patience, restore_best_weights=True)
    callbacks = [
        early,
        keras.callbacks.CSVLogger(str(logs_dir / f"{run}.csv")),
        keras.callbacks.TensorBoard(log_dir=str(tb_dir), write_graph=False),
    ]
    budget = _time_budget(keras, t.max_minutes) if t.max_minutes else None
    callbacks += [budget] if budget else []
    log.info("training %s on %s: %d train / %d val patches of %dx%d, up to %d epochs", name, dataset,
             n_patches["train"], n_patches["val"], context, n_bins, t.epochs)
    t0 = time.perf_counter()
    history = fit_model.fit(train_seq, validation_data=val_seq, epochs=t.epochs, callbacks=callbacks,
                        verbose=1 if progress else 2)
    seconds = time.perf_counter() - t0
    model.save(work / "model.keras")  # the inference model, with the best epoch's weights (EarlyStopping restores)
    h = {k: [float(v) for v in vals] for k, vals in history.history.items()}
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
        "optimizer": {"name": "adam", "learning_rate": t.learning_rate},
        "training": cfg.to_dict()["training"],
        "epochs_run": epochs_run,
        "best_epoch": best + 1,
        "best_val_loss": h["val_loss"][best],
        "stop_reason": stop,
        "train_seconds": round(seconds, 1),
        "train_patches": n_patches["train"],
        "val_patches": n_patches["val"],
        "semi_supervised": semi,
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
    staged.commit()
    return TrainSummary(run_dir, run_info)
