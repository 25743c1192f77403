"""One field of a report profile read and checked: seeds, parallel, the sweep block, how the corpus is named.

lmlib.report.profiles composes them into a Profile; each reader names the YAML file in its error.
"""

from __future__ import annotations

import re
from pathlib import Path

from lmlib.checks import check_int, not_int
from lmlib.errors import LMError

# How a title names the corpus ({corpus} in params/*.yaml titles); a path is named by its folder or file.
CORPUS_TITLES = {"austen": "Jane Austen's novels", "hpd": "the Harry Potter books"}


_SWEEP_KEYS = {"space", "trials", "storage", "study"}


def read_sweep(path: Path, block) -> dict | None:
    """The profile's sweep: the space file resolved (params/sweeps/<name>.yaml or a path), trials >= 1."""
    if block is None:
        return None
    if not isinstance(block, dict) or set(block) - _SWEEP_KEYS or "space" not in block:
        raise LMError(f"{path}: sweep is a mapping with a space and trials (storage, study optional), not {block!r}")
    trials = block.get("trials", 3)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise LMError(f"{path}: sweep.trials is the study's number of trials, a whole number >= 1, not {trials!r}")
    space = Path(str(block["space"]))
    if space.suffix not in (".yaml", ".yml"):
        space = path.parent / "sweeps" / f"{space}.yaml"
    if not space.is_file():
        raise LMError(f"{path}: sweep.space {block['space']!r} is not a file ({space}): name one in params/sweeps/")
    return {"space": str(space.resolve()), "trials": trials, "storage": block.get("storage"),
            "study": str(block.get("study") or path.stem)}  # fmt: skip


def corpus_title(corpus: str) -> str:
    """How the report names a corpus: "Jane Austen's novels", "the Harry Potter books", or its folder/file name."""
    if corpus in CORPUS_TITLES:
        return CORPUS_TITLES[corpus]
    path = Path(corpus).expanduser()
    return f"the corpus “{path.name or corpus}”"


def title_for(title: str, named: str, changed: bool) -> str:
    if "{corpus}" in title:
        return title.replace("{corpus}", named)
    return f"{title}, on {named}" if changed else title


def folder_suffix(changed: dict) -> str:
    """'-hpd', '-my_books-by-book', '-mf5': what sets a profile on other data apart, as a folder name."""
    parts = []
    if "corpus" in changed:
        path = Path(str(changed["corpus"])).expanduser()
        name = path.name.split(".")[0] if path.name else str(changed["corpus"])
        parts.append(re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-") or "corpus")
    if "protocol" in changed:
        parts.append(str(changed["protocol"]))
    if "min_freq" in changed:
        parts.append(f"mf{changed['min_freq']}")
    return "".join(f"-{p}" for p in parts)


def read_seeds(path: Path, where: str, value) -> tuple[int, ...] | None:
    """`seeds: [1, 2]`: distinct whole numbers >= 0; None when not given."""
    if value is None:
        return None
    ok = isinstance(value, list) and value and all(not not_int(s) and s >= 0 for s in value)
    if not ok or len(set(value)) != len(value):
        raise LMError(
            f"{path}: seeds of {where} must be a list of distinct whole numbers >= 0, e.g. [1, 2], not {value!r}"
        )
    return tuple(value)


def read_parallel(path: Path, value) -> int:
    try:
        check_int("parallel", value, minimum=1)
    except LMError as err:
        raise LMError(f"{path}: {err} (how many runs train at once)") from None
    return value
