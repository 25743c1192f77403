"""The numbered notebooks: house rules, the outputs policy, and nbval in the smoke profile.

nbval runs with --nbval-lax: every cell must run without error, and only the cells marked
`# NBVAL_CHECK_OUTPUT` (the deterministic corpus statistics of notebook 01) are compared
with the outputs stored in git. The notebooks run as copies with smoke parameters injected
(papermill's own injection), so the test trains seconds, not minutes.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MINE = [p for p in NOTEBOOKS if p.name[:2] in ("01", "02", "03", "05")]
CHECK = "# NBVAL_CHECK_OUTPUT"


def smoke_parameters(name: str, tmp: Path) -> dict:
    prepared, runs = str(tmp / "prepared"), str(tmp / "runs")
    return {
        "01": {"prepared_dir": prepared},
        "02": {
            "run_name": "smoke",
            "preset": "smoke",
            "max_minutes": None,
            "prepared_dir": prepared,
            "runs_root": runs,
        },
        "03": {"runs_root": runs, "test_time_grid": "small"},
        "04": {"runs_root": runs},
        "05": {
            "study": "smoke",
            "space_file": str(ROOT / "params" / "sweeps" / "smoke.yaml"),
            "trials": 2,
            "storage": f"sqlite:///{tmp / 'sweeps.db'}",
            "runs_root": str(tmp / "sweeps"),
        },
    }.get(name[:2], {})


def test_the_four_numbered_notebooks_exist():
    assert [p.name[:2] for p in MINE] == ["01", "02", "03", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_house_layout(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert sum(c.source.startswith("# ") for c in nb.cells if c.cell_type == "markdown") == 1  # one H1
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert 'LMLIB_REPO = "https://github.com/' in code[0].source  # the Colab set-up cell comes first
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for statement in ast.parse(params[0].source).body:  # literals only
        assert isinstance(statement, ast.Assign), ast.dump(statement)
        ast.literal_eval(statement.value)
    assert "setup()" in "".join(c.source for c in code[:2])  # work from the project root


def first_cell(path: Path) -> str:
    return next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code").source


def test_every_notebook_starts_with_the_same_set_up_cell():
    """One text for the Colab set-up in every notebook (a new notebook copies it); one placeholder URL."""
    cells = {path.name: first_cell(path) for path in NOTEBOOKS}
    assert len(set(cells.values())) == 1, "the first code cells differ: copy 01's into " + ", ".join(cells)
    cell = cells[NOTEBOOKS[0].name]
    assert 'LMLIB_REPO = "https://github.com/' in cell and "colab_setup(KEEP_RUNS_ON_DRIVE)" in cell
    assert "google.colab" not in cell  # everything Colab-only is in lmlib.apps.colab, behind its guard


def run_first_cell(monkeypatch) -> list[str]:
    """Execute the set-up cell as if lmlib were missing; return the pip install it runs (not run here)."""
    real_find_spec, real_run, installs = importlib.util.find_spec, subprocess.run, []

    def find_spec(name, *args):
        return None if name == "lmlib" and not installs else real_find_spec(name, *args)

    def run(command, *args, **kwargs):
        if "install" in command:
            installs.append(command)
            return subprocess.CompletedProcess(command, 0)
        return real_run(command, *args, **kwargs)  # pip freeze runs for real

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(subprocess, "run", run)
    exec(compile(first_cell(NOTEBOOKS[0]), "first cell", "exec"), {})
    (install,) = installs
    return install


def test_the_set_up_cell_pins_every_installed_package(monkeypatch):
    """Colab's torch and ipywidgets (any package already there) are constraints of the install: never replaced."""
    from importlib.metadata import version

    install = run_first_cell(monkeypatch)
    assert install[-1] == "lmlib[notebooks,sweep] @ git+https://github.com/OWNER/lmlib"
    pins = Path(install[install.index("-c") + 1]).read_text().splitlines()
    for name in ("torch", "ipywidgets", "numpy", "ipykernel"):
        assert f"{name}=={version(name)}" in pins


def test_pip_refuses_an_install_that_would_replace_a_pinned_package(monkeypatch, tmp_path):
    """The constraints bite: a project wanting another ipywidgets cannot be installed by the cell's command,
    though pip would happily install it without them (so this test can fail)."""
    from importlib.metadata import version

    install = run_first_cell(monkeypatch)
    monkeypatch.undo()  # pip runs for real from here on
    fake = tmp_path / "fake"
    fake.mkdir()
    other = f"ipywidgets!={version('ipywidgets')}"  # any release but the one installed (7.7.1 on Colab)
    (fake / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "lmlib"\nversion = "0"\n[project.optional-dependencies]\nnotebooks = ["{other}"]\n'
        "[tool.setuptools]\npackages = []\n"
    )
    command = [*install[:-1], "--dry-run", "--no-build-isolation", f"lmlib[notebooks] @ {fake.as_uri()}"]
    pinned = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert pinned.returncode != 0 and "ResolutionImpossible" in pinned.stderr, pinned.stdout + pinned.stderr
    free = [arg for i, arg in enumerate(command) if arg not in ("-c", "-q") and command[i - 1] != "-c"]
    unpinned = subprocess.run(free, capture_output=True, text=True, timeout=300)
    assert unpinned.returncode == 0 and "ipywidgets-" in unpinned.stdout, unpinned.stdout + unpinned.stderr


@pytest.mark.parametrize("path", MINE, ids=lambda p: p.name)
def test_stored_notebooks_keep_only_checked_outputs(path):
    """The outputs policy: outputs (and counts) only where nbval checks them; no figures, no widgets."""
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if not cell.source.startswith(CHECK):
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: cell {cell.id} stores outputs"
        for output in cell.outputs:
            assert "image/png" not in output.get("data", {})
    assert path.stat().st_size < 40_000


def test_notebook_01_stores_the_statistics_nbval_checks():
    nb = nbformat.read(ROOT / "notebooks" / "01_data_prep.ipynb", as_version=4)
    checked = {c.id: c for c in nb.cells if c.cell_type == "code" and c.source.startswith(CHECK)}
    assert {"books", "splits", "vocab", "frequent", "sample"} <= set(checked)
    assert all(c.outputs for c in checked.values())
    text = json.dumps([c.outputs for c in checked.values()])
    assert "577514" in text and "7,784" in text  # train tokens and vocabulary of the embedded corpus


def test_notebooks_pass_nbval_in_the_smoke_profile(tmp_path):
    from papermill.iorw import load_notebook_node  # adds the tags papermill expects
    from papermill.parameterize import parameterize_notebook

    copies = []
    for path in NOTEBOOKS:
        nb = parameterize_notebook(load_notebook_node(str(path)), smoke_parameters(path.name, tmp_path))
        copy = tmp_path / path.name
        nbformat.write(nb, copy)
        copies.append(str(copy))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "--nbval-lax",
            "--nbval-current-env",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            *copies,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert (tmp_path / "runs" / "smoke" / "results.json").is_file()
    assert len(list((tmp_path / "sweeps" / "smoke").glob("trial-*/results.json"))) == 2  # notebook 05's study


def test_strip_outputs_keeps_only_checked_cells():
    from lmlib.report.outputs import strip_outputs

    out = [nbformat.v4.new_output("stream", text="42\n")]
    nb = nbformat.v4.new_notebook(metadata={"widgets": {}, "papermill": {}})
    nb.cells = [
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(42)", execution_count=3, outputs=out),
        nbformat.v4.new_code_cell("print(42)", execution_count=4, outputs=list(out)),
    ]
    strip_outputs(nb)
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata
    assert nb.cells[0].outputs and nb.cells[0].execution_count == 3
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
