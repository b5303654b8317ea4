"""Which files stages 04 and 05 work on: the test split of a stage-01 manifest, or the user's folders.

Both return :class:`Item` lists, so denoising (04) and scoring (05) see the
same files in the same order under the same ids.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path
from typing import NamedTuple

from .artifacts import STAGE01, read_csv
from .audio import list_audio
from .errors import ArtifactError, AudioError

__all__ = ["Item", "manifest_items", "folder_items", "measured_snr", "snr_bin"]

log = logging.getLogger(__name__)


class Item(NamedTuple):
    """One noisy file to process.

    Attributes
    ----------
    uid : str
        Id used for output names (the manifest id, or the relative path joined by ``-``).
    noisy : Path
    clean : Path or None
        Its clean reference, when known.
    snr_db : str
        Input SNR in dB as written in the manifest; ``""`` for the user's own files.
    """

    uid: str
    noisy: Path
    clean: Path | None
    snr_db: str


def manifest_items(features_dir: str | Path, split: str = "test") -> list[Item]:
    """The mixtures of one split of a stage-01 folder, with their references and SNRs.

    Raises
    ------
    ArtifactError
        If ``features_dir/manifest.csv`` is missing or lists no utterance of ``split``.
    """
    fdir = Path(features_dir)
    rows = [r for r in read_csv(fdir / "manifest.csv", stage_hint=STAGE01) if r["split"] == split]
    if not rows:
        hint = (
            (
                "; features built without clean references (01 --noisy --noise-only) have no test split: pass "
                "--input NOISY_FILE_OR_DIR (and --clean DIR to score)"
            )
            if split == "test"
            else ""
        )
        raise ArtifactError(f"{fdir}/manifest.csv lists no {split} utterance{hint}")
    return [
        Item(r["id"], fdir / "mixtures" / f"{r['id']}.wav", fdir / "references" / f"{r['id']}.wav", r["snr_db"])
        for r in rows
    ]


def measured_snr(features_dir: str | Path) -> bool:
    """Whether the SNRs in a stage-01 manifest were measured per recording (paired ``--noisy/--clean``
    data: every file its own value) rather than chosen from ``mixing.snr_db`` (mixtures)."""
    path = Path(features_dir) / "manifest.csv"
    return path.is_file() and any(r["kind"] == "paired" for r in read_csv(path, stage_hint=STAGE01))


def snr_bin(snr_db: str, width_db: float) -> str:
    """The bin of a measured SNR: the nearest multiple of ``width_db``, as a label (``"3.7"``, 5 -> ``"5"``).

    Parameters
    ----------
    snr_db : str
        An SNR in dB as written in a manifest; ``""`` (unknown) stays ``""``.
    width_db : float > 0
        Bin width in dB; bins are centred on its multiples (5 dB: [-2.5, 2.5) -> 0, [2.5, 7.5) -> 5).

    Returns
    -------
    str
    """
    if snr_db in ("", None):
        return ""
    centre = math.floor(float(snr_db) / width_db + 0.5) * width_db
    return f"{centre + 0.0:g}"


def folder_items(inputs: str | Path, clean: str | Path | None = None) -> list[Item]:
    """A noisy file or folder (recursive), with references matched by relative path under ``clean``.

    A noisy file without a reference gets ``clean=None`` and a logged warning. Ids are the
    relative path without extension, joined by ``-``; files that differ only by their
    extension (``a.wav``, ``a.flac``) get it appended (``a-wav``, ``a-flac``). Of several
    references with the same relative path, the first in sorted order is used (warning).

    Raises
    ------
    AudioError
        If ``inputs`` does not exist or holds no audio file.
    """
    inputs = Path(inputs)
    if inputs.is_file():
        files, root = [inputs], inputs.parent
    elif inputs.is_dir():
        files, root = list_audio(inputs), inputs
    else:
        raise AudioError(f"--input {inputs} is neither an audio file nor a folder")
    if not files:
        raise AudioError(f"--input {inputs} holds no WAV/FLAC/OGG file")
    refs: dict[Path, Path] = {}
    if clean is not None:
        clean = Path(clean)
        if not clean.exists():
            raise AudioError(f"--clean {clean} does not exist")
        for p in list_audio(clean) if clean.is_dir() else [clean]:
            rel = p.relative_to(clean).with_suffix("") if clean.is_dir() else Path(clean.stem)
            if rel in refs:
                log.warning(
                    "clean references %s and %s share the relative path %s; %s is used",
                    refs[rel].name,
                    p.name,
                    rel,
                    refs[rel].name,
                )
            else:
                refs[rel] = p
    uids = Counter("-".join(f.relative_to(root).with_suffix("").parts) for f in files)
    out = []
    for f in files:
        rel = f.relative_to(root).with_suffix("")
        ref = refs.get(rel)
        if clean is not None and ref is None:
            log.warning("no clean reference for %s under %s; it will not be scored", f, clean)
        uid = "-".join(rel.parts)
        if uids[uid] > 1:  # a.wav and a.flac: both kept, told apart by their extension
            uid = f"{uid}-{f.suffix.lstrip('.')}"
        out.append(Item(uid, f, ref, ""))
    return out
