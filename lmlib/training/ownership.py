"""One writer per run directory: an OS lock held while a process trains it, and what only its owner may do.

Two trainings into one folder would interleave their epochs in metrics.csv and leave
config.json and the weights from different runs. `own_run_dir` holds an exclusive lock for
the whole of `train()`: fcntl.flock on `.train.lock` inside the run directory, which the OS
releases when the process ends however it ends (a SIGKILL included), so a crash never leaves
a stale lock. Where there is no fcntl (Windows), or the file system refuses flock (some
network and FUSE mounts), the lock is the exclusive creation of `.train.pid`, removed at the
end; a crash can leave that one behind, and the message then says to delete it.

Only the owner cleans: temporary files that a killed write left (as large as a checkpoint),
and, when asked to start over, the run's own files.
"""

from __future__ import annotations

import os
import re
import shutil
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


@contextmanager
def own_run_dir(root: str | os.PathLike) -> Iterator[Path]:
    """Hold `root` (created if missing) for this process; another owner is a clear LMError."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise write_error(root, err) from None
    release = _flock(root / LOCK_NAME) if fcntl is not None else None
    if release is None:
        release = _create_exclusively(root / PID_LOCK_NAME)
    try:
        remove_stale_files(root)
        yield root
    finally:
        release()


def _busy(root: Path, pid: str, hint: str = "") -> LMError:
    return LMError(
        f"{root} is being trained by another process (pid {pid or 'unknown'}); "
        f"wait for it or choose another --run-dir{hint}"
    )


def _flock(lock: Path) -> Callable[[], None] | None:
    """Hold an flock on `lock`; None where the file system does not support flock."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise write_error(lock, err) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # someone holds it
        pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        raise _busy(lock.parent, pid) from None
    except OSError:  # ENOLCK, EOPNOTSUPP, ...: no flock here
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return lambda: os.close(fd)  # closing the descriptor releases the lock


def _create_exclusively(lock: Path) -> Callable[[], None]:
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        pid = lock.read_text(encoding="ascii", errors="replace").strip() if lock.is_file() else ""
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


def clear_run(paths: RunPaths) -> None:
    """Start over: delete the run's own files (config, vocabulary, weights, checkpoint, metrics, results).

    Owner only; anything else in the folder stays."""
    for path in paths.files():
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            raise LMError(f"{path} is a folder, not a file of the run: move it away, then start over") from None
        except OSError as err:
            raise write_error(path, err) from None
