"""The package's layers run one way: a module imports only from its own layer or the layers below it.

The imports are read from the source (``ast``), not by importing, so lazy
imports inside functions and ``TYPE_CHECKING`` blocks count too. The table
below is the architecture of ``docs/layout.md``; a new top-level module or
subpackage must be given a layer here.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

PACKAGE = "openmm_distill"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

# layer: (top-level modules and subpackages of openmm_distill in it, the layers it may import directly).
# Imports are transitive: a layer may also import whatever the layers it names may import.
# Bottom to top.
LAYERS: Dict[str, Tuple[List[str], List[str]]] = {
    "foundation": (["units", "elements", "errors", "version", "import_order", "checksums", "cpu_runtime",
                    "config_loader", "metrics", "targets", "timing", "recipes"], []),
    "systems": (["systems"], ["foundation"]),
    "models": (["models"], ["foundation"]),
    "export": (["export"], ["models"]),
    "openmm_integration": (["openmm_integration"], ["export"]),
    "api": (["api", "ase_calculator"], ["openmm_integration"]),
    "teachers": (["teachers"], ["foundation"]),
    "data": (["data"], ["teachers", "systems"]),
    "training": (["training"], ["data", "export"]),
    "md": (["md"], ["openmm_integration"]),
    "protocols": (["protocols"], ["api", "md", "data"]),
    "active_learning": (["active_learning"], ["protocols"]),
    "pipeline": (["pipeline"], ["active_learning", "training"]),
    "cli": (["cli"], ["pipeline"]),
}


def _layer_of_name() -> Dict[str, str]:
    return {name: layer for layer, (names, _) in LAYERS.items() for name in names}


def _reachable() -> Dict[str, Set[str]]:
    """Each layer with every layer it may import (itself included), following the table transitively."""
    reach: Dict[str, Set[str]] = {}

    def visit(layer: str) -> Set[str]:
        if layer not in reach:
            reach[layer] = {layer}
            for lower in LAYERS[layer][1]:
                reach[layer] |= visit(lower)
        return reach[layer]

    for layer in LAYERS:
        visit(layer)
    return reach


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_submodule(dotted: str) -> bool:
    """Whether ``openmm_distill.<dotted>`` is a module or subpackage (not an attribute)."""
    base = PACKAGE_DIR.joinpath(*dotted.split(".")[1:])
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _package_imports(path: Path) -> Iterator[Tuple[int, str]]:
    """``(line, imported module)`` of every import of this package in a file; the bare root as ``openmm_distill``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            # "from openmm_distill import units" names a module; "from openmm_distill import load_student"
            # takes an attribute of the package root.
            for alias in node.names:
                dotted = f"{target}.{alias.name}"
                yield node.lineno, dotted if _is_submodule(dotted) else target


def _sources() -> List[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if p != PACKAGE_DIR / "__init__.py")


def _top_name(module: str) -> str:
    return module.split(".")[1]


def test_the_layer_table_is_a_one_way_ladder():
    for layer, (_, lower) in LAYERS.items():
        unknown = [name for name in lower if name not in LAYERS]
        assert not unknown, f"layer {layer!r} names unknown layers {unknown}"
    reach = _reachable()
    cycles = sorted({tuple(sorted((a, b))) for a in LAYERS for b in reach[a] if a != b and a in reach[b]})
    assert not cycles, f"layers that may import each other: {cycles}"
    names = [name for names, _ in LAYERS.values() for name in names]
    assert len(names) == len(set(names)), "a module is in two layers"


def test_every_module_has_a_layer():
    layer_of = _layer_of_name()
    missing = sorted({_top_name(_module_name(p)) for p in _sources()} - set(layer_of))
    assert not missing, f"give these openmm_distill modules a layer in tests/test_layers.py LAYERS: {missing}"


def test_no_module_imports_a_layer_above_its_own():
    layer_of, reach = _layer_of_name(), _reachable()
    violations = []
    for path in _sources():
        module = _module_name(path)
        layer = layer_of.get(_top_name(module))
        if layer is None:
            continue  # reported by test_every_module_has_a_layer
        for line, imported in _package_imports(path):
            if imported == PACKAGE:
                continue  # reported by test_inner_modules_never_import_the_package_root
            target = layer_of.get(_top_name(imported))
            if target is not None and target not in reach[layer]:
                violations.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{line}: {module} ({layer}) imports "
                                  f"{imported} ({target})")
    assert not violations, "imports against the layering:\n" + "\n".join(violations)


def test_inner_modules_never_import_the_package_root():
    # The root (openmm_distill/__init__.py) is the users' facade and imports the API; a module inside the
    # package that imports it depends on everything. Import the concrete module instead.
    found = [f"{path.relative_to(PACKAGE_DIR.parent)}:{line}"
             for path in _sources() for line, imported in _package_imports(path) if imported == PACKAGE]
    assert not found, "imports of the package root (import the concrete module):\n" + "\n".join(found)


@pytest.mark.parametrize("source, expected", [
    ("import openmm_distill as od", [PACKAGE]),
    ("from openmm_distill import load_student", [PACKAGE]),
    ("from openmm_distill import units", [f"{PACKAGE}.units"]),
    ("def f():\n    from openmm_distill.protocols import common", [f"{PACKAGE}.protocols"]),
    ("from . import loop", [f"{PACKAGE}.md.loop"]),
])
def test_the_import_reader_sees_every_form(tmp_path, monkeypatch, source, expected):
    # A file inside a copy of the package layout, so relative imports and submodule checks resolve.
    package = tmp_path / PACKAGE
    (package / "md").mkdir(parents=True)
    for name in ("__init__.py", "units.py", "md/__init__.py", "md/loop.py", "md/probe.py"):
        (package / name).write_text("")
    (package / "md" / "probe.py").write_text(source + "\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE_DIR", package)
    assert [imported for _, imported in _package_imports(package / "md" / "probe.py")] == expected
