"""Where a model is: a folder, a model shipped inside lmlib, or a Hugging Face Hub id.

    locate("runs/cpu")            a run directory or an exported folder (holds config.json)
    locate("austen")              lmlib/pretrained/austen/, shipped in the wheel
    locate("someone/austen-lstm") the Hub's copy, through huggingface_hub's own cache

A folder that exists wins over a name (as in Hugging Face's from_pretrained). Hub ids go
through `huggingface_hub.snapshot_download`: its cache, its offline mode (HF_HUB_OFFLINE=1),
its authentication; lmlib never downloads anything itself. Only the files an exported folder
holds are fetched, and they are read as safetensors and JSON: nothing is unpickled.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lmlib.errors import LMError
from lmlib.paths import PACKAGE_DIR

SHIPPED = ("austen",)  # models inside the package: lmlib/pretrained/<name>/
DEFAULT_MODEL = "austen"  # what `serve` and notebook 04 use when no run is named
HUB_FILES = ["config.json", "model.safetensors", "vocab.json", "casing.json", "results.json", "README.md"]
# A Hub repository id: owner/name, letters, digits, - _ . (huggingface_hub's own rule, in short).
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


def shipped_dir() -> Path:
    """The folder of the models shipped inside lmlib (a checkout's lmlib/pretrained/, or the installed one)."""
    return PACKAGE_DIR / "pretrained"


def locate(name_or_path: str | os.PathLike) -> tuple[Path, str]:
    """(the local folder holding the model, a short name for it); a clear LMError when there is none.

    A string may be any of the three; a Path (what --run-dir gives) is a folder only.
    """
    path = Path(name_or_path)
    text = str(name_or_path)
    if isinstance(name_or_path, os.PathLike) and not path.is_dir():  # a path is a folder, never a name or an id
        raise LMError(f"{path} is not a run directory (no such folder): train one with python -m lmlib train")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise LMError(f"{path} holds no model (no config.json): give a run directory or a folder from lmlib export")
        return path, path.resolve().name
    if text in SHIPPED:
        folder = shipped_dir() / text
        if not (folder / "config.json").is_file():
            raise LMError(
                f"the shipped model {text!r} is missing from this lmlib ({folder}): reinstall lmlib, "
                "or give a run directory with --run-dir"
            )
        return folder, text
    if path.exists():
        raise LMError(f"{path} is a file: give the folder holding the model's config.json")
    if isinstance(name_or_path, str) and _HUB_ID.match(text):
        return from_hub(text), text
    shipped = ", ".join(SHIPPED)
    raise LMError(
        f"no model {text!r}: it is not a folder here, not a shipped model ({shipped}), and not a "
        "Hugging Face Hub id (owner/name)"
    )


def from_hub(repo_id: str) -> Path:
    """The Hub repository `repo_id` as a local folder, from huggingface_hub's cache (downloading when online)."""
    try:
        from huggingface_hub import snapshot_download
    except ModuleNotFoundError:
        raise LMError(
            f"{repo_id!r} is not a folder here; to load it from the Hugging Face Hub, "
            "pip install huggingface-hub (or lmlib[hub])"
        ) from None
    try:
        folder = Path(snapshot_download(repo_id=repo_id, allow_patterns=HUB_FILES, library_name="lmlib"))
    except Exception as err:  # noqa: BLE001 - the Hub raises many kinds (offline, not found, HTTP): one line each
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise LMError(
            f"{repo_id!r} is not a folder here, and the Hugging Face Hub did not give it ({reason}): "
            "check the path, or the Hub id and your connection (offline, HF_HUB_OFFLINE=1 reads only its cache)"
        ) from None
    if not (folder / "config.json").is_file():
        raise LMError(f"the Hub repository {repo_id!r} holds no config.json: it is not a model from lmlib export")
    return folder
