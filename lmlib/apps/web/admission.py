"""Admission control: a few generation slots, a short bounded queue, and refusal at once.

A generation holds its server thread from start to end, and so does a request waiting for
a slot. Were waiting unbounded, a burst of requests would take every thread, and /health,
the page and even the requests to be refused would queue behind the generations. So a
request is *admitted* only while running + waiting < slots + queue; any other gets 503
with Retry-After at once, before it waits for anything. An admitted request waits at most
`queue_seconds` for a slot, and leaves the queue as soon as its client has gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lmlib.apps.web.request import Refused
from lmlib.errors import LMError

RETRY_AFTER_SECONDS = 1  # about one short generation: when a slot may be free again
POLL_SECONDS = 0.1  # how often a waiting request checks that its client is still there


class Busy(Refused):
    """Every slot and queue place is taken, or stayed taken: the client may retry (503)."""

    def __init__(self, message: str):
        super().__init__(message, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)})


class ClientGone(LMError):
    """The client closed its connection: whatever is answered, nobody reads it (unless it only half-closed)."""


# What a client that only shut down its sending side (nc -N) reads: TCP shows it as gone.
GONE_HINT = " (or only its sending side, which looks the same): keep the connection open until the answer arrives"


def never() -> bool:
    """The `gone` check where the server cannot tell (Flask's test client, its dev server)."""
    return False


class Admission:
    """`slots` generations at once, `queue` more waiting; any beyond are refused at once."""

    def __init__(self, slots: int, queue: int, queue_seconds: float):
        self.slots, self.queue, self._queue_seconds = slots, queue, queue_seconds
        self._free = threading.Semaphore(slots)
        self._lock = threading.Lock()
        self._running = self._waiting = self._refused = self._abandoned = 0

    def counts(self) -> dict:
        """What /health reports: now running and waiting, and totals since start."""
        with self._lock:
            return {
                "running": self._running,
                "waiting": self._waiting,
                "slots": self.slots,
                "queue": self.queue,
                "refused": self._refused,
                "abandoned": self._abandoned,
            }

    def admit(self, gone: Callable[[], bool] = never) -> Callable[[], None]:
        """Wait for a slot; return its release function (safe to call twice).

        Raises Busy when slots and queue are full (at once) or no slot came in time, and
        ClientGone when the client left while waiting, so no slot is spent on it.
        """
        with self._lock:
            if self._running + self._waiting >= self.slots + self.queue:
                self._refused += 1
                raise Busy(
                    f"the server is busy: {self.slots} generations are running and {self.queue} waiting; "
                    f"try again in {RETRY_AFTER_SECONDS} s"
                )
            self._waiting += 1
        try:
            self._wait_for_slot(gone)
        except BaseException as err:
            with self._lock:
                self._waiting -= 1
                self._abandoned += isinstance(err, ClientGone)
            raise
        with self._lock:
            self._waiting, self._running = self._waiting - 1, self._running + 1
        return self._releaser(gone)

    def _wait_for_slot(self, gone: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self._queue_seconds
        while True:
            if gone():
                raise ClientGone(f"the client closed the connection while waiting for a slot{GONE_HINT}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Busy(f"no generation slot came free in {self._queue_seconds:g} s; try again later")
            if self._free.acquire(timeout=min(POLL_SECONDS, remaining)):
                if not gone():
                    return
                self._free.release()

    def _releaser(self, gone: Callable[[], bool]) -> Callable[[], None]:
        done = threading.Event()

        def release():
            with self._lock:
                if done.is_set():
                    return
                done.set()
                self._running -= 1
                self._abandoned += gone()  # it stopped early, between tokens, for that reason
            self._free.release()

        return release
