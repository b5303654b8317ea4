"""The package's layering (docs/architecture.md): no import circle, no upward import, no private import.

Every ``import`` of every module is read with :mod:`ast`, function-level ones
included (a lazy import still ties two modules together).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "speech_dae"

#: Layer of each module, by dotted-name prefix (longest prefix wins). A module imports only its layer or lower ones.
LAYERS = {
    "speech_dae.version": 0,
    "speech_dae.errors": 0,
    "speech_dae.stft": 0,
    # 1 basics
    "speech_dae.config": 1,
    "speech_dae.artifacts": 1,
    "speech_dae.audio": 1,
    "speech_dae.inputs": 1,
    "speech_dae.mixing": 1,
    "speech_dae.degrade": 1,
    "speech_dae.features": 1,
    "speech_dae.losses": 1,
    "speech_dae.metrics": 1,
    "speech_dae.dnsmos": 1,
    "speech_dae.baselines": 1,
    "speech_dae.peers": 1,
    "speech_dae.plots": 1,
    # 2 components
    "speech_dae.framing": 2,
    "speech_dae.folders": 2,
    "speech_dae.runinfo": 2,
    "speech_dae.scores": 2,
    "speech_dae.report": 2,
    "speech_dae.models": 2,
    "speech_dae.inference": 2,
    "speech_dae.training": 2,
    # 3 stages
    "speech_dae.stages": 3,
    # 4 command line
    "speech_dae.cli": 4,
    "speech_dae.__main__": 4,
    "speech_dae": 4,  # the package facade: speech_dae.Denoiser, imported lazily
}
NAMES = {0: "version and errors", 1: "basics", 2: "components", 3: "stages", 4: "command line"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(name: str) -> int:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(
            f"{name} has no layer in tests/test_layers.py LAYERS: add it (and to docs/architecture.md)"
        )
    return LAYERS[best]


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(importer: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute name of ``from <.level target> import ...`` inside module ``importer``."""
    if level == 0:
        return target or ""
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` of every import of a speech_dae module in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "speech_dae"]
        elif isinstance(node, ast.ImportFrom):
            mod = resolve(name, is_package, node.level, node.module)
            if mod.split(".")[0] != "speech_dae":
                continue
            for a in node.names:
                sub = f"{mod}.{a.name}"
                out.append((sub, None, node.lineno) if sub in known else (mod, a.name, node.lineno))
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {t for t, _, _ in imports(m, p, known) if t in known and t != m} for m, p in mods.items()}


def test_every_module_has_a_layer():
    for name in modules():
        layer(name)


def test_no_module_imports_a_higher_layer():
    mods = modules()
    bad = []
    for name, path in mods.items():
        for target, _, line in imports(name, path, set(mods)):
            if target in mods and layer(target) > layer(name):
                bad.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: {name} ({NAMES[layer(name)]}) imports {target} "
                    f"({NAMES[layer(target)]})"
                )
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_circle():
    g = graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    # a package's __init__ re-exporting its own submodules is no circle of behaviour: they never import it back
    assert not cycles, "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_no_private_name_is_imported_from_another_module():
    mods = modules()
    bad = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: from {target} import {what}"
        for name, path in mods.items()
        for target, what, line in imports(name, path, set(mods))
        if what is not None and what.startswith("_") and not what.startswith("__") and target != name
    ]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from .b import c", [("speech_dae.x.b", "c")]),
        ("from ..framing import _x", [("speech_dae.framing", "_x")]),
        ("def f():\n    from ..stages import train", [("speech_dae.stages.train", None)]),
        ("import speech_dae.stages.train as t", [("speech_dae.stages.train", None)]),
    ],
)
def test_the_import_reader_sees_relative_lazy_and_submodule_imports(tmp_path, source, expected):
    path = tmp_path / "a.py"
    path.write_text(source)
    known = {"speech_dae.x.b", "speech_dae.framing", "speech_dae.stages", "speech_dae.stages.train"}
    assert [(m, n) for m, n, _ in imports("speech_dae.x.a", path, known)] == expected


def test_the_checks_catch_an_upward_import_and_a_circle(tmp_path, monkeypatch):
    """The rules fail on a planted violation (so a green run means something)."""
    pkg = tmp_path / "speech_dae"
    (pkg / "stages").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "stages" / "__init__.py").write_text("")
    (pkg / "framing.py").write_text("from .stages import tune\n")
    (pkg / "stages" / "tune.py").write_text("from ..framing import even_indices, _private\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    with pytest.raises(AssertionError, match="speech_dae.framing .components. imports speech_dae.stages.tune"):
        test_no_module_imports_a_higher_layer()
    with pytest.raises(AssertionError, match="import circles: speech_dae.framing <-> speech_dae.stages.tune"):
        test_no_import_circle()
    with pytest.raises(AssertionError, match="from speech_dae.framing import _private"):
        test_no_private_name_is_imported_from_another_module()
