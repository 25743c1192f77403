"""How many generations run at once."""

from __future__ import annotations

import threading

from lmlib.errors import LMError


class Busy(LMError):
    """Every generation slot stayed taken: the client may retry (503)."""


class Slots:
    """At most `n` generations at once; `take` waits up to `timeout` seconds for one."""

    def __init__(self, n: int, timeout: float):
        self._semaphore, self._timeout = threading.BoundedSemaphore(n), timeout

    def take(self):
        """Return a release function that is safe to call twice, or raise LMError when busy."""
        if not self._semaphore.acquire(timeout=self._timeout):
            raise Busy("the server is busy generating for others; try again in a moment")
        done = threading.Event()

        def release():
            if not done.is_set():
                done.set()
                self._semaphore.release()

        return release
