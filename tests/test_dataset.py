"""Stage 02: patch starts, patch gathering, train-only normalisation, utterance-safe windows, split hygiene."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from speech_dae.errors import ArtifactError
from speech_dae.folders import load_dataset
from speech_dae.framing import Normaliser, gather_patches, patch_starts
from speech_dae.stages.dataset import build_dataset

SPLITS = ("train", "val", "test")


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# -------------------------------------------------------------- patch_starts
@pytest.mark.parametrize(
    "n_frames, context, stride",
    [
        (11, 11, 3),
        (12, 11, 3),
        (50, 11, 3),
        (50, 11, 1),
        (50, 11, 11),
        (100, 7, 5),
        (33, 1, 1),
        (34, 4, 4),
        (1000, 11, 3),
    ],
)
def test_patch_starts_cover_every_frame_and_end_flush(n_frames, context, stride):
    s = patch_starts(n_frames, context, stride)
    assert s.dtype == np.int64
    assert s[0] == 0 and s[-1] == n_frames - context
    assert np.all(np.diff(s) > 0) and np.all(np.diff(s) <= stride)
    np.testing.assert_array_equal(s[:-1], np.arange(0, n_frames - context + 1, stride)[: len(s) - 1])
    covered = np.zeros(n_frames, bool)
    for st in s:
        covered[st : st + context] = True
    assert covered.all()


def test_patch_starts_empty_when_too_short():
    assert patch_starts(5, 11, 3).size == 0
    np.testing.assert_array_equal(patch_starts(11, 11, 3), [0])


@pytest.mark.parametrize("n_frames, context, stride", [(50, 3, 3), (100, 11, 11), (101, 11, 7), (12, 11, 1)])
def test_patch_starts_cover_every_frame_when_stride_is_at_most_context(n_frames, context, stride):
    s = patch_starts(n_frames, context, stride)
    covered = np.zeros(n_frames, bool)
    for st in s:
        covered[st : st + context] = True
    assert covered.all(), f"uncovered frames {np.flatnonzero(~covered)}"


def test_patch_starts_with_a_stride_larger_than_context_skips_frames_as_documented():
    s = patch_starts(50, 3, 5)
    np.testing.assert_array_equal(s[:3], [0, 5, 10])
    assert s[-1] == 47


# ------------------------------------------------------------ gather_patches
def test_gather_patches_shapes_and_content(tmp_path):
    frames = np.arange(40 * 6, dtype=np.float32).reshape(40, 6)
    starts = np.array([0, 7, 29, 3])
    p = gather_patches(frames, starts, 11)
    assert p.shape == (4, 11, 6) and p.dtype == np.float32
    for k, st in enumerate(starts):
        np.testing.assert_array_equal(p[k], frames[st : st + 11])
    np.save(tmp_path / "f.npy", frames)
    mm = np.load(tmp_path / "f.npy", mmap_mode="r")
    np.testing.assert_array_equal(gather_patches(mm, starts, 11), p)
    assert gather_patches(frames, np.zeros(0, np.int64), 11).shape == (0, 11, 6)


# ----------------------------------------------------------------- Normaliser
def test_normaliser_round_trip_floor_and_io(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(3, 2, (500, 4)).astype(np.float32)
    x[:, 3] = 1.0  # constant bin -> std floored
    y = rng.normal(-1, 0.5, (500, 4)).astype(np.float32)
    n = Normaliser.fit(x, y)
    np.testing.assert_allclose(n.x_mean, x.mean(0), rtol=1e-5, atol=1e-5)
    assert n.x_std[3] == pytest.approx(1e-3)
    z = n.norm_x(x)
    np.testing.assert_allclose(z[:, :3].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(z[:, :3].std(0), 1, atol=1e-3)
    np.testing.assert_allclose(n.denorm_y(n.norm_y(y)), y, atol=1e-4)
    n.save(tmp_path / "norm.npz")
    back = Normaliser.load(tmp_path / "norm.npz")
    for k in ("x_mean", "x_std", "y_mean", "y_std"):
        np.testing.assert_array_equal(getattr(back, k), getattr(n, k))
    ident = Normaliser.identity(4)
    np.testing.assert_array_equal(ident.norm_x(x), x)
    with pytest.raises(ArtifactError, match="02_build_dataset.py"):
        Normaliser.load(tmp_path / "missing.npz")


# --------------------------------------------------------- built dataset
def _train_frames(built, kind):
    rows = [r for r in _rows(built.features / "manifest.csv") if r["split"] == "train"]
    assert rows
    return np.concatenate([np.load(built.features / kind / f"{r['id']}.npy") for r in rows]).astype(np.float64)


def test_norm_stats_come_from_the_training_split_only(built):
    x_train, y_train = _train_frames(built, "noisy"), _train_frames(built, "clean")
    with np.load(built.dataset / "norm.npz") as z:
        x_mean, x_std, y_mean, y_std = (z[k] for k in ("x_mean", "x_std", "y_mean", "y_std"))
    np.testing.assert_allclose(x_mean, x_train.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x_std, np.maximum(x_train.std(0), 1e-3), rtol=1e-4, atol=1e-5)
    # the tiny config's mode, "shared": the clean targets are scaled with the noisy statistics
    assert built.cfg.dataset.normalise == "shared"
    np.testing.assert_array_equal(y_mean, x_mean)
    np.testing.assert_array_equal(y_std, x_std)
    assert not np.allclose(y_mean, y_train.mean(0), atol=1e-2)  # which differ from the targets' own


@pytest.mark.parametrize("mode", ["separate", "none"])
def test_the_other_normalisation_modes_give_what_they_say(built, mode, tmp_path):
    """Issue 16 (9): "separate" gives the targets their own training statistics; "none" the identity."""
    from speech_dae.stages.dataset import build_dataset

    out = tmp_path / mode
    build_dataset(built.cfg.replace(**{"dataset.normalise": mode}), features=built.features, out=out, progress=False)
    x_train, y_train = _train_frames(built, "noisy"), _train_frames(built, "clean")
    norm = Normaliser.load(out / "norm.npz")
    if mode == "separate":
        np.testing.assert_allclose(norm.x_mean, x_train.mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(norm.y_mean, y_train.mean(0), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(norm.y_std, np.maximum(y_train.std(0), 1e-3), rtol=1e-4, atol=1e-5)
        assert not np.allclose(norm.y_mean, norm.x_mean, atol=1e-2)
    else:
        x = np.load(out / "x_train.npy")
        utts = _rows(out / "utterances_train.csv")
        first = np.load(built.features / "noisy" / f"{utts[0]['id']}.npy")
        np.testing.assert_array_equal(x[: first.shape[0]], first)  # stored as they are
    # the check above can tell leakage apart: the statistics of all splits differ
    rows = _rows(built.features / "manifest.csv")
    x_all = np.concatenate([np.load(built.features / "noisy" / f"{r['id']}.npy") for r in rows]).astype(np.float64)
    assert not np.allclose(x_all.mean(0), x_train.mean(0), atol=1e-3)


def test_stored_frames_are_the_normalised_features_of_each_split(built):
    norm = Normaliser.load(built.dataset / "norm.npz")
    for split in SPLITS:
        utts = _rows(built.dataset / f"utterances_{split}.csv")
        x = np.load(built.dataset / f"x_{split}.npy")
        y = np.load(built.dataset / f"y_{split}.npy")
        assert x.dtype == y.dtype == np.float32 and x.shape == y.shape
        for u in utts:
            a, n = int(u["start"]), int(u["n_frames"])
            np.testing.assert_allclose(
                x[a : a + n], norm.norm_x(np.load(built.features / "noisy" / f"{u['id']}.npy")), atol=1e-5
            )
            np.testing.assert_allclose(
                y[a : a + n], norm.norm_y(np.load(built.features / "clean" / f"{u['id']}.npy")), atol=1e-5
            )
        assert sum(int(u["n_frames"]) for u in utts) == x.shape[0]


def test_windows_never_cross_utterance_boundaries(built):
    info = json.loads((built.dataset / "dataset.json").read_text())
    context, stride = info["context"], info["stride"]
    for split in SPLITS:
        utts = _rows(built.dataset / f"utterances_{split}.csv")
        w = np.load(built.dataset / f"windows_{split}.npy")
        assert w.dtype == np.int64
        bounds = np.array([(int(u["start"]), int(u["start"]) + int(u["n_frames"])) for u in utts]).reshape(-1, 2)
        owner = np.searchsorted(bounds[:, 0], w, side="right") - 1
        assert np.all(owner >= 0)
        assert np.all(w + context <= bounds[owner, 1]), f"{split}: a patch crosses an utterance boundary"
        expected = (
            np.concatenate([a + patch_starts(b - a, context, stride) for a, b in bounds])
            if len(bounds)
            else np.zeros(0, np.int64)
        )
        np.testing.assert_array_equal(np.sort(w), np.sort(expected))
        assert info["splits"][split]["patches"] == w.size
        assert info["splits"][split]["utterances"] == len(utts)
    train_w = np.load(built.dataset / "windows_train.npy")
    assert not np.all(np.diff(train_w) > 0), "training windows are shuffled across utterances"


def test_splits_hold_disjoint_utterances_and_noises(built):
    rows = _rows(built.features / "manifest.csv")
    by = {s: [r for r in rows if r["split"] == s] for s in SPLITS}
    assert all(by[s] for s in SPLITS), {s: len(v) for s, v in by.items()}
    clean = {s: {r["clean_file"] for r in by[s]} for s in SPLITS}
    noise = {s: {r["noise_file"] for r in by[s]} for s in SPLITS}
    assert not clean["train"] & clean["val"] and not clean["train"] & clean["test"] and not clean["val"] & clean["test"]
    assert not noise["train"] & noise["val"], "validation noises must be held out from training"
    assert all("/test/" in f for f in clean["test"] | noise["test"])
    assert all("/train/" in f for s in ("train", "val") for f in clean[s] | noise[s])
    ids = {s: {u["id"] for u in _rows(built.dataset / f"utterances_{s}.csv")} for s in SPLITS}
    assert ids["train"] == {r["id"] for r in by["train"]}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"])
    # every clean utterance is mixed once per SNR
    snrs = sorted(float(s) for s in built.cfg.mixing.snr_db)
    for s in SPLITS:
        for c in clean[s]:
            assert sorted(float(r["snr_db"]) for r in by[s] if r["clean_file"] == c) == snrs


def test_dataset_json_records_the_contract(built):
    info = load_dataset(built.dataset)
    params = json.loads((built.features / "params.json").read_text())
    assert info["source_fingerprint"] == params["fingerprint"]
    assert info["n_bins"] == params["n_bins"] == np.load(built.dataset / "x_train.npy").shape[1]
    assert info["context"] == built.cfg.dataset.context and info["stride"] == built.cfg.dataset.stride
    for split in SPLITS:
        assert info["splits"][split]["frames"] == np.load(built.dataset / f"x_{split}.npy").shape[0]


def test_rebuilding_with_the_same_inputs_is_up_to_date(built):
    summary = build_dataset(built.cfg, features=built.features, out=built.dataset, progress=False)
    assert summary.up_to_date
    assert "up to date" in summary.lines()[0]


def test_other_configuration_needs_force(built, tmp_path):
    import shutil

    out = tmp_path / "ds"
    shutil.copytree(built.dataset, out)
    cfg = built.cfg.replace(**{"dataset.context": 5})
    with pytest.raises(ArtifactError, match="--force"):
        build_dataset(cfg, features=built.features, out=out, progress=False)
    summary = build_dataset(cfg, features=built.features, out=out, force=True, progress=False)
    assert summary.info["context"] == 5
    assert np.load(out / "windows_train.npy").size > np.load(built.dataset / "windows_train.npy").size
