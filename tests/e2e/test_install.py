"""A regular install is self-contained: build the wheel, install it away from the checkout, run the main job.

This is what `pip install git+<url>` does on Colab: pip builds a wheel from the repository
and installs it into site-packages; nothing of the checkout is left to read. The fixtures
(tests/wheel_fixtures.py, shared with test_pipeline.py) build the wheel from a copy of the
project's files, install it with `--no-deps` into a new venv whose dependencies are links to
this interpreter's, and run `report --profile smoke` with it from an empty folder, once per
session. Here: the venv imports lmlib from the wheel only, and `prepare`, `report` and
`generate --model austen` run from an empty folder and write only where they should.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT
from wheel_fixtures import clean_env, run_in


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


def test_the_smoke_report_runs_from_an_empty_folder(smoke_build):
    """smoke_build ran `python -m lmlib report --profile smoke` with the installed wheel in an empty folder."""
    report = smoke_build / "reports" / "smoke" / "report.html"
    assert report.is_file()
    html = report.read_text(encoding="utf-8")
    # two LSTM arms x seeds 1 and 2, and a Transformer arm with seed 1 (params/smoke.yaml)
    names = ["smoke-s1", "smoke-s2", "smoke-tied-s1", "smoke-tied-s2", "smoke-transformer-s1"]
    for name in names:
        assert name in html and (smoke_build / "runs" / "report-smoke" / name / "results.json").is_file()
    summary = json.loads((report.parent / "summary.json").read_text())
    assert sorted(run["run"] for run in summary["runs"]) == names
    assert sorted(p.name for p in smoke_build.iterdir()) == ["reports", "runs"]  # the job's files land here


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
    subprocess.run([*command, requirement], check=True, env=clean_env(), capture_output=True, timeout=300)
    return {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}


def test_the_base_install_never_pulls_ipywidgets(wheel, tmp_path):
    """Only the notebooks extra wants ipywidgets (>= 7.7.1, so Colab's own 7.7.1 is kept)."""
    base = resolved(str(wheel), tmp_path)
    assert {"lmlib", "torch", "pandas"} <= base and "ipywidgets" not in base
    assert "ipywidgets" in resolved(f"lmlib[notebooks] @ {wheel.as_uri()}", tmp_path)
