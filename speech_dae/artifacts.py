"""Artifacts shared by the stages: atomic writes, JSON/CSV/NumPy files, fingerprints, stage checks.

Every stage builds its output folder under a ``<out>.partial`` staging name
and moves it into place with ``os.replace`` only when it is complete, so a
folder under its real name is always finished. Files inside are written to a
temporary name and renamed too, so an interrupted stage can resume from the
staging folder: work already there is kept when the fingerprint matches.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ArtifactError

__all__ = [
    "atomic_path",
    "write_json",
    "read_json",
    "save_npy",
    "write_csv",
    "read_csv",
    "fingerprint",
    "file_sha256",
    "StagedOutput",
    "clear_temporaries",
    "require_files",
    "package_versions",
    "STAGE01",
    "STAGE02",
    "STAGE03",
    "STAGE04",
    "STAGE05",
    "STAGE06",
    "SPLITS",
]

#: The numbered scripts, as error messages name them ("re-run 02_build_dataset.py").
STAGE01 = "01_extract_features.py"
STAGE02 = "02_build_dataset.py"
STAGE03 = "03_train_autoencoder.py"
STAGE04 = "04_reconstruct.py"
STAGE05 = "05_evaluate.py"
STAGE06 = "06_tune.py"
#: The splits of every stage-01 and stage-02 folder, in this order.
SPLITS = ("train", "val", "test")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``.

    The temporary name keeps ``path``'s suffix so format-sniffing writers
    (soundfile, NumPy, Keras) behave. On error the temporary file is removed
    and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_json(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n", encoding="utf-8")
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_json(path: str | Path, *, stage_hint: str = "") -> dict:
    """Read a JSON artifact; a missing or corrupt file raises :class:`ArtifactError`."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path} is missing{_hint(stage_hint)}") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is corrupt ({exc.msg}){_hint(stage_hint)}") from None


def _hint(stage_hint: str) -> str:
    return f"; run {stage_hint} first" if stage_hint else ""


def save_npy(path: str | Path, array: np.ndarray) -> Path:
    """Save one array as ``.npy`` atomically (memory-mappable with ``np.load(mmap_mode='r')``)."""
    with atomic_path(path) as tmp:
        np.save(tmp, array, allow_pickle=False)
    return Path(path)


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], fieldnames: Sequence[str]) -> Path:
    """Write ``rows`` as CSV with a header, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(fieldnames), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return Path(path)


def read_csv(path: str | Path, *, stage_hint: str = "") -> list[dict[str, str]]:
    """Read a CSV artifact as a list of dicts (all values are strings)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} is missing{_hint(stage_hint)}")
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def fingerprint(*parts: Any) -> str:
    """Stable 16-hex-digit SHA-1 of JSON-serialisable ``parts``."""
    blob = json.dumps(parts, sort_keys=True, default=_json_default).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB pieces)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            h.update(piece)
    return h.hexdigest()


def clear_temporaries(folder: str | Path) -> int:
    """Remove what a killed run's half-done atomic writes left under ``folder``; returns how many files.

    :func:`atomic_path` writes ``.<stem>.<random>.tmp<suffix>`` beside its target and renames it
    when complete; a run killed in between leaves the temporary behind, and a re-run that keeps the
    folder (a resumed ``.partial`` folder, or an output folder rewritten in place) would otherwise
    carry it into the result. A missing ``folder`` removes nothing.
    """
    folder = Path(folder)
    stale = [p for p in folder.rglob(".*.tmp*") if p.is_file()] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def require_files(folder: str | Path, names: Iterable[str], *, stage_hint: str) -> Path:
    """Check that ``folder`` exists and holds every file in ``names``.

    Raises
    ------
    ArtifactError
        Naming the first missing file and the stage to re-run.
    """
    folder = Path(folder)
    if not folder.is_dir():
        partial = Path(str(folder) + ".partial")
        extra = " (an interrupted run left it half-built)" if partial.exists() else ""
        raise ArtifactError(f"{folder} does not exist{extra}; run {stage_hint} first")
    for name in names:
        if not (folder / name).exists():
            raise ArtifactError(f"{folder} is incomplete: {name} is missing; re-run {stage_hint}")
    return folder


class StagedOutput:
    """A stage's output folder, built under ``<out>.partial`` and moved into place when done.

    Parameters
    ----------
    out : str or Path
        The final folder.
    fingerprint : str
        Identifies the inputs and parameters; stored in ``marker`` inside the folder.
    marker : str
        JSON file (inside the folder) that records ``"fingerprint"``.
    force : bool
        Rebuild even when ``out`` already holds a run with this fingerprint, and
        replace a run of another configuration.

    Raises
    ------
    ArtifactError
        If ``out`` holds a finished run of a *different* configuration and
        ``force`` is false.
    """

    def __init__(self, out: str | Path, fingerprint: str, *, marker: str, force: bool = False):
        self.out = Path(out)
        self.partial = Path(str(self.out) + ".partial")
        self.fingerprint = fingerprint
        self.marker = marker
        self.force = force

    def existing_fingerprint(self) -> str | None:
        try:
            return json.loads((self.out / self.marker).read_text(encoding="utf-8")).get("fingerprint")
        except (FileNotFoundError, json.JSONDecodeError, AttributeError):
            return None

    def is_current(self) -> bool:
        """True when ``out`` is a finished run with the same fingerprint (and not ``force``)."""
        return not self.force and self.existing_fingerprint() == self.fingerprint

    def begin(self) -> Path:
        """Return the staging folder, keeping earlier work there when its fingerprint matches.

        A kept folder is cleared of the temporaries a killed run's atomic writes left
        (:func:`clear_temporaries`), so they never reach the committed output.
        """
        old = self.existing_fingerprint()
        if self.out.exists() and old != self.fingerprint and not self.force:
            raise ArtifactError(
                f"{self.out} already holds a run of another configuration (fingerprint {old}); "
                "pass --force to replace it, or choose another output name"
            )
        staged = None
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, AttributeError):
            staged = json.loads((self.partial / ".stage.json").read_text(encoding="utf-8")).get("fingerprint")
        if self.partial.exists() and (staged != self.fingerprint or self.force):
            shutil.rmtree(self.partial)
        else:
            clear_temporaries(self.partial)
        self.partial.mkdir(parents=True, exist_ok=True)
        write_json(self.partial / ".stage.json", {"fingerprint": self.fingerprint})
        return self.partial

    def commit(self) -> Path:
        """Move the finished staging folder onto ``out`` (replacing an old run)."""
        (self.partial / ".stage.json").unlink(missing_ok=True)
        if self.out.exists():
            trash = Path(str(self.out) + ".old")
            if trash.exists():
                shutil.rmtree(trash)
            os.replace(self.out, trash)
            os.replace(self.partial, self.out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.partial, self.out)
        return self.out


def package_versions() -> dict[str, str]:
    """Versions of speech-dae and the libraries whose behaviour shapes the artifacts."""
    from importlib import metadata

    out = {}
    for name in (
        "speech-dae",
        "numpy",
        "librosa",
        "soundfile",
        "python_speech_features",
        "keras",
        "tensorflow-cpu",
        "tensorflow",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out
