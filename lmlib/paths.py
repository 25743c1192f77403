"""Where the project's own files are: the embedded corpus, the report profiles, the notebooks.

In a checkout (an editable install, `pip install -e .`) they are the folders beside the
package: data/austen, params, notebooks. A regular install (a wheel, `pip install
git+<url>` on Colab) carries copies of the same folders inside the package, under
lmlib/_bundled/ (see [tool.setuptools] in pyproject.toml), read with importlib.resources.
Everything else finds these folders through this module, never through `__file__`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT = PACKAGE_DIR.parent


def checkout_root() -> Path | None:
    """The source checkout holding this package (pyproject.toml beside it), or None for an install."""
    return _CHECKOUT if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "params").is_dir() else None


def _project_folder(relative: str) -> Path:
    root = checkout_root()
    if root is not None:
        return root / relative
    bundled = resources.files("lmlib") / "_bundled" / relative.replace("/", "_")
    return Path(str(bundled))  # wheels are installed unpacked, so this is a real folder


def austen_dir() -> Path:
    """The embedded default corpus: Jane Austen's six novels (gzipped UTF-8)."""
    return _project_folder("data/austen")


def params_dir() -> Path:
    """The report profiles (params/<profile>.yaml) and sweep spaces (params/sweeps/)."""
    return _project_folder("params")


def notebooks_dir() -> Path:
    """The numbered notebooks the report pipeline executes."""
    return _project_folder("notebooks")


def hpd_dir() -> Path:
    """Where `--corpus hpd` looks for your Harry Potter books: data/hpd in the checkout, else in the current folder."""
    root = checkout_root()
    return (root if root is not None else Path.cwd()) / "data" / "hpd"


def runs_dir() -> Path:
    """Where runs go by default: runs/ in the current folder (as the CLI's relative paths)."""
    return Path("runs")
