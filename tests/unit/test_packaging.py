"""pyproject.toml and environment.yml name the same dependencies."""

import re
import tomllib

import yaml
from conftest import ROOT


def normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared |= set(extra)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {r for r in pip_section if not r.startswith("-e")}
    assert {normalise(r) for r in listed} == {normalise(r) for r in declared}
    editable = next(r for r in pip_section if r.startswith("-e"))
    extras = set(re.search(r"\[(.*)\]", editable).group(1).split(","))
    assert extras == set(project["optional-dependencies"])
    assert "python=3.11" in env["dependencies"]
    assert project["requires-python"] == ">=3.11"


def test_gitignore_keeps_runs_venv_and_the_copyrighted_corpus_out():
    ignored = (ROOT / ".gitignore").read_text().split()
    for entry in ("runs/", ".venv/", "data/hpd/", "__pycache__/"):
        assert entry in ignored


def test_the_wheel_lists_every_code_package():
    """A subpackage missing from [tool.setuptools] packages is missing from the wheel (lmlib.evaluation once was)."""

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "lmlib").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)


def test_the_shipped_models_and_the_card_template_are_package_data():
    """lmlib/pretrained/<name>/ holds what `lmlib export` writes; each file must match a package-data pattern."""
    import fnmatch

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    wanted = patterns["lmlib.pretrained"]
    written = ["config.json", "model.safetensors", "vocab.json", "casing.json", "results.json", "README.md"]
    for name in [f"austen/{file}" for file in written] + ["templates/model_card.md"]:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in wanted), f"{name} would not be in the wheel"
