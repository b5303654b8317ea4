"""run.json as a typed record: round trip, and one clear line for an old, foreign or broken run folder."""

from __future__ import annotations

import json

import pytest

from speech_dae.errors import ArtifactError
from speech_dae.runinfo import SCHEMA_VERSION, RunInfo

FEATURES = {"type": "logmag", "n_fft": 512, "hop_length": 128, "win_length": 512, "window": "hann"}


def record(**changes) -> RunInfo:
    base = dict(model="tcn", feature="logmag", sample_rate=16000, features=FEATURES, context=64, n_bins=257)
    return RunInfo(**{**base, **changes})


def test_save_then_load_gives_the_same_record(tmp_path):
    info = record(target="mask", history={"loss": [1.0, 0.5], "val_loss": [1.2, 0.7]}, cluster_task="worker 1 of 2")
    path = info.save(tmp_path)
    assert path == tmp_path / "run.json"
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert data["model"] == "tcn" and data["features"] == FEATURES and data["history"]["val_loss"] == [1.2, 0.7]
    again = RunInfo.load(tmp_path)
    assert again == info
    assert again.target == "mask" and not again.waveform and record(feature="waveform").waveform


def test_a_record_without_training_figures_is_valid_json(tmp_path):
    """Defaults are JSON values (null, not NaN), so any JSON reader can read run.json."""
    record().save(tmp_path)
    assert (
        json.loads((tmp_path / "run.json").read_text(), parse_constant=lambda c: pytest.fail(c))["best_val_loss"]
        is None
    )


@pytest.mark.parametrize(
    "content, words",
    [
        ({"model": "tcn"}, "has no schema_version: it was written by an older speech-dae"),
        ({"schema_version": 99}, "has schema_version 99, this speech-dae reads 1"),
        ([1, 2], "not a speech-dae run record (not a JSON object)"),
    ],
)
def test_an_old_or_foreign_record_is_refused_with_one_clear_line(tmp_path, content, words):
    (tmp_path / "run.json").write_text(json.dumps(content))
    with pytest.raises(ArtifactError) as err:
        RunInfo.load(tmp_path)
    msg = str(err.value)
    assert words in msg and str(tmp_path / "run.json") in msg and "03_train_autoencoder.py --force" in msg
    assert "\n" not in msg


def test_unknown_and_missing_keys_are_named(tmp_path):
    data = record().to_dict()
    del data["n_bins"]
    data["colour"] = "blue"
    (tmp_path / "run.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=r"unknown key\(s\) colour; missing key\(s\) n_bins"):
        RunInfo.load(tmp_path)


def test_missing_or_unreadable_file_names_stage_03(tmp_path):
    with pytest.raises(ArtifactError, match="run.json is missing; run 03_train_autoencoder.py first"):
        RunInfo.load(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="cannot be read"):
        RunInfo.load(tmp_path)


def test_the_inference_engine_refuses_a_run_folder_of_an_older_speech_dae(tmp_path, tiny_cfg):
    """A run.json written before the schema existed: the Denoiser says to retrain instead of failing on a key."""
    from conftest import identity_run_dir

    from speech_dae.inference import Denoiser

    run = identity_run_dir(tmp_path / "run", tiny_cfg)
    data = json.loads((run / "run.json").read_text())
    del data["schema_version"]
    (run / "run.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="has no schema_version.*retrain it with 03_train_autoencoder.py --force"):
        Denoiser(run)
