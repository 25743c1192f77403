"""The outputs policy for notebooks in git: none. The report is where outputs live.

notebooks/*.ipynb are stored without outputs, execution counts or widget state, so that they
stay small, their diffs show only what a person changed, and opening one in JupyterLab changes
nothing. `.gitattributes` gives them to nbstripout's git filter (`make setup` installs it), which
cleans a notebook on `git add` whatever ran in it; the executed notebooks under reports/ keep
their outputs. `strip_outputs` is that same cleaning in Python, with nbstripout's defaults, for
code that writes notebooks into notebooks/ (tests/e2e/test_notebooks.py checks the two agree).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from lmlib import paths

# What nbstripout removes by default besides outputs and counts (its built-in extra keys).
NOTEBOOK_KEYS = ("signature", "widgets")
CELL_KEYS = ("collapsed", "ExecuteTime", "execution", "heading_collapsed", "hidden", "scrolled")


def strip_outputs(nb):
    """`nb` as git stores it: no outputs, no execution counts, no widget state; cell ids 0, 1, ... as nbstripout
    numbers them (so the filter never rewrites a committed notebook). Changes `nb` in place and returns it."""
    for key in NOTEBOOK_KEYS:
        nb.metadata.pop(key, None)
    for i, cell in enumerate(nb.cells):
        if "id" in cell:  # nbformat 4.5 and later
            cell.id = str(i)
        for key in CELL_KEYS:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def stored_text(nb) -> str:
    """The text of `nb` exactly as nbformat.write writes it (what JupyterLab reads back unchanged)."""
    import nbformat

    out = io.StringIO()
    nbformat.write(nb, out)
    return out.getvalue()


def strip_notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """Rewrite every notebook in `folder` (the project's notebooks/) as git stores it; return those that changed."""
    import nbformat

    changed = []
    for path in sorted(Path(folder or paths.notebooks_dir()).glob("*.ipynb")):
        text = stored_text(strip_outputs(nbformat.read(path, as_version=4)))
        if text != path.read_text(encoding="utf-8"):
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed
