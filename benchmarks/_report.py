"""Shared helpers of the benchmark scripts: write one section of BENCHMARKS.md in place.

Each script owns the text between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``
and replaces only that, so the scripts can be re-run in any order.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "benchmarks" / "BENCHMARKS.md"


def machine_line() -> str:
    """One line naming the machine, the date and the commit the figures come from."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    import datetime

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{platform.processor() or platform.machine()}, {cores} cores, Python {sys.version.split()[0]}, "
        f"commit {commit}, {datetime.date.today().isoformat()}"
    )


def update_section(name: str, text: str, path: Path = BENCHMARKS_MD) -> Path:
    """Replace the ``name`` section of ``path`` with ``text`` (appended when the markers are absent)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    old = path.read_text(encoding="utf-8") if path.exists() else "# speech-dae benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else old.rstrip() + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, path)
    return path


#: Folders of a work tree: a path through one of them is written ``WORK/<folder>/...``.
WORK_FOLDERS = ("features", "datasets", "models", "model_logs", "reports", "outputs", "images")


def portable(text: str, paths: list[str] | None = None) -> str:
    """``text`` with this machine's folders replaced by names a reader can map to their own.

    Every absolute path among ``paths`` (default: the script's arguments) becomes: ``CORPUS`` for a
    corpus (a folder with ``train/`` and ``test/``), a path relative to the repository for one inside it,
    ``WORK/...`` from the first work-tree folder on (:data:`WORK_FOLDERS`), else ``WORK`` for the folder
    itself; the prefixes found are replaced wherever else they occur in ``text``.
    """
    labels: dict[str, str] = {}
    for arg in paths if paths is not None else sys.argv[1:]:
        p = Path(arg)
        if not p.is_absolute():
            continue
        if (p / "train").is_dir() and (p / "test").is_dir():
            labels[str(p)] = "CORPUS"
        elif p.resolve().is_relative_to(ROOT):
            labels[str(p)] = str(p.resolve().relative_to(ROOT)) or "."
        else:
            parts = p.parts
            cut = next((i for i, part in enumerate(parts) if part in WORK_FOLDERS), None)
            root = Path(*parts[:cut]) if cut else p
            labels[str(root)] = "WORK"
    for old in sorted(labels, key=len, reverse=True):
        text = text.replace(old, labels[old])
    return text


def publish(name: str, text: str, *, write: bool = True) -> None:
    """Print a benchmark's ``text`` and, when ``write``, replace its ``name`` section of BENCHMARKS.md
    (machine folders replaced by ``CORPUS`` / ``WORK``, :func:`portable`)."""
    text = portable(text)
    print(text)
    if write:
        print(f"wrote the {name} section of {update_section(name, text)}")
