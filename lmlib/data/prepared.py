"""Prepared data on disk: a folder with vocab.json, {train,valid,test}.npy, meta.json and casing.json.

casing.json (data/casing.py) is absent for pre-split corpora and for folders prepared before it existed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from lmlib.atomic import atomic_dir, check_replaceable
from lmlib.data.casing import load_casing, save_casing
from lmlib.data.corpus import SPLIT_NAMES
from lmlib.data.splits import Prepared
from lmlib.data.vocab import Vocab
from lmlib.errors import LMError

PREPARED_FILES = ("meta.json", "vocab.json", "casing.json", *(f"{split}.npy" for split in SPLIT_NAMES))


def check_prepared_target(folder: str | os.PathLike, force: bool = False) -> None:
    """Refuse to replace anything but prepared data: `folder` must be missing, empty, or hold only what
    `save_prepared` writes (meta.json among them); `force` replaces whatever is there."""
    folder = Path(folder)
    check_replaceable(folder)  # never the current folder or one above it, even with force
    if force or not (folder.exists() or folder.is_symlink()):
        return
    if folder.is_dir():
        names = sorted(p.name for p in folder.iterdir())
        others = [n for n in names if n not in PREPARED_FILES]
        if not names or ("meta.json" in names and not others):
            return
        listed = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        what = f"a folder holding other files ({listed})"
    else:
        what = "a file"
    raise LMError(
        f"{folder} is {what}, not prepared data: writing there would delete it; "
        "choose a new or empty folder, or pass --force to replace it"
    )


def save_prepared(prepared: Prepared, folder: str | os.PathLike, force: bool = False) -> Path:
    """Write `prepared` to `folder`, replacing it as a whole (atomically) if it holds prepared data
    (anything else only with `force`)."""
    folder = Path(folder)
    check_prepared_target(folder, force)
    with atomic_dir(folder) as tmp:
        prepared.vocab.save(tmp / "vocab.json")
        if prepared.casing is not None:
            save_casing(tmp / "casing.json", prepared.casing)
        for split in SPLIT_NAMES:
            np.save(tmp / f"{split}.npy", prepared.splits[split].astype(np.int32), allow_pickle=False)
        meta = {
            "corpus": prepared.corpus,
            "protocol": prepared.protocol,
            "min_freq": prepared.min_freq,
            "split_tokens": prepared.split_tokens,
            "split_types": prepared.split_types,
            "book_tokens": prepared.book_tokens,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return folder


def load_prepared(folder: str | os.PathLike) -> Prepared:
    """Read a folder written by `save_prepared`."""
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise LMError(f"{folder} holds no prepared data: run `python -m lmlib prepare --prepared-dir {folder}` first")
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        splits = {s: np.load(folder / f"{s}.npy", allow_pickle=False).astype(np.int64) for s in SPLIT_NAMES}
    except (OSError, ValueError) as err:
        raise LMError(f"prepared data in {folder} is damaged ({err}): prepare it again") from None
    return Prepared(
        meta["corpus"],
        meta["protocol"],
        meta["min_freq"],
        Vocab.load(folder / "vocab.json"),
        splits,
        meta["split_tokens"],
        meta["split_types"],
        meta["book_tokens"],
        load_casing(folder / "casing.json"),
    )
