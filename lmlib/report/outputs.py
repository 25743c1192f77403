"""The outputs policy for notebooks in git (reports/README.md): outputs only where nbval checks them.

Figures, progress bars, training logs and samples are cleared before a notebook is committed,
so stored notebooks stay small and diffs readable; the cells marked `# NBVAL_CHECK_OUTPUT`
(notebook 01's deterministic corpus statistics) keep theirs, which nbval compares.
"""

from __future__ import annotations

from pathlib import Path

from lmlib import paths

CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"


def strip_outputs(nb, keep_checked: bool = True):
    """The outputs policy for notebooks in git: outputs only on `# NBVAL_CHECK_OUTPUT` cells.

    Everything else (figures, progress bars, training logs, samples) is cleared, with the
    execution counts and widget state, so stored notebooks stay small and diffs readable.
    """
    nb.metadata.pop("widgets", None)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if not (keep_checked and cell.source.startswith(CHECK_MARKER)):
            cell.execution_count, cell.outputs = None, []  # nbval needs the count of a checked cell
    return nb


def refresh_checked_outputs(notebook: str = "01_data_prep.ipynb", notebooks_dir: Path | None = None) -> Path:
    """Re-execute `notebook` with its default parameters and store the outputs nbval checks."""
    import tempfile

    import nbformat
    import papermill as pm

    notebooks_dir = Path(notebooks_dir or paths.notebooks_dir())
    source = notebooks_dir / notebook
    with tempfile.TemporaryDirectory() as tmp:
        executed = Path(tmp) / notebook
        pm.execute_notebook(str(source), str(executed), cwd=str(notebooks_dir), progress_bar=False)
        ran = {c.id: c for c in nbformat.read(executed, as_version=4).cells if c.cell_type == "code"}
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.id in ran:
            cell.outputs, cell.execution_count = ran[cell.id].outputs, ran[cell.id].execution_count
    nbformat.write(strip_outputs(nb), source)
    return source
