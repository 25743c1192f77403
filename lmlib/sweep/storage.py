"""Where a study lives, so that workers anywhere can share it: SQLite, a journal file, PostgreSQL.

    sqlite:///runs/sweeps.db                       one machine (the default)
    journal:/content/drive/MyDrive/lmlib.journal   a file in a shared folder: NFS, Google Drive on Colab
    postgresql://user:password@host:5432/optuna    many machines (psycopg 3, or psycopg2 when that is installed)

A worker that dies (a Colab runtime that disconnects, a SIGKILL) stops beating: every worker
sends a heartbeat for its running trial every `heartbeat` seconds, and one whose trial has
been silent for `grace` seconds is failed by the next worker that looks, which puts the same
parameters back in the queue as a WAITING trial (optuna's retry callback, at most 3 times):
the trial is retried, not lost. The database storages have this built in (optuna's
RDBStorage, timed by the database's clock). This optuna's journal storage has no heartbeat,
so HeartbeatJournalStorage adds the same protocol: the beat is a trial attribute written to the
journal, and failing a stale trial is a compare-and-set on the journal (the first worker's FAIL
wins; a second one gets UpdateFinishedTrialError), so a dead trial is retried once, not twice.
Its timestamps are the workers' own clocks: keep `grace` well above their skew (NTP keeps
machines within a second; the default grace is two minutes).
"""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path

from lmlib.errors import LMError

DEFAULT_STORAGE = "sqlite:///runs/sweeps.db"
MAX_RETRY = 3  # a trial that kills its worker three times is not retried a fourth
_BEAT = "lmlib:heartbeat"  # the journal's heartbeat: a trial system attribute, in seconds since the epoch


def open_storage(url: str, heartbeat: int = 60, grace: int | None = None):
    """The optuna storage for `url`, with heartbeats every `heartbeat` s and stale after `grace` s (2x)."""
    import optuna

    if heartbeat < 1 or (grace is not None and grace <= heartbeat):
        raise LMError(f"heartbeat must be >= 1 s and grace longer than it, got {heartbeat} and {grace}")
    grace = grace or 2 * heartbeat
    # optuna marks heartbeats and retries "experimental" (since 2.8); they are what a shared study needs
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    retry = retry_callback()
    if url.startswith("journal:"):
        return _journal(url, heartbeat, grace, retry)
    if url.startswith(("sqlite:", "postgresql")):
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        url = _with_installed_driver(url)
        callback = "heartbeat_stale_trial_callback" if _new_heartbeat_api() else "failed_trial_callback"
        try:
            return _rdb_storage(url, heartbeat_interval=heartbeat, grace_period=grace, **{callback: retry})
        except ImportError as err:
            raise LMError(f"{url.split(':')[0]} needs its driver: pip install 'lmlib[postgres]' ({err})") from None
        except Exception as err:  # sqlalchemy's errors: a server that does not answer, a wrong password
            raise LMError(f"cannot open the study storage {_hide_password(url)}: {type(err).__name__}: {err}") from None
    raise LMError(
        f"unknown storage {url!r}: use sqlite:///path.db, journal:/path/to/file.journal or postgresql://user@host/db"
    )


def _rdb_storage(url: str, attempts: int = 5, **options):
    """optuna's RDBStorage, tried again when another worker is creating the same new database's tables.

    Two workers started together on a fresh database both see no schema and both create it;
    the slower one fails on the alembic version row (IntegrityError) or on a table that now
    exists. On the next try the schema is there and the storage opens.
    """
    import optuna
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(1, attempts + 1):
        try:
            return optuna.storages.RDBStorage(url, **options)
        except (IntegrityError, OperationalError) as err:
            racing = isinstance(err, IntegrityError) or any(
                word in str(err) for word in ("already exists", "database is locked")
            )
            if not racing or attempt == attempts:
                raise
            time.sleep(0.5 * attempt)


def _with_installed_driver(url: str) -> str:
    """postgresql:// with the driver that is installed: SQLAlchemy >= 2.1 assumes psycopg 3, older ones psycopg2."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    for module, dialect in (("psycopg", "postgresql+psycopg://"), ("psycopg2", "postgresql+psycopg2://")):
        if importlib.util.find_spec(module) is not None:
            return dialect + url[len("postgresql://") :]
    return url  # SQLAlchemy's own message names the missing driver


def retry_callback():
    """Optuna's callback that re-queues a stale trial's parameters (its name changed in optuna 4.x)."""
    import optuna.storages as storages

    cls = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback
    # the retry inherits the dead trial's reported epochs, so the pruner sees the whole curve
    return cls(max_retry=MAX_RETRY, inherit_intermediate_values=True)


def retried_number(trial) -> int | None:
    """The number of the trial that a retried trial repeats (None for an original trial)."""
    return trial.system_attrs.get("failed_trial")


def _new_heartbeat_api() -> bool:
    import optuna.storages as storages

    return hasattr(storages, "RetryHeartbeatStaleTrialCallback")


def _hide_password(url: str) -> str:
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    return url.replace(f":{password}@", ":***@") if password else url


def _journal(url: str, heartbeat: int, grace: int, retry):
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = Path(url[len("journal:") :].removeprefix("//"))
    if not str(path) or str(path) == ".":
        raise LMError("journal: names a file, e.g. journal:/content/drive/MyDrive/lmlib/sweeps.journal")
    path.parent.mkdir(parents=True, exist_ok=True)
    # The open-file lock (O_CREAT | O_EXCL) works where symlinks do not, as on Google Drive's mount.
    backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    return _heartbeat_journal_class()(backend, heartbeat, grace, retry)


@functools.cache
def _heartbeat_journal_class():
    """JournalStorage + optuna's heartbeat protocol (built on first use: optuna is an optional extra)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.storages import JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import TrialState

    class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
        """A journal-file study whose running trials beat, so that a dead worker's trial is retried."""

        def __init__(self, backend, heartbeat: int, grace: int, callback):
            super().__init__(backend)
            self.heartbeat, self.grace, self.callback = heartbeat, grace, callback

        def record_heartbeat(self, trial_id: int) -> None:
            try:
                self.set_trial_system_attr(trial_id, _BEAT, time.time())
            except UpdateFinishedTrialError:
                pass  # another worker judged this trial dead meanwhile; its retry is queued

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now, stale = time.time(), []
            for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                last = trial.system_attrs.get(_BEAT, trial.datetime_start.timestamp())
                if now - last > self.grace:
                    stale.append(trial._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int:
            return self.heartbeat

        def get_heartbeat_stale_trial_callback(self):
            return self.callback

        def get_failed_trial_callback(self):  # the same, by its name before optuna 4.9
            return self.callback

    return HeartbeatJournalStorage
