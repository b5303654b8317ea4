"""06_tune.py / speech_dae.stages.tune: Optuna study, resume, pruning, tuned config, errors."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_SETS, error_line, run_script

optuna = pytest.importorskip("optuna")

from speech_dae.config import load_config  # noqa: E402
from speech_dae.errors import ArtifactError, ConfigError  # noqa: E402
from speech_dae.stages.tune import SEARCH_SPACES, TRAINING_SPACE, decode_params, pruning_callback, suggest, tune  # noqa: E402

#: A short val split so every trial takes about a second.
TUNE_SETS = TINY_SETS + ["training.val_max_patches=256", "training.steps_per_epoch=4"]


@pytest.fixture
def tiny_space(monkeypatch):
    """type2's search space shrunk to tiny widths (the real one trains models of up to 11 M parameters)."""
    monkeypatch.setitem(
        SEARCH_SPACES,
        "type2",
        {"units": ("choice", [[16, 8], [32, 8], [16, 4, 2]]), "dropout": ("float", 0.0, 0.3, False)},
    )
    monkeypatch.setitem(TRAINING_SPACE, "batch_size", ("choice", [32, 64]))


def _script(name: str):
    """A numbered script imported as a module (its ``main``, ``parser`` and ``run``)."""
    from conftest import load_script

    return load_script(name)


def _finished(study):
    return [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]


def test_every_registry_model_has_a_search_space_of_its_hyper_parameters():
    from speech_dae.models import MODELS, hparam_names

    assert set(SEARCH_SPACES) == set(MODELS)
    for name, space in SEARCH_SPACES.items():
        assert set(space) <= set(hparam_names(name)), name
    study = optuna.create_study()
    trial = study.ask()
    values = suggest(trial, "type2")
    assert set(values) == {
        "model.hparams.type2.units",
        "model.hparams.type2.dropout",
        "training.learning_rate",
        "training.batch_size",
    }
    assert values["model.hparams.type2.units"] in SEARCH_SPACES["type2"]["units"][1]
    assert isinstance(trial.params["units"], str)  # lists go to Optuna as labels such as "512-128"
    assert decode_params("type2", trial.params) == values
    assert TRAINING_SPACE["learning_rate"][1] <= values["training.learning_rate"] <= TRAINING_SPACE["learning_rate"][2]


def test_pruning_callback_reports_every_epoch_and_prunes_a_lagging_trial():
    import keras

    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    ref = study.ask()
    for step, v in enumerate([1.0, 0.5, 0.4]):
        ref.report(v, step)
    study.tell(ref, 0.4)

    good = study.ask()
    cb = pruning_callback(good)
    cb.on_epoch_end(0, {"loss": 2.0, "val_loss": 0.9})  # better than the reference: goes on
    with pytest.raises(optuna.TrialPruned):
        cb.on_epoch_end(1, {"loss": 2.0, "val_loss": 5.0})  # 5.0 > median 0.5 at step 1
    assert good.storage.get_trial(good._trial_id).intermediate_values == {0: 0.9, 1: 5.0}
    with pytest.raises(optuna.TrialPruned):
        pruning_callback(study.ask()).on_epoch_end(0, {"val_loss": float("nan")})

    # inside Keras fit: the exception ends fit and reaches the caller unchanged
    bad = study.ask()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 4), np.float32)
    y = np.full((8, 1), 100.0, np.float32)
    epochs_seen = []
    track = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: epochs_seen.append(e))
    with pytest.raises(optuna.TrialPruned):
        model.fit(x, y, validation_data=(x, y), epochs=5, verbose=0, callbacks=[track, pruning_callback(bad)])
    assert epochs_seen == [0]  # pruned after the first epoch (val_loss ~1e4 > median 1.0)


@pytest.mark.slow
def test_study_writes_a_loadable_config_resumes_and_recovers_a_killed_trial(built, tmp_path, monkeypatch, tiny_space):
    monkeypatch.chdir(tmp_path)
    storage = f"sqlite:///{tmp_path / 'tuning.db'}"
    out = tmp_path / "tuned.yaml"
    cfg = load_config(overrides=TUNE_SETS)
    before = set(Path(tempfile.gettempdir()).glob("speech_dae_tune_*"))
    s = tune(
        cfg, dataset=built.dataset, model="type2", trials=2, storage=storage, study_name="s", out=out, progress=False
    )
    assert s.counts["complete"] + s.counts["pruned"] == 2 and s.new_trials == 2
    assert not (tmp_path / "models").exists() and not (tmp_path / "model_logs").exists()
    assert set(Path(tempfile.gettempdir()).glob("speech_dae_tune_*")) == before  # trial folders removed

    # the written file is a --config file; its tuned values override the defaults
    study = optuna.load_study(study_name="s", storage=storage)
    best = study.best_trial
    tuned = load_config(out)
    assert tuned.model.name == "type2"
    assert tuned.model.hparams["type2"]["units"] == [int(u) for u in best.params["units"].split("-")]
    assert tuned.model.hparams["type2"]["dropout"] == pytest.approx(best.params["dropout"])
    assert tuned.model.hparams["type2"]["max_norm"] == 3.0  # untuned keys keep their defaults
    assert tuned.training.learning_rate == pytest.approx(best.params["learning_rate"])
    assert tuned.training.batch_size == best.params["batch_size"]
    assert tuned.training.epochs == load_config().training.epochs  # trial budgets are not written
    # ... and stage 03 trains with it
    from speech_dae.stages.train import train

    run = train(load_config(out, ["training.epochs=1"]), dataset=built.dataset, run="tuned", progress=False)
    assert run.info.hparams["units"] == tuned.model.hparams["type2"]["units"]
    assert run.info.optimizer["learning_rate"] == pytest.approx(best.params["learning_rate"])

    # resume: --trials 3 runs one more trial and leaves the first two as they were
    first = [(t.number, t.params, t.value, t.state) for t in study.trials]
    s = tune(
        cfg, dataset=built.dataset, model="type2", trials=3, storage=storage, study_name="s", out=out, progress=False
    )
    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.trials) == 3 and s.new_trials == 1
    assert [(t.number, t.params, t.value, t.state) for t in study.trials[:2]] == first
    # the same --trials again runs nothing
    assert (
        tune(
            cfg,
            dataset=built.dataset,
            model="type2",
            trials=3,
            storage=storage,
            study_name="s",
            out=out,
            progress=False,
        ).new_trials
        == 0
    )

    # a process killed mid-trial leaves it RUNNING: the next run fails it and re-runs its parameters first
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed = study.ask()
    params = suggest(killed, "type2")
    import socket

    killed.set_user_attr("host", socket.gethostname())
    killed.set_user_attr("pid", int(dead.stdout))
    workdir = Path(tempfile.mkdtemp(prefix="speech_dae_tune_"))  # its trial folder, left behind by the kill
    (workdir / "models").mkdir()
    killed.set_user_attr("workdir", str(workdir))
    s = tune(
        cfg, dataset=built.dataset, model="type2", trials=4, storage=storage, study_name="s", out=out, progress=False
    )
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.trials[3].state.name == "FAIL" and study.trials[3].user_attrs["interrupted"]
    assert not workdir.exists()
    retry = study.trials[4]
    assert retry.user_attrs["retry_of"] == 3 and decode_params("type2", retry.params) == params
    assert len(_finished(study)) == 4 and s.new_trials == 1

    # a resume with other trial settings is refused
    with pytest.raises(ConfigError, match="was run with a different trial settings"):
        tune(
            cfg.replace(**{"training.epochs": 2}),
            dataset=built.dataset,
            model="type2",
            trials=5,
            storage=storage,
            study_name="s",
            out=out,
            progress=False,
        )


@pytest.mark.slow
def test_cli_prints_best_trial_and_next_command_and_errors_are_one_line(
    built, tmp_path, monkeypatch, capsys, tiny_space
):
    monkeypatch.chdir(tmp_path)
    script = _script("06_tune.py")
    sets = [a for s in TUNE_SETS for a in ("--set", s)]
    argv = [
        "--dataset",
        str(built.dataset),
        "--model",
        "type2",
        "--trials",
        "1",
        "--storage",
        "sqlite:///t.db",
        "--out",
        "tuned.yaml",
        "--no-progress",
        *sets,
    ]
    assert script.run(script.main, script.parser, argv) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("study ", "best ", "wrote ", "next"))]
    assert lines[0].startswith("study tiny_type2 in sqlite:///t.db: 1 finished trials (1 complete, 0 pruned")
    assert lines[1].startswith("best trial #0: val_loss ")
    assert lines[-1] == (
        f"next: python 03_train_autoencoder.py --config tuned.yaml --dataset {built.dataset} "
        "--model type2 --run tiny_type2_tuned"
    )
    assert lines[2] == "wrote tuned.yaml"
    assert load_config(tmp_path / "tuned.yaml").model.name == "type2"

    assert script.run(script.main, script.parser, [*argv[:3], "nope", *argv[4:]]) == 2
    assert "error: unknown model 'nope'; choose one of" in capsys.readouterr().err
    proc = run_script(
        "06_tune.py",
        "--dataset",
        "datasets/missing",
        "--model",
        "type2",
        "--trials",
        "1",
        "--storage",
        "sqlite:///t.db",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "datasets/missing" in error_line(proc) and "02_build_dataset.py" in error_line(proc)


def test_unusable_arguments_raise_clear_errors(built, tmp_path):
    cfg = load_config(overrides=TUNE_SETS)
    kw = dict(storage=f"sqlite:///{tmp_path / 'x.db'}", out=tmp_path / "x.yaml", progress=False)
    with pytest.raises(ConfigError, match="works on waveform features"):
        tune(cfg, dataset=built.dataset, model="conv1d_time", trials=1, **kw)
    with pytest.raises(ConfigError, match="--trials 0 must be >= 1"):
        tune(cfg, dataset=built.dataset, model="type2", trials=0, **kw)
    with pytest.raises(ArtifactError):
        tune(cfg, dataset=tmp_path / "nope", model="type2", trials=1, **kw)
    with pytest.raises(ConfigError, match="--storage 'nonsense' cannot be opened"):
        tune(cfg, dataset=built.dataset, model="type2", trials=1, **{**kw, "storage": "nonsense"})
