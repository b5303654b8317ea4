"""Readers of the stage folders: the contract between the stages, read in one place.

Stage 01 writes ``features/<name>/`` (:func:`load_params`), stage 02
``datasets/<name>/`` (:func:`load_dataset`), stage 03 ``models/<run>/``
(:mod:`speech_dae.runinfo`). Later stages and the components find what an
earlier stage wrote through these functions: the stage-01 audio behind a
dataset (:func:`referenced_pairs`) and the test files of the features a run
was trained on (:func:`trained_on_items`). Each raises
:class:`~speech_dae.errors.ArtifactError` naming the stage to re-run.
"""

from __future__ import annotations

from pathlib import Path

from .artifacts import SPLITS, STAGE01, STAGE02, read_csv, read_json, require_files
from .errors import ArtifactError
from .inputs import Item, manifest_items

__all__ = ["load_params", "split_notes", "load_dataset", "referenced_pairs", "trained_on_items"]


def load_params(features_dir: str | Path) -> dict:
    """Read and check ``features/<name>/params.json`` of stage 01.

    Returns
    -------
    dict
        The parameters stage 01 recorded (sample rate, feature framing, SNRs, fingerprint, ...).

    Raises
    ------
    ArtifactError
        If ``params.json`` or ``manifest.csv`` is missing or unreadable (names stage 01).
    """
    folder = require_files(features_dir, ["params.json", "manifest.csv"], stage_hint=STAGE01)
    return read_json(Path(folder) / "params.json", stage_hint=STAGE01)


def split_notes(features_dir: str | Path) -> list[str]:
    """Lines for a ``summary.md`` on how stage 01 split a features folder: the noise recordings its test or
    validation split shares with training (``--share-noise``), and whether speech was held out by speaker.

    Parameters
    ----------
    features_dir : str or Path
        A stage-01 folder.

    Returns
    -------
    list of str
        Empty for a folder without ``params.json`` (nothing to say), or written before the split was recorded.
    """
    path = Path(features_dir) / "params.json"
    if not path.is_file():
        return []
    inputs = read_json(path, stage_hint=STAGE01).get("inputs", {})
    notes = []
    shared = inputs.get("noise_shared") or []
    if "test" in shared:
        notes.append(
            f"**Warning: the test mixtures of {features_dir} reuse the noise recordings of training** (stage 01 "
            "`--share-noise`: too few recordings for each split to have its own), so these scores include noises "
            "the models heard in training."
        )
    elif shared:
        notes.append(f"The {' and '.join(shared)} split of {features_dir} reuses the training noise recordings.")
    rule = inputs.get("split")
    if rule:
        held = ", ".join(f"{s} by {rule[s]}" for s in ("test", "val") if s in rule)
        n = rule.get("speakers", {})
        notes.append(f"Stage 01 split: {held} (speakers: " + ", ".join(f"{s} {k}" for s, k in n.items()) + ").")
    return notes


def load_dataset(folder: str | Path, *, check_source: bool = True) -> dict:
    """Read ``dataset.json`` of a stage-02 folder and check it is complete and current.

    Raises
    ------
    ArtifactError
        If files are missing (names stage 02), or the features it was built from
        changed since (stale: names stage 02 to re-run).
    """
    names = ["dataset.json", "norm.npz"] + [f"{k}_{s}.npy" for s in SPLITS for k in ("x", "y", "windows")]
    folder = require_files(folder, names, stage_hint=STAGE02)
    info = read_json(folder / "dataset.json", stage_hint=STAGE02)
    source = Path(info.get("source", ""))
    if check_source and (source / "params.json").is_file():
        current = read_json(source / "params.json").get("fingerprint")
        if current != info.get("source_fingerprint"):
            raise ArtifactError(
                f"{folder} is stale: {source} was rebuilt since (fingerprint {current} != "
                f"{info.get('source_fingerprint')}); re-run {STAGE02} --features {source} "
                f"--out {folder} --force"
            )
    return info


def referenced_pairs(dataset: Path, info: dict, split: str) -> list[tuple[str, Path, Path]]:
    """``(id, mixture, reference)`` WAV paths of every ``split`` utterance of a stage-02 dataset that
    has a clean reference (kinds ``mixture`` and ``paired``), in the stage-01 folder it was built from.
    The files may be missing (the stage-01 folder deleted): the callers check."""
    source = Path(info.get("source", ""))
    path = dataset / f"utterances_{split}.csv"
    rows = read_csv(path) if path.is_file() else []
    return [
        (r["id"], source / "mixtures" / f"{r['id']}.wav", source / "references" / f"{r['id']}.wav")
        for r in rows
        if (r.get("kind") or "mixture") in ("mixture", "paired")
    ]


def trained_on_items(features_dir: str | Path, *, run: str, instead: str) -> list[Item]:
    """The test files of the stage-01 folder a run was trained from (``run.json`` ``features_dir``).

    Parameters
    ----------
    features_dir : str or Path
        The folder recorded in the run.
    run : str
        Run name, for the message.
    instead : str
        What the user can pass instead, e.g. ``"--input WAV_OR_DIR (and --clean DIR to score)"``.

    Returns
    -------
    list of :class:`~speech_dae.inputs.Item`

    Raises
    ------
    ArtifactError
        If that folder or its ``manifest.csv`` is gone (the message says what to pass instead).
    """
    fdir = Path(features_dir)
    if not (fdir / "manifest.csv").is_file():
        raise ArtifactError(
            f"the features folder {run} was trained from ({fdir}) is gone, so there are no default test "
            f"mixtures; pass {instead}"
        )
    return manifest_items(fdir)
