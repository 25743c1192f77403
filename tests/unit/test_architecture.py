"""The package's layers, checked from the source: imports point down the layer map only; sizes reported.

The map is lmlib/__init__.py's docstring. Every import of an lmlib module, module-level or
inside a function, is read with `ast`; none may reach a higher layer, so the graph cannot
have cycles between layers, and a newcomer can trust the folder names.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "lmlib"
# lower number = lower layer; a module may import its own layer or lower ones
LAYERS = {
    "lmlib": 0, "lmlib.errors": 0, "lmlib.paths": 0, "lmlib.atomic": 0, "lmlib.checks": 0, "lmlib.config": 0,
    "lmlib.sampling": 0,
    "lmlib.data": 1,
    "lmlib.model": 2,
    "lmlib.presets": 3,
    "lmlib.training": 4,
    "lmlib.evaluation": 5, "lmlib.generate": 5, "lmlib.pretrained": 5, "lmlib.sweep": 5,
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
    for folder in ("data/", "model/", "training/", "evaluation/", "pretrained/", "sweep/", "report/", "apps/"):
        assert folder in described


# Far beyond STYLE.md's ~300 lines / ~60 (a smell to notice, reported below): a module or function this
# long has stopped being one concept. Nothing is split to stay under the smell itself.
SMELL_LINES, SMELL_FUNCTION = 500, 80


def test_sizes_are_reported_and_none_is_far_beyond_one_concept(capsys):
    sys.path.insert(0, str(ROOT / "scripts"))
    import code_sizes

    with capsys.disabled():
        print("\n" + code_sizes.table(5))  # the largest modules and functions, in every test run's log
    assert [m for lines, m in code_sizes.module_sizes() if lines > SMELL_LINES] == []
    assert [f for lines, f in code_sizes.function_sizes() if lines > SMELL_FUNCTION] == []
