"""Graceful drain: a worker told to stop claims nothing more and gives its running job a grace
period; past it, the job is handed back to the queue between two engine steps.

    SIGTERM ─▶ Drain.request() ─▶ the loop claims no more; /healthz shows `draining`
                  │
                  ├─ the job ends within drain_seconds ─▶ recorded as usual; exit 0
                  └─ still running at the deadline ─▶ the next step raises `Drained`:
                       JobStore.hand_back (queued again, no attempt spent); exit 0

A second request (a second Ctrl-C or SIGTERM) ends the grace period at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["DRAIN_REASON", "Drain", "Drained"]

DRAIN_REASON = "worker_draining"
"""The `reason` of the `requeued` event of a job handed back by a draining worker."""


class Drained(Exception):
    """Raised inside the engine's step callback once a draining worker's grace period is over."""


class Drain:
    """When this worker was asked to stop, and until when its running job may go on.

    `request` runs in signal handlers, so it only assigns numbers: no lock. (Setting a
    `threading.Event` there can deadlock: the handler runs in the main thread, which may be
    inside that same event's `wait`, holding its lock.) Waiting for a request therefore polls,
    every `poll_s`: a few wake-ups a second of an idle worker, no database work.
    """

    def __init__(
        self, grace_s: float, clock: Callable[[], float] = time.monotonic, poll_s: float = 0.05
    ) -> None:
        self.grace_s = grace_s
        self.poll_s = poll_s
        self._clock = clock
        self._requested = False
        self._deadline = math.inf

    def request(self) -> None:
        """Stop claiming and start the grace period; a second request ends it at once."""
        now = self._clock()
        if self._requested:
            self._deadline = now
            return
        self._deadline = now + self.grace_s
        self._requested = True

    @property
    def requested(self) -> bool:
        return self._requested

    def is_set(self) -> bool:
        """`requested`, for code that waits on a stop event (`runner.wait_for_work`)."""
        return self._requested

    @property
    def overdue(self) -> bool:
        """Whether the running job must be handed back now."""
        return self._clock() >= self._deadline

    def wait(self, timeout_s: float) -> bool:
        """Sleep until a drain is requested or `timeout_s` passes; returns `requested`."""
        deadline = time.monotonic() + timeout_s
        while not self._requested:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(self.poll_s, left))
        return self._requested
