"""Queue positions for polls, without a count of the whole queue per answer.

Positions follow the claim's fair-share order between tenants (`jobs.fairshare`).

`JobStore.queue_position` counts the jobs ahead exactly, which costs time in proportion to
the position (about 1 ms at 10,000 ahead) on every poll. So the API reads positions here:
one read of the queue (an index-only scan of `ix_jobs_tenant_claim`), played forward into
positions, is shared by every poll for a short while. Where that puts the job
within `exact_below` of the front, an exact answer is cheap (it reads that far into each
tenant's queue) and is what is answered; deeper
in the queue the answer is the snapshot's, which may lag by up to `max_age_s` (or twenty
times the last read's duration, on a very deep queue): jobs claimed in that window still
count as ahead. So positions near the front, the ones a person watches, are exact.

`position_if_cached` is the event loop's form (`service.generations`): no read at all, from
a snapshot up to ten times its age limit old, while `stale` tells the caller to have
`refresh` run on a database thread; polls never queue up behind a refresh. (Only a
snapshot nobody asked for in that long, or one that cannot be read, is too old.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from reelforge.jobs.db import reading
from reelforge.jobs.fairshare import predicted_order, read_queues
from reelforge.jobs.states import JobStatus
from reelforge.jobs.store import Job, JobStore

__all__ = ["QueuePositions"]

_STALE_USABLE = 10
"""How many age limits old a snapshot may be for `position_if_cached` (while a refresh runs)."""

# How far past the snapshot's answer an exact read looks: jobs created since the snapshot
# may have gone ahead (a higher priority, a new tenant's turn).
_HORIZON_MARGIN = 64


class QueuePositions:
    def __init__(
        self,
        store: JobStore,
        *,
        max_age_s: float = 2.0,
        exact_below: int = 1000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._monotonic = monotonic
        self.engine: Engine = store.engine
        self.max_age_s = max_age_s
        self.exact_below = exact_below
        self._positions: dict[int, int] = {}  # queued job's seq -> its position
        self._read_at = -float("inf")
        self._valid_for_s = max_age_s
        self._lock = threading.Lock()

    def position(self, job: Job) -> int | None:
        """How many queued jobs workers take before `job` (0 = next), in the fair-share
        order (`jobs.fairshare`); None once it left the queue."""
        if job.status is not JobStatus.QUEUED:
            return None
        positions = self._snapshot()
        # A job newer than the snapshot is behind everything in it.
        estimate = positions.get(job.seq, len(positions))
        if estimate < self.exact_below:
            exact = self.store.queue_position(job, horizon=estimate + _HORIZON_MARGIN)
            if exact is not None:
                return exact
        return estimate

    def position_if_cached(self, job: Job) -> tuple[bool, int | None]:
        """`(True, position)` when the answer needs no database read (the job is not queued,
        or a snapshot at most ten times its age limit old places it too far back for an
        exact count), else `(False, None)`: call `position` on a database thread."""
        if job.status is not JobStatus.QUEUED:
            return True, None
        if self._monotonic() - self._read_at >= _STALE_USABLE * self._valid_for_s:
            return False, None
        estimate = self._positions.get(job.seq, len(self._positions))
        return (False, None) if estimate < self.exact_below else (True, estimate)

    @property
    def stale(self) -> bool:
        """Whether the snapshot is past its age limit (`refresh` is due)."""
        return self._monotonic() - self._read_at >= self._valid_for_s

    def refresh(self) -> None:
        """Read the snapshot again if it is stale (blocking: on a database thread)."""
        self._snapshot()

    def _snapshot(self) -> dict[int, int]:
        if self._monotonic() - self._read_at < self._valid_for_s:
            return self._positions
        with self._lock:  # one reader refreshes; the others wait for its result
            if self._monotonic() - self._read_at >= self._valid_for_s:
                started = self._monotonic()
                with reading(self.engine) as conn:
                    queues, served = read_queues(conn)
                order = predicted_order(queues, served)
                self._positions = {seq: n for n, (_, (_, seq)) in enumerate(order)}
                self._read_at = self._monotonic()
                # A deep queue is read less often, so reading it never dominates; 0 means
                # never cached (exact, for tests).
                took = self._read_at - started
                self._valid_for_s = max(self.max_age_s, 20 * took) if self.max_age_s else 0.0
            return self._positions
