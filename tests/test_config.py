"""Configuration: defaults, YAML-parsed ``--set`` overrides, user files, validation errors."""

from __future__ import annotations

import json

import pytest
import yaml

from speech_dae.config import DEFAULT_CONFIG_PATH, config_from_dict, load_config, parse_override
from speech_dae.errors import ConfigError, SpeechDAEError


def test_defaults_come_from_default_yaml():
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    cfg = load_config()
    assert cfg.seed == raw["seed"]
    assert cfg.features.type == raw["features"]["type"]
    assert cfg.features.n_fft == raw["features"]["n_fft"]
    assert cfg.features.hop_length == raw["features"]["hop_length"]
    assert cfg.mixing.snr_db == tuple(float(s) for s in raw["mixing"]["snr_db"])
    assert cfg.dataset.context == raw["dataset"]["context"]
    assert cfg.model.name == raw["model"]["name"]
    assert cfg.model.params_for() == raw["model"]["hparams"][raw["model"]["name"]]
    assert cfg.training.learning_rate == pytest.approx(raw["training"]["learning_rate"])


@pytest.mark.parametrize(
    "text, key, value",
    [
        ("training.epochs=5", "training.epochs", 5),
        ("mixing.snr_db=[0, 5]", "mixing.snr_db", [0, 5]),
        ("features.fmax=null", "features.fmax", None),
        ("dataset.normalise=false", "dataset.normalise", False),
        ("training.learning_rate=0.5e-3", "training.learning_rate", 0.0005),
        ("features.type=fbank", "features.type", "fbank"),
        ("model.hparams.type2.units=[16,8]", "model.hparams.type2.units", [16, 8]),
        ("  training.loss =mae", "training.loss", "mae"),
    ],
)
def test_parse_override_parses_yaml_values(text, key, value):
    k, v = parse_override(text)
    assert k == key
    assert v == value and type(v) is type(value)


def test_set_overrides_are_applied_and_typed():
    cfg = load_config(
        overrides=[
            "training.epochs=5",
            "mixing.snr_db=[0, 5]",
            "features.type=fbank",
            "model.hparams.type2.units=[16,8]",
            "audio.silence_rms_db=-60",
        ]
    )
    assert cfg.training.epochs == 5 and isinstance(cfg.training.epochs, int)
    assert cfg.mixing.snr_db == (0.0, 5.0)
    assert cfg.features.type == "fbank"
    assert cfg.model.params_for("type2")["units"] == [16, 8]
    assert cfg.model.params_for("type2")["dropout"] == load_config().model.params_for("type2")["dropout"]
    assert cfg.audio.silence_rms_db == -60


def test_scalar_snr_becomes_a_tuple_and_later_set_wins():
    cfg = load_config(overrides=["mixing.snr_db=3", "training.epochs=2", "training.epochs=7"])
    assert cfg.mixing.snr_db == (3.0,)
    assert cfg.training.epochs == 7


def test_new_hparam_key_is_accepted_by_config(tmp_path):
    # hparams are free-form in the config; build_model rejects unknown ones (see test_models)
    cfg = load_config(overrides=["model.hparams.type2.new_knob=1"])
    assert cfg.model.params_for("type2")["new_knob"] == 1


def test_user_file_is_merged_over_defaults_then_set(tmp_path):
    user = tmp_path / "my.yaml"
    user.write_text("features:\n  type: fbank\n  n_mels: 24\ntraining:\n  epochs: 3\n")
    cfg = load_config(user, overrides=["training.epochs=4"])
    assert cfg.features.type == "fbank" and cfg.features.n_mels == 24
    assert cfg.features.n_fft == load_config().features.n_fft  # untouched default kept
    assert cfg.training.epochs == 4


@pytest.mark.parametrize(
    "override, must_mention",
    [
        ("training.foo=1", ["training.foo", "epochs", "batch_size", "learning_rate"]),
        ("foo.bar=1", ["foo", "audio", "mixing", "features", "training"]),
        ("features.nfft=256", ["features.nfft", "n_fft", "hop_length"]),
        ("model.hparams.type3.units=[1]", ["type3", "type1", "type2"]),
    ],
)
def test_unknown_set_key_lists_valid_keys(override, must_mention):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    for word in must_mention:
        assert word in str(err.value)


def test_unknown_key_in_user_file_lists_valid_keys(tmp_path):
    user = tmp_path / "bad.yaml"
    user.write_text("dataset:\n  contxt: 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(user)
    msg = str(err.value)
    assert "contxt" in msg and "context" in msg and "stride" in msg


@pytest.mark.parametrize(
    "override, must_mention",
    [
        ("features.type=foo", ["foo", "fbank", "logmag"]),
        ("features.n_fft=300", ["n_fft", "300", "power of two"]),
        ("features.hop_length=0", ["hop_length"]),
        ("features.hop_length=1024", ["hop_length", "win_length"]),
        ("features.n_mels=0", ["n_mels"]),
        ("features.eps=0", ["eps"]),
        ("training.loss=huber", ["huber", "mse", "mae"]),
        ("training.epochs=0", ["epochs"]),
        ("training.learning_rate=abc", ["training"]),
        ("training.steps_per_epoch=0", ["steps_per_epoch", "null"]),
        ("training.val_max_patches=2.5", ["val_max_patches"]),
        ("training.max_minutes=0", ["max_minutes", "time budget"]),
        ("mixing.clip_peak=1.5", ["clip_peak"]),
        ("mixing.snr_db=[]", ["snr_db"]),
        ("mixing.snr_db=[0, loud]", ["snr_db", "loud"]),
        ("mixing.snr_db=[100]", ["snr_db"]),
        ("mixing.val_fraction=0.95", ["val_fraction"]),
        ("audio.sample_rate=4000", ["sample_rate", "4000"]),
        ("audio.min_duration_s=0", ["min_duration_s"]),
        ("dataset.context=0", ["context"]),
        ("dataset.stride=0", ["stride"]),
        ("reconstruct.patch_hop=0", ["patch_hop"]),
        ("seed=abc", ["seed"]),
    ],
)
def test_invalid_values_raise_config_error(override, must_mention):
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[override])
    for word in must_mention:
        assert word in str(err.value), str(err.value)


@pytest.mark.parametrize("override", ["training.epochs", "mixing.snr_db=[0,", "=5"])
def test_malformed_set_raises_config_error(override):
    with pytest.raises(ConfigError):
        load_config(overrides=[override])


def test_missing_or_non_mapping_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("features: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_config_error_is_a_value_error_and_a_speech_dae_error():
    with pytest.raises(ValueError):
        load_config(overrides=["features.type=foo"])
    assert issubclass(ConfigError, SpeechDAEError)


def test_to_dict_round_trips_and_is_json():
    cfg = load_config(overrides=["mixing.snr_db=[-5, 5]"])
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["mixing"]["snr_db"] == [-5.0, 5.0]
    assert config_from_dict(data) == cfg


def test_replace_applies_and_validates():
    cfg = load_config(overrides=["features.type=logmag"])
    new = cfg.replace(**{"features.type": "fbank", "dataset.context": 7})
    assert (new.features.type, new.dataset.context) == ("fbank", 7)
    assert cfg.features.type == "logmag"  # frozen original untouched
    with pytest.raises(ConfigError):
        cfg.replace(**{"features.n_fft": 300})
    with pytest.raises(ConfigError):
        cfg.replace(**{"features.bogus": 1})


# ------------------------------------------------------------ validation found missing by these tests (now fixed)
DID_NOT_RAISE = pytest.fail.Exception  # what a failed pytest.raises raises


def test_fractions_summing_to_one_or_more_are_rejected():
    with pytest.raises(ConfigError):
        load_config(overrides=["mixing.val_fraction=0.6", "mixing.test_fraction=0.6"])


@pytest.mark.parametrize(
    "overrides",
    [
        ["features.type=fbank", "features.fmax=10000"],  # > 16000 / 2
        ["features.type=fbank", "features.fmin=4000", "features.fmax=2000"],
    ],
)
def test_fmax_must_lie_between_fmin_and_nyquist(overrides):
    with pytest.raises(ConfigError):
        load_config(overrides=overrides)


@pytest.mark.parametrize(
    "override", ["training.epochs=2.5", "dataset.context=2.5", "dataset.stride=1.5", "features.hop_length=127.5"]
)
def test_non_integer_value_for_integer_field_is_rejected(override):
    with pytest.raises(ConfigError):
        load_config(overrides=[override])


def test_exponent_without_dot_is_a_number():
    assert load_config(overrides=["training.learning_rate=1e-4"]).training.learning_rate == pytest.approx(1e-4)
