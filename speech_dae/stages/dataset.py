"""Stage 02: context patches, train-only normalisation, shuffled splits -> ``datasets/<name>/``.

Frames are stored once per split, patches are addressed by their start frame:

- ``x_<split>.npy``, ``y_<split>.npy``: float32 ``(n_frames, n_bins)``, normalised noisy / clean
  features of every utterance of the split, concatenated (memory-mappable)
- ``windows_<split>.npy``: int64 ``(n_patches,)`` start frames of the ``context``-frame patches,
  shuffled across utterances (a patch never crosses an utterance boundary)
- ``labels_<split>.npy``: float32 ``(n_patches,)`` soft label of each window, 1.0 for patches of
  noise-only recordings (stage 01 ``--noise-only``), 0.0 otherwise; read by the semi-supervised models
- ``utterances_<split>.csv``: id, first frame, n_frames, snr_db, kind of each utterance in the concatenation
- ``norm.npz``: per-bin ``x_mean, x_std, y_mean, y_std`` from the training split only
  (``dataset.normalise``: ``shared`` scales the clean targets with the noisy statistics,
  ``separate`` gives each its own, ``none`` leaves features as they are)
- ``dataset.json``: context, stride, counts, the feature parameters and the source fingerprint

Storing frames and start indices instead of materialised patches keeps the
dataset the size of the features, whatever the context; :class:`~speech_dae.training.batches.PatchSequence`
gathers a batch of patches with one vectorised fancy index.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..artifacts import SPLITS, STAGE01, StagedOutput, fingerprint, read_csv, read_json, save_npy, write_csv, write_json
from ..config import Config
from ..errors import ArtifactError
from ..folders import load_params
from ..framing import Normaliser, patch_starts
from ..mixing import seeded_rng
from ..version import __version__

__all__ = [
    "build_dataset",
    "patch_framing",
    "DatasetSummary",
]

log = logging.getLogger(__name__)


def patch_framing(cfg: Config, feature: str, features_params: dict) -> tuple[int, int]:
    """``(context, stride)`` of the training patches for a feature type.

    Spectral features use ``dataset.context`` and ``dataset.stride`` (frames).
    ``waveform`` features are samples: patches are ``features.chunk_size``
    samples every ``chunk_size // 2`` (the Conv1D audio-restoration design).
    """
    if feature == "waveform":
        chunk = int(features_params["features"].get("chunk_size", cfg.features.chunk_size))
        return chunk, chunk // 2
    return cfg.dataset.context, cfg.dataset.stride


@dataclass
class DatasetSummary:
    out: Path
    info: dict
    up_to_date: bool = False

    def lines(self) -> list[str]:
        if self.up_to_date:
            return [f"{self.out} is up to date (same features and parameters); pass --force to rebuild"]
        c = self.info["splits"]
        parts = "; ".join(
            f"{s}: {c[s]['utterances']} utt, {c[s]['frames']} frames ({c[s]['minutes']:.1f} min), "
            f"{c[s]['patches']} patches"
            for s in SPLITS
        )
        return [f"wrote {self.out}: context {self.info['context']} frames, stride {self.info['stride']}; {parts}"]


def build_dataset(
    cfg: Config, *, features: str | Path, out: str | Path, force: bool = False, progress: bool = True
) -> DatasetSummary:
    """Run stage 02 on a stage-01 folder.

    Parameters
    ----------
    cfg : Config
        Uses ``dataset.context``, ``dataset.stride``, ``dataset.normalise`` and ``seed``.
    features : str or Path
        A ``features/<name>/`` folder written by stage 01.
    out : str or Path
        Output folder, e.g. ``datasets/logmag``.

    Raises
    ------
    ArtifactError
        If ``features`` is missing or incomplete (names stage 01), or ``out`` holds
        another configuration and ``force`` is false.
    """
    t0 = time.perf_counter()
    features = Path(features)
    params = load_params(features)
    rows = read_csv(features / "manifest.csv", stage_hint=STAGE01)
    missing = [
        r["id"] for r in rows for kind in ("noisy", "clean") if not (features / kind / f"{r['id']}.npy").exists()
    ]
    if missing:
        raise ArtifactError(
            f"{features} is incomplete: {len(missing)} feature files listed in manifest.csv are "
            f"missing (first: {missing[0]}); re-run {STAGE01} with --force"
        )
    d = cfg.dataset
    context, stride = patch_framing(cfg, params["feature"], params)
    fp = fingerprint(__version__, params["fingerprint"], cfg.to_dict()["dataset"], cfg.seed)
    staged = StagedOutput(out, fp, marker="dataset.json", force=force)
    if staged.is_current():
        return DatasetSummary(Path(out), read_json(Path(out) / "dataset.json"), up_to_date=True)
    work = staged.begin()  # a resumed .partial folder comes back without a killed run's temporaries
    by_split = {s: [r for r in rows if r["split"] == s] for s in SPLITS}
    if not by_split["train"]:
        raise ArtifactError(f"{features}/manifest.csv has no training utterance; re-run {STAGE01} with more data")
    frame_rate = float(params["frame_rate_hz"])
    raw: dict[str, tuple[np.ndarray, np.ndarray, list]] = {}
    too_short = []
    for split in SPLITS:
        xs, ys, utts, start = [], [], [], 0
        for r in tqdm(by_split[split], desc=f"02 {split}", unit="utt", disable=not progress):
            x = np.load(features / "noisy" / f"{r['id']}.npy")
            y = np.load(features / "clean" / f"{r['id']}.npy")
            if x.shape != y.shape:
                raise ArtifactError(
                    f"{features}: noisy and clean features of {r['id']} differ in shape "
                    f"({x.shape} vs {y.shape}); re-run {STAGE01} with --force"
                )
            if x.shape[0] < context:
                too_short.append(r["id"])
                continue
            xs.append(x), ys.append(y)
            utts.append(
                {
                    "id": r["id"],
                    "start": start,
                    "n_frames": x.shape[0],
                    "snr_db": r["snr_db"],
                    "kind": r.get("kind") or "mixture",
                }
            )
            start += x.shape[0]
        n_bins = int(params["n_bins"])
        raw[split] = (
            np.concatenate(xs) if xs else np.zeros((0, n_bins), np.float32),
            np.concatenate(ys) if ys else np.zeros((0, n_bins), np.float32),
            utts,
        )
    if too_short:
        log.warning(
            "%d utterances are shorter than context=%d frames and were left out (first: %s)",
            len(too_short),
            context,
            too_short[0],
        )
    if raw["train"][0].shape[0] == 0:
        raise ArtifactError(
            f"every training utterance is shorter than the context of {context} frames; "
            "lower --context (or features.chunk_size for waveform)"
        )
    norm = (
        Normaliser.identity(raw["train"][0].shape[1])
        if d.normalise == "none"
        else Normaliser.fit(raw["train"][0], raw["train"][1], shared=d.normalise == "shared")
    )
    norm.save(work / "norm.npz")
    splits_info = {}
    for split in SPLITS:
        x, y, utts = raw[split]
        starts = [u["start"] + patch_starts(u["n_frames"], context, stride) for u in utts]
        windows = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        labels = (
            np.concatenate(
                [np.full(w.size, float(u["kind"] == "noise_only"), np.float32) for w, u in zip(starts, utts)]
            )
            if starts
            else np.zeros(0, np.float32)
        )
        if split != "test":
            order = seeded_rng(cfg.seed, "windows", split).permutation(windows.size)
            windows, labels = windows[order], labels[order]
        save_npy(work / f"x_{split}.npy", norm.norm_x(x))
        save_npy(work / f"y_{split}.npy", norm.norm_y(y))
        save_npy(work / f"windows_{split}.npy", windows)
        save_npy(work / f"labels_{split}.npy", labels)
        write_csv(work / f"utterances_{split}.csv", utts, ("id", "start", "n_frames", "snr_db", "kind"))
        splits_info[split] = {
            "utterances": len(utts),
            "frames": int(x.shape[0]),
            "patches": int(windows.size),
            "minutes": round(x.shape[0] / frame_rate / 60, 3),
            "noise_only_patches": int(labels.sum()),
        }
    info = {
        "stage": "02_build_dataset",
        "fingerprint": fp,
        "source": str(features),
        "source_fingerprint": params["fingerprint"],
        "context": context,
        "stride": stride,
        "normalise": d.normalise,
        "n_bins": int(params["n_bins"]),
        "feature": params["feature"],
        "split_rule": "by utterance (stage 01 manifest: val = held-out training utterances and noise recordings, "
        "test = test/ folder); patches shuffled across utterances",
        "splits": splits_info,
        "clean_targets": bool(params.get("clean_references", True)),
        "labels": "labels_<split>.npy: soft label per patch, 1.0 for noise-only recordings (semi-supervised models)",
        "left_out_short": len(too_short),
        "seed": cfg.seed,
        "features_params": params,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_json(work / "dataset.json", info)
    staged.commit()
    return DatasetSummary(Path(out), info)
