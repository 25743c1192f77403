"""One writer per run directory: an OS lock held while a process trains it, and what only its owner may do.

Two trainings into one folder would interleave their epochs in metrics.csv and leave
config.json and the weights from different runs. `own_run_dir` holds an exclusive lock for
the whole of `train()`: fcntl.flock on `.train.lock` inside the run directory, which the OS
releases when the process ends however it ends (a SIGKILL included), so a crash never leaves
a stale lock. Where there is no fcntl (Windows), or the file system refuses flock (some
network and FUSE mounts), the lock is the exclusive creation of `.train.pid`, removed at the
end; a crash can leave that one behind, and the message then says to delete it.

Only the owner cleans: temporary files that a killed write left (as large as a checkpoint),
and, when asked to start over, the run's own files, recognised as a run's by its config.json;
files that only share a run's names (someone's vocab.json, config.json) are never written over
or deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lmlib.atomic import STALE_PATTERN, write_error
from lmlib.errors import LMError
from lmlib.training.runs import RunPaths

try:
    import fcntl
except ImportError:  # Windows: fall back to an exclusively created lock file
    fcntl = None

LOCK_NAME, PID_LOCK_NAME = ".train.lock", ".train.pid"
# safetensors' own temporary file (Rust's tempfile crate: ".tmp" + 6 characters), which runs
# written before lmlib.atomic wrote through private folders could leave beside a checkpoint.
_SAFETENSORS_TMP = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")
_PID_TEXT = re.compile(rb"^\s*\d*\s*$")  # what a lock file of ours holds: a process id, or nothing yet


@contextmanager
def own_run_dir(root: str | os.PathLike) -> Iterator[Path]:
    """Hold `root` (created if missing) for this process; another owner, or files of a run's names that are
    not a run's (`check_run_files`), is a clear LMError. A folder this call created and left holding
    nothing but its lock (a refused or interrupted start) is removed again: a refusal leaves no trace."""
    root = Path(root)
    created = not (root.exists() or root.is_symlink())
    release = _hold(root)
    try:
        remove_stale_files(root)
        check_run_files(RunPaths(root))
        yield root
    finally:
        unused = created and _only_lock_files(root)
        if unused:
            (root / LOCK_NAME).unlink(missing_ok=True)  # under the lock: see _flock for whoever opened it before
        release()
        if unused:
            with contextlib.suppress(OSError):  # someone else's file appeared meanwhile: the folder stays
                root.rmdir()


def _hold(root: Path) -> Callable[[], None]:
    """Create `root` if missing and lock it; the function that releases the lock."""
    for _ in range(3):  # a lock file removed under us (own_run_dir's cleanup by its last owner): take the new one
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(root, err) from None
        try:
            release = _flock(root / LOCK_NAME) if fcntl is not None else None
        except _LockRemoved:
            continue
        return release or _create_exclusively(root / PID_LOCK_NAME)  # None: no flock on this file system
    raise _busy(root, "")


def _only_lock_files(root: Path) -> bool:
    try:
        return {entry.name for entry in root.iterdir()} <= {LOCK_NAME, PID_LOCK_NAME}
    except OSError:
        return False


def _busy(root: Path, pid: str, hint: str = "") -> LMError:
    return LMError(
        f"{root} is being trained by another process (pid {pid or 'unknown'}); "
        f"wait for it or choose another --run-dir{hint}"
    )


def _flock(lock: Path) -> Callable[[], None] | None:
    """Hold an flock on `lock`; None where the file system does not support flock."""
    fd = _open_lock(lock)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # someone holds it
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise _busy(lock.parent, pid) from None
    except OSError:  # ENOLCK, EOPNOTSUPP, ...: no flock here
        os.close(fd)
        return None
    if not _names(fd, lock):  # opened just before its last owner removed it (own_run_dir): a lock of nothing
        os.close(fd)
        raise _LockRemoved
    if not _PID_TEXT.match(os.pread(fd, 64, 0)):  # read under the lock: the last owner wrote a pid or nothing
        os.close(fd)
        raise _not_a_lock(lock, "holds something other than a process id")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return lambda: os.close(fd)  # closing the descriptor releases the lock


def _names(fd: int, lock: Path) -> bool:
    """Whether `lock` still names the file open as `fd`."""
    try:
        here, held = os.stat(lock, follow_symlinks=False), os.fstat(fd)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)


class _LockRemoved(Exception):
    """The lock was taken on a file its last owner had just removed (own_run_dir's cleanup): take it again."""


def _plain_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def _open_lock(lock: Path) -> int:
    """Open (or create) the lock file itself, never what a link there points to.

    Anyone who can write to a shared run folder (Drive, NFS) could plant `.train.lock` as a
    symbolic or hard link to another file; opening it normally, then truncating it to write our
    pid, would empty that file. O_NOFOLLOW refuses a symbolic link as the last component, and
    fstat then checks that what was opened is a regular file with no other name.
    """
    if lock.is_symlink():
        raise _not_a_lock(lock, "is a symbolic link")
    if lock.exists() and not lock.is_file():
        raise _not_a_lock(lock, "is not a regular file")
    # The checks above leave a moment in which the entry can change; the flags close it:
    # O_NOFOLLOW fails on a link, O_NONBLOCK keeps a FIFO from blocking the open.
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(lock, flags, 0o666)
    except OSError as err:
        if lock.is_symlink():  # ELOOP (Linux, macOS) or EMLINK (FreeBSD) under O_NOFOLLOW
            raise _not_a_lock(lock, "is a symbolic link") from None
        raise write_error(lock, err) from None
    info = os.fstat(fd)
    problem = "is not a regular file" if not stat.S_ISREG(info.st_mode) else ""
    problem = problem or ("has other names (a hard link)" if info.st_nlink > 1 else "")
    if problem:
        os.close(fd)
        raise _not_a_lock(lock, problem)
    return fd


def _not_a_lock(lock: Path, problem: str) -> LMError:
    return LMError(
        f"{lock} {problem}, not the lock file lmlib creates: nothing was written to it; "
        "remove it (it is not part of a run), then run the command again"
    )


def _create_exclusively(lock: Path) -> Callable[[], None]:
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        pid = lock.read_text(encoding="ascii", errors="replace").strip()[:32] if _plain_file(lock) else ""
        raise _busy(lock.parent, pid, f" (if no training runs there any more, delete {lock})") from None
    except OSError as err:
        raise write_error(lock, err) from None
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    return lambda: lock.unlink(missing_ok=True)


def remove_stale_files(root: Path) -> list[str]:
    """Delete what interrupted atomic writes left in `root` (nothing else); return their names. Owner only."""
    removed = []
    for entry in root.iterdir():
        if STALE_PATTERN.match(entry.name) or _SAFETENSORS_TMP.match(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def check_run_files(paths: RunPaths) -> None:
    """Refuse a folder whose files carry a run's names but are not a run's. Owner only.

    A run writes config.json before anything else, so without it a vocab.json, metrics.csv,
    ... there is someone else's, and training would overwrite it (and `--restart` delete it).
    """
    if paths.config.exists() or paths.config.is_symlink():
        return
    foreign = [p.name for p in paths.files() if p.exists() or p.is_symlink()]
    if foreign:
        raise LMError(
            f"{paths.root} holds {', '.join(foreign)} but no config.json: they are not files of an lmlib run, "
            "and training there would overwrite them; choose another --run-dir, or move them away"
        )


def is_run_config(path: Path) -> bool:
    """Whether `path` is a config.json that lmlib wrote (a JSON object with a "config" mapping, of any version)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and isinstance(raw.get("config"), dict)


def clear_run(paths: RunPaths) -> None:
    """Start over: delete the run's own files (config, vocabulary, weights, checkpoint, metrics, results).

    Owner only; anything else in the folder stays, and nothing is deleted unless config.json is
    a run's: a folder of someone else's config.json, results.json, ... is not a run to start over."""
    check_run_files(paths)
    if (paths.config.exists() or paths.config.is_symlink()) and not (
        paths.config.is_file() and not paths.config.is_symlink() and is_run_config(paths.config)
    ):
        raise LMError(
            f"{paths.config} is not the config.json of an lmlib run, so --restart deletes nothing there: "
            "choose another --run-dir, or delete the folder's files yourself if they are a damaged run"
        )
    for path in paths.files():
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            raise LMError(f"{path} is a folder, not a file of the run: move it away, then start over") from None
        except OSError as err:
            raise write_error(path, err) from None
