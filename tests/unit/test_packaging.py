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


# Import names whose distribution is named otherwise, and imports that are optional by design.
DISTRIBUTION = {"yaml": "pyyaml", "IPython": "ipython", "psycopg": "psycopg"}
OPTIONAL = {"google"}  # google.colab exists only on Colab (lmlib.apps.colab imports it when there)


def declared_requirements() -> dict[str, str]:
    """name -> specifier of every requirement in pyproject.toml, the core and every extra."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [
        *project["dependencies"],
        *(r for extra in project["optional-dependencies"].values() for r in extra),
    ]
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in requirements}


def test_every_package_lmlib_imports_is_declared():
    import ast
    import sys

    imported = set()
    for path in (ROOT / "lmlib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported - set(sys.stdlib_module_names) if name not in ("lmlib", "__future__")}
    from packaging.utils import canonicalize_name

    declared = {canonicalize_name(n) for n in declared_requirements()}
    missing = {canonicalize_name(DISTRIBUTION.get(n, n)) for n in third_party - OPTIONAL} - declared
    assert missing == set(), f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_the_lock_pins_every_declared_package_within_its_declared_range():
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    for name, spec in declared_requirements().items():
        name = canonicalize_name(name)
        if name == "torch":
            continue  # installed first by make (or Colab's own), never pinned here
        assert name in pins, f"{name} is declared but constraints.txt does not pin it: run make lock"
        assert pins[name] in SpecifierSet(spec), f"constraints.txt pins {name}=={pins[name]}, outside {spec}"


def test_the_title_page_says_whether_the_installed_packages_are_the_pinned_ones(tmp_path):
    from importlib import metadata

    from lmlib.report.title import lock_text

    numpy = metadata.version("numpy")
    (tmp_path / "constraints.txt").write_text(f"# pins\nnumpy=={numpy}\n")
    assert lock_text(tmp_path) == "constraints.txt: every pinned package is installed at its pin"
    (tmp_path / "constraints.txt").write_text("numpy==0.0.1\nno-such-package-here==1.0\n")
    assert lock_text(tmp_path) == (
        f"constraints.txt: 2 installed package(s) differ from the pins: numpy {numpy} (pinned 0.0.1), "
        "no-such-package-here not installed (pinned 1.0)"
    )
    assert lock_text(tmp_path / "elsewhere") == ""


def test_the_shipped_models_and_the_card_template_are_package_data():
    """lmlib/pretrained/<name>/ holds what `lmlib export` writes; each file must match a package-data pattern."""
    import fnmatch

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    wanted = patterns["lmlib.pretrained"]
    written = ["config.json", "model.safetensors", "vocab.json", "casing.json", "results.json", "README.md"]
    for name in [f"austen/{file}" for file in written] + ["templates/model_card.md"]:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in wanted), f"{name} would not be in the wheel"
