"""The package's layers, checked from the source: imports point down the layer map only.

The map is lmlib/__init__.py's docstring. Every import of an lmlib module, module-level or
inside a function, is read with `ast`; none may reach a higher layer, so the graph cannot
have cycles between layers, and a newcomer can trust the folder names.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "lmlib"
# lower number = lower layer; a module may import its own layer or lower ones
LAYERS = {
    "lmlib": 0, "lmlib.errors": 0, "lmlib.paths": 0, "lmlib.atomic": 0, "lmlib.checks": 0, "lmlib.config": 0,
    "lmlib.data": 1,
    "lmlib.model": 2,
    "lmlib.presets": 3,
    "lmlib.training": 4,
    "lmlib.evaluation": 5, "lmlib.generate": 5, "lmlib.sweep": 5,
    "lmlib.report": 6,
    "lmlib.apps": 7,
    "lmlib.cli": 8, "lmlib.__main__": 8,
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The layer of `module`: its longest prefix in LAYERS."""
    parts = module.split(".")
    for size in range(len(parts), 0, -1):
        prefix = ".".join(parts[:size])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and to lmlib/__init__.py's map")


def lmlib_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lmlib"):
            assert node.level == 0, f"{path}: relative import; the package imports absolutely"
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names if (PACKAGE / alias.name).exists()}
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import `from {'.' * node.level}{node.module or ''}`")
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("lmlib")}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_the_layers(path):
    here = module_name(path)
    upward = sorted(m for m in lmlib_imports(path) if layer(m) > layer(here))
    assert not upward, f"{here} (layer {layer(here)}) imports from higher layers: {upward}"


def test_every_layer_is_in_the_package_map():
    described = (PACKAGE / "__init__.py").read_text()
    for folder in ("data/", "model/", "training/", "evaluation/", "sweep/", "report/", "apps/"):
        assert folder in described


def test_no_module_is_over_300_lines_and_no_function_over_60():
    long_modules = [str(p.relative_to(ROOT)) for p in MODULES if len(p.read_text().splitlines()) > 300]
    long_functions = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 60:
                long_functions.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert long_modules == [] and long_functions == []
