"""Atomic writes: a reader sees the old file or the new one, never half of either.

Every temporary entry is hidden, beside its target, and named `.NAME.XXXXXXXX.tmp`
(STALE_PATTERN), so that what a killed process leaves behind can be recognised and removed
by the next owner of the folder (lmlib.training.ownership). A write that fails because of
the system (a full disk, a quota, a read-only or forbidden folder) raises LMError naming the
file and the cause, never a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lmlib.errors import LMError


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# mkstemp/mkdtemp (and safetensors, which writes through its own temporary file) create
# entries only the owner can read; give them the modes a plain open()/mkdir() would
# (0666 / 0777 minus the umask) so runs and reports are shareable.
_UMASK = _current_umask()
_FILE_MODE, _DIR_MODE = 0o666 & ~_UMASK, 0o777 & ~_UMASK
# What tempfile.mkdtemp(prefix=".NAME.", suffix=".tmp") names: 8 characters of [a-z0-9_].
STALE_PATTERN = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")

_CAUSES = {
    getattr(errno, name): cause
    for name, cause in (
        ("ENOSPC", "the disk is full: free some space, then run the command again"),
        ("EDQUOT", "the disk quota is used up: free some space, then run the command again"),
        ("EROFS", "the file system is read-only: choose a folder you can write to"),
        ("EACCES", "permission denied: choose a folder you can write to"),
        ("EPERM", "permission denied: choose a folder you can write to"),
        ("EFBIG", "the file is larger than this system allows (ulimit -f)"),
    )
    if hasattr(errno, name)  # EDQUOT is missing on some systems
}


def write_error(path: str | os.PathLike, err: OSError) -> LMError:
    """An LMError naming the file that could not be written and why (a full disk, permissions, ...)."""
    cause = _CAUSES.get(err.errno, err.strerror or str(err))
    return LMError(f"cannot write {path}: {cause}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    The path lies in a private hidden folder (`.NAME.XXXXXXXX.tmp/NAME`), so a writer that
    makes temporary files of its own next to its target (safetensors does) leaves them there
    too, where a crash's leftovers are recognisable.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise write_error(path, err) from None
    tmp_path = folder / path.name
    try:
        yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)  # after the write: a writer may have replaced the file
        os.replace(tmp_path, path)  # atomic on POSIX and Windows within one filesystem
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; it replaces `path` as a whole only if the block succeeds."""
    path = Path(os.path.abspath(path))
    check_replaceable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, _DIR_MODE)
    except OSError as err:
        raise write_error(path, err) from None
    try:
        yield tmp
        replace_dir(tmp, path)
    except OSError as err:
        raise write_error(path, err) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_replaceable(target: str | os.PathLike) -> None:
    """Refuse to replace the root, the current folder or a folder above it (renaming it away would lose our place)."""
    target = Path(os.path.abspath(target))
    here = Path.cwd()
    if target == Path(target.anchor):
        raise LMError(f"{target} is the root of the file system: name a folder of its own")
    if target == here or target in here.parents:
        where = "the current folder" if target == here else "a folder above the current one"
        raise LMError(f"{target} is {where}: name a new folder of its own instead")


def replace_dir(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename folder `source` over `target`; whatever was at `target` is removed only once the new one is in place.

    The caller decides whether what is at `target` may go (lmlib.data.prepared checks that it
    holds prepared data; the report pipeline owns reports/<profile>/).
    """
    source, target = Path(source), Path(os.path.abspath(target))
    check_replaceable(target)
    holder = old = None
    try:
        if target.exists() or target.is_symlink():
            # The old one waits in a fresh private folder (.NAME.XXXXXXXX.tmp, which a killed
            # process leaves recognisable), never under a fixed name such as .NAME.old: a folder
            # of the user's could have that name, and clearing the way would delete it.
            holder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
            old = holder / target.name
            os.replace(target, old)
        try:
            os.replace(source, target)
        except OSError:
            if old is not None:
                os.replace(old, target)  # put the old one back: nothing is lost when the swap fails
            raise
    except OSError as err:
        raise write_error(target, err) from None
    finally:
        if holder is not None:
            shutil.rmtree(holder, ignore_errors=True)


def check_new_folder(target: str | os.PathLike, what: str, hint: str) -> None:
    """Refuse to write `what` over anything but a missing or empty folder (nor the current folder or one above it).

    `hint` says what to do instead; the message names what is there, so nothing of the user's
    is replaced by a folder lmlib builds.
    """
    target = Path(target)
    check_replaceable(target)
    if not (target.exists() or target.is_symlink()):
        return
    if target.is_dir() and not target.is_symlink():
        names = sorted(p.name for p in target.iterdir())
        if not names:
            return
        found = f"a folder holding {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
    else:
        found = "a symbolic link" if target.is_symlink() else "a file"
    raise LMError(f"{target} is {found}, not a new or empty folder: writing {what} there would delete it; {hint}")
