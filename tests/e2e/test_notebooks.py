"""The numbered notebooks: house rules, the set-up cell, no outputs in git, no echoed values, nbval (smoke).

The notebooks are stored without outputs (nbstripout through .gitattributes; the report is where
outputs live). nbval runs them with --nbval-lax: every cell must run without error. They run as
copies with smoke parameters injected (papermill's own injection), so the test trains seconds,
not minutes.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT

from lmlib.apps.colab import REPOSITORY
from lmlib.report.outputs import stored_text, strip_outputs

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MINE = [p for p in NOTEBOOKS if p.name[:2] in ("01", "02", "03", "05")]
SET_UP_LINES = 13  # the first cell, folded in JupyterLab and Colab
SET_UP_METADATA = {"cellView": "form", "jupyter": {"source_hidden": True}}  # Colab's form; JupyterLab's fold


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
        "03": {"runs_root": runs, "test_time_grid": "small", "compare_summary": other_build(tmp)},
        "04": {"runs_root": runs},
        "05": {
            "study": "smoke",
            "space_file": str(ROOT / "params" / "sweeps" / "smoke.yaml"),
            "trials": 2,
            "storage": f"sqlite:///{tmp / 'sweeps.db'}",
            "runs_root": str(tmp / "sweeps"),
        },
    }.get(name[:2], {})


def other_build(tmp: Path) -> str:
    """The summary.json of another build with the smoke arm trained longer: notebook 03's section 6 draws it."""
    curve = [[e, 30.0 * e, 900.0 / e, 1000.0 / e] for e in range(1, 7)]
    run = {"run": "smoke", "arm": "smoke", "epochs_run": 6.0, "wall_seconds": 180.0, "stopped": "early_stopping",
           "curve": curve}  # fmt: skip
    arm = {"arm": "smoke", "vs": "", "seeds": 1, "valid_mean": 166.7, "valid_min": 166.7, "valid_max": 166.7,
           "test_mean": 180.0, "test_min": 180.0, "test_max": 180.0, "finished": True}  # fmt: skip
    path = tmp / "other" / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"profile": "longer", "arms": [arm], "runs": [run]}))
    return str(path)


def test_the_four_numbered_notebooks_exist():
    assert [p.name[:2] for p in MINE] == ["01", "02", "03", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_house_layout(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert sum(c.source.startswith("# ") for c in nb.cells if c.cell_type == "markdown") == 1  # one H1
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "LMLIB_REPO = " in code[0].source  # the Colab set-up cell comes first
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for statement in ast.parse(params[0].source).body:  # literals only
        assert isinstance(statement, ast.Assign), ast.dump(statement)
        ast.literal_eval(statement.value)
    assert "setup()" in "".join(c.source for c in code[:2])  # work from the project root


def first_cell(path: Path) -> nbformat.NotebookNode:
    return next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def test_every_notebook_starts_with_the_same_short_folded_set_up_cell():
    """One text for the Colab set-up in every notebook (a new notebook copies it), short and folded away."""
    cells = {path.name: first_cell(path) for path in NOTEBOOKS}
    texts = {cell.source for cell in cells.values()}
    assert len(texts) == 1, "the first code cells differ: copy 01's into " + ", ".join(cells)
    cell = cells[NOTEBOOKS[0].name]
    lines = cell.source.splitlines()
    assert len(lines) <= SET_UP_LINES, f"the set-up cell has {len(lines)} lines"
    assert lines[0] == "# @title Set-up"  # the title Colab's form shows in place of the code
    assert all(c.metadata == SET_UP_METADATA for c in cells.values())
    assert "colab_setup(KEEP_RUNS_ON_DRIVE)" in cell.source
    assert "google.colab" not in cell.source  # everything Colab-only is in lmlib.apps.colab, behind its guard


def assigned(source: str, name: str) -> str:
    """The literal a cell assigns to `name` at its top level."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise AssertionError(f"no {name} = ... in the cell")


def test_the_repository_address_is_the_packages_everywhere():
    """lmlib.apps.colab.REPOSITORY is the one address (a placeholder for now); the notebooks and badges repeat it."""
    assert REPOSITORY.startswith("https://github.com/") and not REPOSITORY.endswith((".git", "/"))
    for path in NOTEBOOKS:
        assert assigned(first_cell(path).source, "LMLIB_REPO") == REPOSITORY, path.name
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for repo in re.findall(r"colab\.research\.google\.com/github/([^/\s)]+/[^/\s)]+)/blob/", readme):
        assert f"https://github.com/{repo}" == REPOSITORY, f"README's Colab badge opens {repo}"
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    assert urls.get("Repository", REPOSITORY) == REPOSITORY


def run_first_cell(monkeypatch, folder: Path) -> tuple[list[str], str]:
    """Execute the set-up cell in `folder` as if lmlib were missing; return the pip install it runs (not run here)
    and the constraints it gives pip on stdin."""
    real_find_spec, real_run, installs = importlib.util.find_spec, subprocess.run, []

    def find_spec(name, *args):
        return None if name == "lmlib" and not installs else real_find_spec(name, *args)

    def run(command, *args, **kwargs):
        if "install" in command:
            installs.append((command, kwargs["input"].decode()))
            return subprocess.CompletedProcess(command, 0)
        return real_run(command, *args, **kwargs)  # pip list runs for real

    def invalidate_caches():  # the finders' cached folder listings predate the install: import must look again
        assert installs, "caches invalidated before the install"
        installs.append("caches invalidated")

    monkeypatch.chdir(folder)
    monkeypatch.delenv("LMLIB_SOURCE", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(importlib, "invalidate_caches", invalidate_caches)
    exec(compile(first_cell(NOTEBOOKS[0]).source, "first cell", "exec"), {})
    install, invalidated = installs
    assert invalidated == "caches invalidated"
    return install


def test_the_set_up_cell_pins_every_installed_package(monkeypatch, tmp_path):
    """Colab's torch and ipywidgets (any package already there) are constraints of the install: never replaced."""
    from importlib.metadata import version

    command, pins = run_first_cell(monkeypatch, tmp_path)
    assert command[-1] == f"lmlib[notebooks,sweep] @ git+{REPOSITORY}"
    assert command[command.index("-c") + 1] == "/dev/stdin"
    for name in ("torch", "ipywidgets", "numpy", "ipykernel"):
        assert f"{name}=={version(name)}" in pins.splitlines()


def test_from_a_clones_notebooks_folder_the_set_up_cell_uses_that_clone(monkeypatch):
    installs = []
    monkeypatch.chdir(ROOT / "notebooks")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p and Path(p).resolve() != ROOT])
    monkeypatch.setattr(subprocess, "run", lambda command, *a, **k: installs.append(command))
    exec(compile(first_cell(NOTEBOOKS[0]).source, "first cell", "exec"), {})
    assert sys.path[0] == str(ROOT) and installs == []


def test_pip_refuses_an_install_that_would_replace_a_pinned_package(monkeypatch, tmp_path):
    """The constraints bite: a project wanting another ipywidgets cannot be installed by the cell's command,
    though pip would happily install it without them (so this test can fail)."""
    from importlib.metadata import version

    install, pins = run_first_cell(monkeypatch, tmp_path)
    monkeypatch.undo()  # pip runs for real from here on
    fake = tmp_path / "fake"
    fake.mkdir()
    other = f"ipywidgets!={version('ipywidgets')}"  # any release but the one installed (7.7.1 on Colab)
    (fake / "pyproject.toml").write_text(  # lmlib's own version: only ipywidgets can conflict with the pins
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "lmlib"\nversion = "{version("lmlib")}"\n'
        f'[project.optional-dependencies]\nnotebooks = ["{other}"]\n[tool.setuptools]\npackages = []\n'
    )
    command = [*install[:-1], "--dry-run", "--no-build-isolation", f"lmlib[notebooks] @ {fake.as_uri()}"]
    pinned = subprocess.run(command, input=pins, capture_output=True, text=True, timeout=300)
    assert pinned.returncode != 0 and "ResolutionImpossible" in pinned.stderr, pinned.stdout + pinned.stderr
    assert "ipywidgets" in pinned.stderr
    free = [arg for i, arg in enumerate(command) if arg not in ("-c", "-q") and command[i - 1] != "-c"]
    unpinned = subprocess.run(free, capture_output=True, text=True, timeout=300)
    assert unpinned.returncode == 0 and "ipywidgets-" in unpinned.stdout, unpinned.stdout + unpinned.stderr


# --- no outputs in git ------------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_notebooks_have_no_outputs(path):
    """No outputs, execution counts or widget state (nbstripout clears them on `git add`; run
    `nbstripout notebooks/*.ipynb` to clear a notebook you ran in place)."""
    nb = nbformat.read(path, as_version=4)
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: cell {cell.id} has outputs"
    assert path.stat().st_size < 40_000


def test_the_notebooks_carry_the_kernels_language_info():
    """JupyterLab replaces a notebook's language_info with the kernel's when the kernel starts, and marks the
    notebook modified if that changed anything: each stores ipykernel's in full, from the project's Python
    (a kernel on another Python version still differs in `version`, which nothing can avoid)."""
    from ipykernel.ipkernel import IPythonKernel

    metadata = [nbformat.read(path, as_version=4).metadata for path in NOTEBOOKS]
    assert all(m == metadata[0] for m in metadata)
    info = metadata[0]["language_info"]
    assert info.keys() == IPythonKernel.language_info.keys()
    assert {k: v for k, v in info.items() if k != "version"} == {
        k: v for k, v in IPythonKernel.language_info.items() if k != "version"
    }
    assert re.fullmatch(r"3\.\d+\.\d+", info["version"]) and metadata[0]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_notebooks_read_back_unchanged(path):
    """nbformat 4.5 with cell ids, written exactly as nbformat writes it: JupyterLab opens it without a change to
    save, and stripping it again (lmlib or nbstripout, the git filter) changes nothing."""
    text = path.read_text(encoding="utf-8")
    nb = nbformat.read(path, as_version=4)
    assert (nb.nbformat, nb.nbformat_minor) >= (4, 5) and all("id" in cell for cell in nb.cells)
    assert stored_text(nb) == text
    assert stored_text(strip_outputs(nb)) == text


def nbstripout(path: Path, cwd: Path) -> str:
    """What nbstripout's git filter (its defaults, as `nbstripout --install` sets it up) stores for `path`."""
    pytest.importorskip("nbstripout")
    done = subprocess.run([sys.executable, "-m", "nbstripout", "--textconv", str(path)], cwd=cwd, capture_output=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("utf-8")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_git_filter_leaves_stored_notebooks_as_they_are(path, tmp_path):
    assert nbstripout(path, tmp_path) == path.read_text(encoding="utf-8")


def test_strip_outputs_is_what_nbstripout_stores(tmp_path):
    """lmlib.report.outputs.strip_outputs and the git filter agree on a notebook that ran in JupyterLab."""
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}, "language_info": {"name": "python"}})
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title", id="a1b2c3"),
        nbformat.v4.new_code_cell(
            "print(42)",
            id="f00d",
            execution_count=3,
            outputs=[nbformat.v4.new_output("stream", text="42\n")],
            metadata={"collapsed": False, "execution": {"iopub.status.idle": "now"}, "tags": ["keep"]},
        ),
        nbformat.v4.new_code_cell("1 + 1", execution_count=4, metadata=SET_UP_METADATA),
    ]
    dirty = tmp_path / "dirty.ipynb"
    nbformat.write(nb, dirty)
    stripped = stored_text(strip_outputs(nbformat.read(dirty, as_version=4)))
    assert stripped == nbstripout(dirty, tmp_path)
    again = nbformat.reads(stripped, as_version=4)
    assert [c.id for c in again.cells] == ["0", "1", "2"] and again.cells[1].metadata == {"tags": ["keep"]}
    assert again.cells[2].metadata == SET_UP_METADATA and "widgets" not in again.metadata


def test_git_stores_notebooks_without_outputs_and_the_reports_with_theirs(tmp_path):
    """.gitattributes with the filter as the Makefile installs it: outputs never reach git from notebooks/,
    while the report's executed notebooks (reports/*/notebooks/) keep theirs."""
    pytest.importorskip("nbstripout")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "reports" / "default" / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / ".gitattributes", repo / ".gitattributes")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(42)", execution_count=1, outputs=[nbformat.v4.new_output(
        "stream", text="42\n")])]  # fmt: skip
    for path in (repo / "notebooks" / "a.ipynb", repo / "reports" / "default" / "notebooks" / "a.ipynb"):
        nbformat.write(nb, path)

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    git("init", "-q")
    git("config", "user.email", "test@example.com")
    git("config", "user.name", "test")
    nbstripout_bin = Path(sys.executable).with_name("nbstripout")
    done = subprocess.run([str(nbstripout_bin), "--install", "--attributes", ".gitattributes"], cwd=repo)
    assert done.returncode == 0
    assert (repo / ".gitattributes").read_text() == (ROOT / ".gitattributes").read_text()  # nothing appended
    git("add", ".")
    git("commit", "-q", "-m", "notebooks")
    stored = nbformat.reads(git("show", "HEAD:notebooks/a.ipynb"), as_version=4)
    assert stored.cells[0].outputs == [] and stored.cells[0].execution_count is None
    report = nbformat.reads(git("show", "HEAD:reports/default/notebooks/a.ipynb"), as_version=4)
    assert report.cells[0].outputs and report.cells[0].execution_count == 1
    assert git("status", "--porcelain") == ""  # the working copy keeps its outputs; git sees no change


# --- no echoed values ---------------------------------------------------------------------------

# What a cell may end on: a call that displays something and returns None. IPython's display and
# print, pyplot's show, and lmlib functions whose signature says they return None (nbk.setup,
# nbk.record). Anything else would be echoed as the cell's value (`PosixPath('/abs/path')`, a dict).
DISPLAYS = {"display", "print", "plt.show"}


def echo(source: str, namespace: dict) -> str | None:
    """The expression a cell's last statement echoes as its value, or None when it echoes nothing."""
    body = ast.parse(source).body
    if not body or not isinstance(body[-1], ast.Expr):
        return None
    value = body[-1].value
    if isinstance(value, ast.Call) and (ast.unparse(value.func) in DISPLAYS or returns_none(value.func, namespace)):
        return None
    return ast.unparse(value)


def returns_none(func: ast.expr, namespace: dict) -> bool:
    """Whether `func` (a name or attribute path) is an lmlib function the notebook imported, annotated `-> None`."""
    if not all(isinstance(node, ast.Name | ast.Attribute | ast.Load) for node in ast.walk(func)):
        return False
    try:
        target = eval(ast.unparse(func), {}, dict(namespace))  # attribute lookups only (checked above)
    except (NameError, AttributeError):
        return False
    return callable(target) and inspect.signature(target).return_annotation in (None, "None")


def lmlib_imports(cells: list) -> dict:
    """The names the notebook imports from lmlib, imported."""
    namespace: dict = {}
    for cell in cells:
        for node in ast.parse(cell.source).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lmlib"):
                exec(compile(ast.Module([node], type_ignores=[]), "imports", "exec"), namespace)
    return namespace


def test_the_echo_rule_catches_a_returned_value():
    from lmlib.report import notebook as nbk

    namespace = {"nbk": nbk, "Path": Path}
    assert echo("results = {'a': 1}\nresults", namespace) == "results"
    assert echo("Path.cwd()", namespace) == "Path.cwd()"  # what setup() used to return
    assert echo("nbk.recorded_results('x.ipynb')", namespace) == "nbk.recorded_results('x.ipynb')"
    assert echo("nbk.setup()", namespace) is None and echo("display(table)\n", namespace) is None
    assert echo("table = 1", namespace) is None and echo("if x:\n    x", namespace) is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_echoes_a_value(path):
    """A cell shows what it means to (display, print, a figure, a widget), never a value it happens to end on."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    namespace = lmlib_imports(cells)
    echoed = {cell.id: text for cell in cells if (text := echo(cell.source, namespace))}
    assert not echoed, f"{path.name}: cells ending on a value (wrap it in display() or assign it): {echoed}"


# --- the notebooks run --------------------------------------------------------------------------


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
