"""The largest modules and functions of lmlib, as a table: a size to notice, not a rule.

    python scripts/code_sizes.py            # the 10 largest of each
    python scripts/code_sizes.py --top 25

STYLE.md: a module short enough to read in one sitting (usually under ~300 lines), functions
under ~60; split where a concept ends, never to satisfy a count. tests/unit/test_architecture.py
prints this table and fails only far beyond it (SMELL_LINES / SMELL_FUNCTION), where a file or
function has stopped being one concept.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lmlib"


def module_sizes(package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(lines, path) of every module, largest first."""
    sizes = [(len(p.read_text(encoding="utf-8").splitlines()), str(p.relative_to(package.parent)))
             for p in package.rglob("*.py")]  # fmt: skip
    return sorted(sizes, reverse=True)


def function_sizes(package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(lines, path:function) of every function and method, largest first."""
    sizes = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                sizes.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(package.parent)}:{node.name}"))
    return sorted(sizes, reverse=True)


def table(top: int = 10) -> str:
    modules, functions = module_sizes()[:top], function_sizes()[:top]
    lines = [f"{'module':<48} {'lines':>5}    {'function':<60} {'lines':>5}"]
    for (m_lines, module), (f_lines, function) in zip(modules, functions):
        lines.append(f"{module:<48} {m_lines:>5}    {function:<60} {f_lines:>5}")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="how many of each to list")
    print(table(parser.parse_args().top))
