"""The installed wheel and the smoke report it builds: made once per test session, read by several files.

A pytest plugin (conftest.py lists it in `pytest_plugins`). Building the smoke report is the
suite's slowest step (about 2.5 minutes on 2 cores), and two files read one: tests/e2e/test_install.py
checks that the installed wheel builds it from an empty folder, tests/e2e/test_pipeline.py checks
what is inside it. One build serves both. Under pytest-xdist each worker is its own process, so
"once per session" needs the file system: the first worker to ask builds under a file lock in the
session's shared temporary folder, the others wait on the lock and read what it left (the pattern
pytest-xdist's documentation gives for session fixtures). A failed build is recorded too, so a
second worker reports the same failure instead of building again.

The wheel: what `pip install git+<url>` builds on Colab, from a copy of the project's files (so
that no stale build/ folder leaks in), installed with `--no-deps` into a new venv. A truly fresh
venv would download torch, pandas, papermill... (about a gigabyte, minutes, and a network) for
every run; instead the new venv gets one .pth file naming a folder of links to this interpreter's
site-packages *minus* lmlib (its package, dist-info and editable-install hooks), and links to the
data files those packages install under <prefix>/share/jupyter (nbconvert's templates, the kernel
spec), where a real install would have put them. A .pth line only appends a folder to sys.path,
after the venv's own site-packages, and .pth files inside that folder are not processed, so the
only lmlib the venv can import is the wheel's; test_install asserts that.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What the wheel is built from: the project's own files, none of what builds or runs leave behind.
IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "runs", "prepared", "reports", ".pytest_cache"
)


def clean_env(**extra) -> dict:
    """This environment without what would point a child Python at the checkout, one torch thread."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def run_in(folder: Path, python: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python args` in `folder`; a non-zero exit fails with the end of its output."""
    done = subprocess.run(
        [str(python), *args], cwd=folder, env=clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{args}: {done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def once(tmp_path_factory, name: str, make: Callable[[Path], Path]) -> Path:
    """`make(folder)` run once per test session, whichever xdist worker asks first; its result for every asker."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: the usual per-session fixture
        return make(tmp_path_factory.mktemp(name))
    from filelock import FileLock  # a dependency of torch

    shared = tmp_path_factory.getbasetemp().parent  # this session's folder, above the workers' own
    folder, outcome = shared / name, shared / f"{name}.outcome.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not outcome.is_file():  # this worker builds: its own failure is raised as it is
            folder.mkdir()
            try:
                built = make(folder)
            except BaseException:
                outcome.write_text(json.dumps({"error": traceback.format_exc()}))
                raise
            outcome.write_text(json.dumps({"path": str(built)}))
            return built
    result = json.loads(outcome.read_text())
    if "error" in result:
        pytest.fail(f"{name}, built once for the session, failed:\n{result['error'][-4000:]}", pytrace=False)
    return Path(result["path"])


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


def build_wheel(folder: Path) -> Path:
    """The wheel `pip install git+<url>` would build, from a copy of the project's files (then deleted)."""
    source = folder / "source"
    shutil.copytree(ROOT, source, ignore=IGNORE, symlinks=True)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(folder)]
    subprocess.run([*build, str(source)], check=True, env=clean_env(), timeout=300)
    shutil.rmtree(source)  # the checkout copy is gone: only the wheel is left
    (built,) = folder.glob("lmlib-*.whl")
    return built


def install_wheel(folder: Path, wheel: Path) -> Path:
    """A venv in `folder` holding only the wheel (and links to the dependencies); returns its python."""
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    subprocess.run([*install, str(wheel)], check=True, env=clean_env(), timeout=300)
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, env=clean_env(),
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "zz_test_dependencies.pth").write_text(f"{_deps_folder(folder / 'dependencies')}\n")
    _link_jupyter_data(venv)
    return python


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    return once(tmp_path_factory, "wheel", build_wheel)


@pytest.fixture(scope="session")
def installed(tmp_path_factory, wheel) -> Path:
    """The python of a venv holding only the wheel."""
    return once(tmp_path_factory, "install", lambda folder: install_wheel(folder, wheel))


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory, installed) -> Path:
    """A folder, empty before, where the installed wheel ran `python -m lmlib report --profile smoke`.

    Returns the folder; the report is reports/smoke/report.html under it, its runs runs/report-smoke/.
    """

    def build(folder: Path) -> Path:
        run_in(folder, installed, "-m", "lmlib", "report", "--profile", "smoke")
        return folder

    return once(tmp_path_factory, "smoke-build", build)
