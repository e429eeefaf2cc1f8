"""Queue positions for polls, without a count of the whole queue per answer.

`JobStore.queue_position` counts the jobs ahead exactly, which costs time in proportion to
the position (about 1 ms at 10,000 ahead) on every poll. So the API reads positions here:
one read of the queue's order (an index-only scan of `ix_jobs_claim`) is shared by every
poll for a short while, and a binary search in it places a job. Where that puts the job
within `exact_below` of the front, the exact count is cheap and is what is answered; deeper
in the queue the answer is the snapshot's, which may lag by up to `max_age_s` (or twenty
times the last read's duration, on a very deep queue): jobs claimed in that window still
count as ahead. So positions near the front, the ones a person watches, are exact.
"""

from __future__ import annotations

import bisect
import threading
import time

from sqlalchemy import Engine, select

from reelforge.jobs.db import reading
from reelforge.jobs.schema import jobs
from reelforge.jobs.states import JobStatus
from reelforge.jobs.store import Job, JobStore

__all__ = ["QueuePositions"]


class QueuePositions:
    def __init__(self, store: JobStore, *, max_age_s: float = 0.5, exact_below: int = 1000) -> None:
        self.store = store
        self.engine: Engine = store.engine
        self.max_age_s = max_age_s
        self.exact_below = exact_below
        self._order: list[tuple[int, int]] = []  # (-priority, seq) of queued jobs, sorted
        self._read_at = -float("inf")
        self._valid_for_s = max_age_s
        self._lock = threading.Lock()

    def position(self, job: Job) -> int | None:
        """How many queued jobs a worker takes before `job` (0 = next); None once it left
        the queue."""
        if job.status is not JobStatus.QUEUED:
            return None
        estimate = bisect.bisect_left(self._snapshot(), (-job.priority, job.seq))
        if estimate < self.exact_below:
            return self.store.queue_position(job)
        return estimate

    def _snapshot(self) -> list[tuple[int, int]]:
        if time.monotonic() - self._read_at < self._valid_for_s:
            return self._order
        with self._lock:  # one reader refreshes; the others wait for its result
            if time.monotonic() - self._read_at >= self._valid_for_s:
                started = time.monotonic()
                query = (
                    select(jobs.c.priority, jobs.c.seq)
                    .where(jobs.c.status == JobStatus.QUEUED.value)
                    .order_by(jobs.c.priority.desc(), jobs.c.seq)
                )
                with reading(self.engine) as conn:
                    self._order = [(-priority, seq) for priority, seq in conn.execute(query)]
                self._read_at = time.monotonic()
                # A deep queue is read less often, so reading it never dominates; 0 means
                # never cached (exact, for tests).
                took = self._read_at - started
                self._valid_for_s = max(self.max_age_s, 20 * took) if self.max_age_s else 0.0
            return self._order
