"""Stage 03 at scale: the tf.data input pipeline (same batches as the numpy plan, split over replicas, seeded),
``training.distribute`` mirrored on two logical CPU devices, a real two-worker MultiWorkerMirroredStrategy run on
localhost, and the TF_CONFIG checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, TINY_SETS, error_line, run_script

from speech_dae.config import load_config
from speech_dae.errors import ConfigError
from speech_dae.training.batches import LabelledPatchSequence, PatchSequence
from speech_dae.training.distribute import parse_tf_config

tf = pytest.importorskip("tensorflow")

STAGE03 = "03_train_autoencoder.py"
CLUSTER = {"worker": ["localhost:12345", "localhost:12346"]}


def _frames(n=60, bins=3):
    return np.arange(n * bins, dtype=np.float32).reshape(n, bins)


def _as_np(nest):
    return tf.nest.map_structure(lambda t: np.asarray(t), nest)


def _ctx(pipelines, pipeline, replicas):
    return tf.distribute.InputContext(
        num_input_pipelines=pipelines, input_pipeline_id=pipeline, num_replicas_in_sync=replicas
    )


# ------------------------------------------------------------- input pipeline
def test_tf_data_stream_serves_the_plan_batches_with_a_fresh_seeded_order_each_epoch():
    x = _frames()
    y = -x
    plan = PatchSequence(
        x,
        y,
        np.arange(50),
        context=4,
        batch_size=8,
        shuffle=True,
        seed=3,
        max_batches=3,
        target_fn=lambda xb, yb: yb * 2,
    )
    stream = [_as_np(b) for b in plan.dataset(epochs=2)]
    assert len(stream) == 2 * plan.steps() == 6
    expected = []
    for _ in range(2):
        expected += [plan[i] for i in range(len(plan))]
        plan.on_epoch_end()
    for (xb, yb), (xe, ye) in zip(stream, expected):
        np.testing.assert_array_equal(xb, xe)
        np.testing.assert_array_equal(yb, ye)
        np.testing.assert_array_equal(yb, -2 * xb)  # the target function replaced the clean patches
        assert xb.shape == (8, 4, 3) and xb.dtype == np.float32
    first, second = (np.concatenate([b[0][:, 0, 0] for b in stream[e * 3 : (e + 1) * 3]]) for e in (0, 1))
    assert not np.array_equal(first, second)  # epoch 2 draws its 3 batches from its own shuffle
    # the same seed gives the same stream (parallel gathering keeps the order)
    again = PatchSequence(
        x,
        y,
        np.arange(50),
        context=4,
        batch_size=8,
        shuffle=True,
        seed=3,
        max_batches=3,
        target_fn=lambda xb, yb: yb * 2,
    )
    for a, b in zip(stream, (_as_np(b) for b in again.dataset(epochs=2))):
        np.testing.assert_array_equal(a[0], b[0])


def test_validation_stream_repeats_the_same_batches():
    x = _frames()
    plan = PatchSequence(x, x, np.arange(20), context=2, batch_size=8, shuffle=False, seed=0)
    it = iter(plan.dataset(repeat=True))
    firsts = [np.asarray(next(it)[0])[:, 0, 0] for _ in range(2 * plan.steps())]
    assert [f.size for f in firsts] == [8, 8, 4] * 2
    for a, b in zip(firsts[:3], firsts[3:]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("pipelines", [1, 2])
def test_replica_parts_interleave_back_into_the_whole_batch(pipelines):
    """2 replicas: one pipeline (mirrored, two local parts per batch) or two workers (one part each)."""
    x = _frames(40, 1)
    plan = PatchSequence(x, x, np.arange(37), context=1, batch_size=8, shuffle=True, seed=1)
    assert len(plan) == 5 and plan.steps(2) == 5 and plan.steps(6) == 4  # a last batch of 5 cannot feed 6 replicas
    parts = {}
    for p in range(pipelines):
        for k, (xb, _) in enumerate(_as_np(b) for b in plan.dataset(2, input_context=_ctx(pipelines, p, 2))):
            parts[(k * pipelines + p) if pipelines == 2 else k] = xb[:, 0, 0]
    for e in range(2):
        for i in range(plan.steps(2)):
            whole = np.empty(plan.batch_size_of(i), np.float32)
            whole[0::2], whole[1::2] = parts[2 * (e * 5 + i)], parts[2 * (e * 5 + i) + 1]
            np.testing.assert_array_equal(whole, plan[i][0][:, 0, 0])
        plan.on_epoch_end()


def test_too_few_patches_for_the_replicas_is_a_config_error():
    plan = PatchSequence(_frames(10, 1), _frames(10, 1), np.arange(3), context=1, batch_size=8, shuffle=False, seed=0)
    assert plan.steps(3) == 1
    with pytest.raises(ConfigError, match="3 patches make no batch of at least 4 patches"):
        plan.steps(4)


def test_labelled_stream_keeps_the_noise_only_share_and_its_labels():
    x = np.arange(100, dtype=np.float32).reshape(100, 1)
    windows = np.arange(100)
    labels = (windows >= 80).astype(np.float32)
    plan = LabelledPatchSequence(
        x,
        windows,
        labels,
        context=1,
        batch_size=8,
        noise_only_fraction=0.25,
        shuffle=True,
        seed=0,
        penalty_output=True,
        max_batches=4,
    )
    batches = [_as_np(b) for b in plan.dataset(epochs=2)]
    assert len(batches) == 8
    for (xb, yb), targets in batches:
        assert xb.shape == (8, 1, 1) and yb.shape == (8, 1)
        np.testing.assert_array_equal(yb[:, 0] == 1, xb[:, 0, 0] >= 80)  # label 1 exactly on noise-only patches
        assert yb.sum() == 2
        np.testing.assert_array_equal(targets["recon"], xb)
        np.testing.assert_array_equal(targets["penalty"], np.zeros(8))
    (x0, _), _ = plan[0]
    np.testing.assert_array_equal(batches[0][0][0], x0)


# ------------------------------------------------------------------ TF_CONFIG
def _tf_config(**task):
    return json.dumps({"cluster": CLUSTER, "task": task})


def test_tf_config_names_the_task_and_the_chief():
    w0 = parse_tf_config(_tf_config(type="worker", index=0))
    w1 = parse_tf_config(_tf_config(type="worker", index=1))
    assert (w0.type, w0.index, w0.n_workers, w0.is_chief) == ("worker", 0, 2, True)
    assert (w1.index, w1.is_chief) == (1, False)
    with_chief = {"cluster": {"chief": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 0}}
    assert not parse_tf_config(json.dumps(with_chief)).is_chief
    with_chief["task"] = {"type": "chief", "index": 0}
    assert parse_tf_config(json.dumps(with_chief)).is_chief and parse_tf_config(json.dumps(with_chief)).n_workers == 2


@pytest.mark.parametrize(
    "text, pattern",
    [
        (None, "TF_CONFIG is not set"),
        ("  ", "TF_CONFIG is not set"),
        ("{cluster: 1}", "not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', 'no "cluster"'),
        ('{"cluster": {"worker": "localhost:1"}, "task": {"type": "worker"}}', 'list of "host:port"'),
        ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker"}}', 'list of "host:port"'),
        ('{"cluster": {"worker": ["h:1"], "ps": ["h:2"]}, "task": {"type": "worker"}}', "'ps' is not supported"),
        ('{"cluster": {"worker": ["h:1", "h:2"]}}', "must name a type"),
        ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "evaluator", "index": 0}}', "must name a type"),
        (
            '{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}',
            r"outside cluster.worker \(0..1\)",
        ),
        ('{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": "1"}}', "outside"),
    ],
)
def test_bad_tf_config_is_a_config_error_with_an_example(text, pattern):
    with pytest.raises(ConfigError, match=pattern) as err:
        parse_tf_config(text)
    assert "localhost:12345" in str(err.value)  # every message shows a working TF_CONFIG


def test_distribute_and_cpu_devices_are_validated():
    with pytest.raises(ConfigError, match="training.distribute='gpu' is unknown; choose none, mirrored, multiworker"):
        load_config(overrides=["training.distribute=gpu"])
    with pytest.raises(ConfigError, match="training.cpu_devices=0 must be a whole number in 1..64"):
        load_config(overrides=["training.cpu_devices=0"])
    assert load_config().training.distribute == "none" and load_config().training.cpu_devices is None


def test_cpu_devices_after_tensorflow_started_is_a_clear_error():
    from speech_dae.training.distribute import logical_cpu_devices

    have = len(tf.config.list_logical_devices("CPU"))  # starts TensorFlow in this process
    with pytest.raises(ConfigError, match=f"already started in this process with {have} CPU device"):
        logical_cpu_devices(have + 2)
    logical_cpu_devices(have)  # what it already has is fine


@pytest.mark.slow
def test_multiworker_without_tf_config_exits_2_naming_it(built, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    proc = run_script(
        STAGE03,
        "--dataset",
        built.dataset,
        "--model",
        "type2",
        "--distribute",
        "multiworker",
        *[a for s in TINY_SETS for a in ("--set", s)],
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    assert "TF_CONFIG is not set" in error_line(proc)
    assert not (tmp_path / "models").exists()


# ------------------------------------------------------------ real trainings
def _train_args(dataset, run, *extra):
    return [
        "--dataset",
        str(dataset),
        "--model",
        "type2",
        "--run",
        run,
        *[a for s in TINY_SETS for a in ("--set", s)],
        "--set",
        "training.epochs=2",
        "--set",
        "training.batch_size=32",
        "--set",
        "training.steps_per_epoch=6",
        *extra,
    ]


def _history(run_dir):
    return json.loads((run_dir / "run.json").read_text())["history"]


@pytest.fixture(scope="module")
def mirrored_run(built, tmp_path_factory):
    """type2 trained with --distribute mirrored on two logical CPU devices (a fresh process)."""
    root = tmp_path_factory.mktemp("mirrored")
    proc = run_script(
        STAGE03,
        *_train_args(built.dataset, "mir", "--distribute", "mirrored", "--set", "training.cpu_devices=2"),
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "models" / "mir"


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_trains_two_replicas(mirrored_run, built):
    from speech_dae.inference import Denoiser

    info = json.loads((mirrored_run / "run.json").read_text())
    assert info["replicas"] == 2 and info["training"]["distribute"] == "mirrored"
    assert info["epochs_run"] == 2 and np.all(np.isfinite(info["history"]["val_loss"]))
    y = np.random.default_rng(0).normal(0, 0.1, 4000).astype(np.float32)
    out = Denoiser(mirrored_run)(y)
    assert out.shape == y.shape and np.all(np.isfinite(out))


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_on_localhost_match_mirrored_and_only_the_chief_writes(mirrored_run, built, tmp_path):
    """Two processes with TF_CONFIG: the same batches split over the same two replicas as the mirrored run."""
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="2",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    procs = []
    for i in range(2):
        cwd = tmp_path / f"w{i}"
        cwd.mkdir()
        env_i = dict(env, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        cmd = [
            sys.executable,
            str(REPO_ROOT / STAGE03),
            *_train_args(built.dataset, "mw", "--distribute", "multiworker"),
            "--no-progress",
        ]
        procs.append(
            subprocess.Popen(cmd, cwd=cwd, env=env_i, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    chief = tmp_path / "w0" / "models" / "mw"
    info = json.loads((chief / "run.json").read_text())
    assert info["replicas"] == 2 and info["cluster_task"] == "worker 0 of 2"
    assert (tmp_path / "w0" / "model_logs" / "mw.csv").is_file()
    assert sorted(p.name for p in (tmp_path / "w1").iterdir()) == []  # the other worker wrote nothing here
    worker_line = [ln for ln in outs[1][0].splitlines() if ln.startswith("worker 1 of 2")]
    assert worker_line and "this worker's copy was discarded" in worker_line[0]
    # every worker saw the same (all-reduced) losses, and they equal the mirrored run's
    mirrored = _history(mirrored_run)
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(info["history"][key], mirrored[key], rtol=1e-4)
    assert f"val_loss {min(mirrored['val_loss']):.4f}" in worker_line[0]
