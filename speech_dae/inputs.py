"""Which files stages 04 and 05 work on: the test split of a stage-01 manifest, or the user's folders.

Both return :class:`Item` lists, so denoising (04) and scoring (05) see the
same files in the same order under the same ids.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

from .artifacts import read_csv
from .audio import list_audio
from .errors import ArtifactError, AudioError

__all__ = ["Item", "manifest_items", "folder_items"]

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
    rows = [r for r in read_csv(fdir / "manifest.csv", stage_hint="01_extract_features.py") if r["split"] == split]
    if not rows:
        raise ArtifactError(f"{fdir}/manifest.csv lists no {split} utterance")
    return [Item(r["id"], fdir / "mixtures" / f"{r['id']}.wav", fdir / "references" / f"{r['id']}.wav", r["snr_db"])
            for r in rows]


def folder_items(inputs: str | Path, clean: str | Path | None = None) -> list[Item]:
    """A noisy file or folder (recursive), with references matched by relative path under ``clean``.

    A noisy file without a reference gets ``clean=None`` and a logged warning.

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
        refs = {p.relative_to(clean).with_suffix(""): p for p in list_audio(clean)} if clean.is_dir() else \
            {Path(clean.stem): clean}
    out = []
    for f in files:
        rel = f.relative_to(root).with_suffix("")
        ref = refs.get(rel)
        if clean is not None and ref is None:
            log.warning("no clean reference for %s under %s; it will not be scored", f, clean)
        out.append(Item("-".join(rel.parts), f, ref, ""))
    return out
