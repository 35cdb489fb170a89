"""The layers of DESIGN.md, enforced by walking every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# layer -> the project packages it may import (its own included)
ALLOWED = {
    "schemas": {"schemas"},
    "hub.core": {"hub.core", "schemas"},
    "hub.store": {"hub.store", "hub.core", "schemas"},
    "hub.runtime": {"hub.runtime", "hub.core", "hub.store", "schemas"},
    "hub.server": {"hub.server", "hub.runtime", "hub.store", "hub.core", "schemas", "hub"},
    "hub.cli": {"hub.cli", "hub.server", "hub.runtime", "hub.store", "hub.core", "schemas", "transports", "hub"},
    "transports": {"transports", "schemas"},
}
PROJECT = ("schemas", "hub", "transports")


def _layer(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def _imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, module, inside a function) for every project import."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((child.lineno, a.name, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.lineno, child.module, in_function))
            visit(child, nested)

    visit(tree, False)
    return [(line, mod, fn) for line, mod, fn in found if mod.split(".")[0] in PROJECT]


def _modules():
    for package in PROJECT:
        for path in sorted((ROOT / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield module.removesuffix(".__init__"), path


def test_every_module_belongs_to_a_layer():
    orphans = [m for m, _ in _modules() if m != "hub" and _layer(m) is None]
    assert orphans == []


def test_no_layer_imports_above_itself():
    breaches = []
    for module, path in _modules():
        layer = _layer(module)
        if layer is None:
            continue
        for line, imported, _ in _imports(path):
            target = _layer(imported) or imported.split(".")[0]
            if target not in ALLOWED[layer] and imported != "hub":
                breaches.append(f"{path.relative_to(ROOT)}:{line} {layer} imports {imported}")
    assert breaches == []


def test_no_function_local_project_imports():
    local = [f"{p.relative_to(ROOT)}:{line} {mod}" for _, p in _modules() for line, mod, fn in _imports(p) if fn]
    assert local == []


def test_the_checker_sees_a_breach(tmp_path):
    """The walker itself must catch an upward import."""
    bad = tmp_path / "bad.py"
    bad.write_text("from hub.runtime.hub import Hub\n")
    assert _imports(bad) == [(1, "hub.runtime.hub", False)]
    assert "hub.runtime" not in ALLOWED["hub.core"]
