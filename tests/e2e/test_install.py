"""A regular install is self-contained: build the wheel, install it away from the checkout, run the main job.

This is what `pip install git+<url>` does on Colab: pip builds a wheel from the repository
and installs it into site-packages; nothing of the checkout is left to read. So the test
builds the wheel (from a copy of the project's files, so that no stale build/ folder leaks
in), installs it with `--no-deps` into a new venv, and from an empty folder runs
`prepare --corpus austen --json`, `report --profile smoke` and `generate --model austen`.

The heavy dependencies: a truly fresh venv would download and install torch, pandas,
papermill... (about a gigabyte, minutes, and a network) for every run. Instead the new venv
gets one .pth file naming a folder of links to this interpreter's site-packages *minus*
lmlib (its package, dist-info and editable-install hooks), and links to the data files
those packages install under <prefix>/share/jupyter (nbconvert's templates, the kernel
spec), where a real install would have put them. A .pth line only appends a folder to
sys.path, after the venv's own site-packages, and .pth files inside that folder are not
processed, so the only lmlib the venv can import is the wheel's; the test asserts that, and
that no checkout folder is on its sys.path.

$LMLIB_SKIP_INSTALL_TEST=1 skips it for quick local runs; under CI (CI set) it always runs.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

SKIP = os.environ.get("LMLIB_SKIP_INSTALL_TEST") == "1" and not os.environ.get("CI")
pytestmark = pytest.mark.skipif(SKIP, reason="LMLIB_SKIP_INSTALL_TEST=1 (never skipped under CI)")

# What the wheel is built from: the project's own files, none of what builds or runs leave behind.
IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "runs", "prepared", "reports", ".pytest_cache"
)


def _is_lmlib(name: str) -> bool:
    lowered = name.lower()
    return lowered == "lmlib" or lowered.startswith(("lmlib-", "__editable__.lmlib", "__editable___lmlib"))


def _deps_folder(target: Path) -> Path:
    """Links to every entry of this interpreter's site-packages except lmlib's, and no .pth files."""
    target.mkdir()
    for folder in dict.fromkeys(site.getsitepackages()):
        for entry in Path(folder).iterdir():
            if _is_lmlib(entry.name) or entry.suffix == ".pth" or (target / entry.name).exists():
                continue
            (target / entry.name).symlink_to(entry)
    return target


def _link_jupyter_data(venv: Path) -> None:
    """<prefix>/share/jupyter of this interpreter, as the dependencies' own installs would have left it in `venv`."""
    source = Path(sys.prefix) / "share" / "jupyter"
    target = venv / "share" / "jupyter"
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir() if source.is_dir() else ():
        (target / entry.name).symlink_to(entry)


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip install git+<url>` would build, from a copy of the project's files (then deleted)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=IGNORE, symlinks=True)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp)]
    subprocess.run([*build, str(source)], check=True, env=_clean_env(), timeout=300)
    shutil.rmtree(source)  # the checkout copy is gone: only the wheel is left
    (built,) = tmp.glob("lmlib-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(tmp_path_factory, wheel) -> Path:
    """A venv holding only the wheel; returns its python."""
    tmp = tmp_path_factory.mktemp("install")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*install, str(wheel)], check=True, env=_clean_env(), timeout=300)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, env=_clean_env(),
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "zz_test_dependencies.pth").write_text(f"{_deps_folder(tmp / 'dependencies')}\n")
    _link_jupyter_data(venv)
    return python


def run_in(folder: Path, python: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(python), *args], cwd=folder, env=_clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_venv_imports_lmlib_from_the_wheel_only(installed, tmp_path):
    code = (
        "import json, sys, lmlib, lmlib.paths as p; "
        "print(json.dumps({'file': lmlib.__file__, 'path': sys.path, 'root': str(p.checkout_root()), "
        "'austen': str(p.austen_dir()), 'params': str(p.params_dir()), 'notebooks': str(p.notebooks_dir())}))"
    )
    seen = json.loads(run_in(tmp_path, installed, "-c", code).stdout)
    venv = installed.parent.parent
    assert Path(seen["file"]).is_relative_to(venv) and seen["root"] == "None"
    assert not any(entry and Path(entry).resolve() == ROOT for entry in seen["path"])
    for key in ("austen", "params", "notebooks"):
        assert Path(seen[key]).is_relative_to(venv), seen[key]


def test_prepare_runs_from_an_empty_folder(installed, tmp_path):
    facts = json.loads(run_in(tmp_path, installed, "-m", "lmlib", "prepare", "--corpus", "austen", "--json").stdout)
    assert facts["vocab_size"] == 7784 and facts["train_tokens"] == 577514  # as in a checkout (notebook 01)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # it wrote nothing here


def test_the_smoke_report_runs_from_an_empty_folder(installed, tmp_path):
    done = run_in(tmp_path, installed, "-m", "lmlib", "report", "--profile", "smoke")
    report = tmp_path / "reports" / "smoke" / "report.html"
    assert report.is_file(), done.stdout[-2000:]
    html = report.read_text(encoding="utf-8")
    # two LSTM arms x seeds 1 and 2, and a Transformer arm with seed 1 (params/smoke.yaml)
    names = ["smoke-s1", "smoke-s2", "smoke-tied-s1", "smoke-tied-s2", "smoke-transformer-s1"]
    for name in names:
        assert name in html and (tmp_path / "runs" / "report-smoke" / name / "results.json").is_file()
    summary = json.loads((report.parent / "summary.json").read_text())
    assert sorted(run["run"] for run in summary["runs"]) == names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reports", "runs"]  # the job's files land here


def test_generates_with_model_austen_from_an_empty_folder(installed, tmp_path):
    """The shipped model is package data: text at once, with nothing trained and nothing of the checkout."""
    prompt = "It is a truth universally acknowledged"
    done = run_in(tmp_path, installed, "-m", "lmlib", "generate", "--model", "austen", "--prompt", prompt,
                  "--seed", "1", "--json")  # fmt: skip
    shown = json.loads(done.stdout)
    assert shown["text"] == prompt + shown["continuation"] and len(shown["tokens"]) >= 10
    where = run_in(tmp_path, installed, "-c", "from lmlib.pretrained.locate import locate; print(locate('austen')[0])")
    assert Path(where.stdout.strip()).is_relative_to(installed.parent.parent)  # read from the venv, not a checkout
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # it wrote nothing here


def test_installed_notebooks_run_in_the_users_folder(installed, tmp_path):
    """Relative paths in an installed package's notebooks (data/hpd, a corpus file) are the user's folder's."""
    code = """
import nbformat, pathlib
from lmlib.report.pipeline import Step, execute
nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
nb.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell("open('written-here.txt', 'w').write('ok')")]
folder = pathlib.Path("nb"); folder.mkdir(); nbformat.write(nb, folder / "a.ipynb")
execute(Step("a.ipynb", "a.ipynb", {}, "a"), folder, folder, folder)
"""
    run_in(tmp_path, installed, "-c", code)
    assert (tmp_path / "written-here.txt").read_text() == "ok"


def resolved(requirement: str, tmp_path: Path) -> set[str]:
    """The distributions a fresh install of `requirement` would bring (pip's own resolution, nothing installed)."""
    report = tmp_path / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q", "--report", str(report)]
    subprocess.run([*command, requirement], check=True, env=_clean_env(), capture_output=True, timeout=300)
    return {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}


def test_the_base_install_never_pulls_ipywidgets(wheel, tmp_path):
    """Only the notebooks extra wants ipywidgets (>= 7.7.1, so Colab's own 7.7.1 is kept)."""
    base = resolved(str(wheel), tmp_path)
    assert {"lmlib", "torch", "pandas"} <= base and "ipywidgets" not in base
    assert "ipywidgets" in resolved(f"lmlib[notebooks] @ {wheel.as_uri()}", tmp_path)
