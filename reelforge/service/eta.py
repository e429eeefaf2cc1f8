"""How long until a generation is done: `eta_seconds` of every poll body and stream event.

Queued: the jobs to be run before it, and itself, times the model's recent mean run time,
shared among the live workers that serve the model. Running: the time spent so far scaled by
the progress still to make. Both are guesses; a guess from too little (no finished job of the
model yet, no worker, progress barely started) is None rather than a made-up number.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from statistics import fmean

from reelforge.jobs import Job, JobStatus, JobStore

__all__ = ["EtaEstimator", "queued_eta_s", "running_eta_s"]

RUNNING_ETA_MIN_PROGRESS = 0.02
"""Below this the rate is mostly start-up (loading the image, encoding the prompt): no ETA."""

HISTORY_JOBS = 20
"""How many recent succeeded jobs of a model its mean run time is taken over."""

CACHE_S = 5.0
"""How long one process keeps a model's mean run time and worker count: polls and streams of
many jobs then cost one history query per model every few seconds, not one each."""


_STALE_USABLE = 10
"""How many cache periods old the figures may be for `estimate_if_cached`, while the caller
has them refreshed (`stale`, `refresh`)."""


def queued_eta_s(queue_position: int, mean_run_s: float | None, workers: int) -> float | None:
    """Seconds until a job `queue_position` places from the front (0 = next) is done: it and
    every job ahead, each taking `mean_run_s`, shared among `workers`."""
    if mean_run_s is None or workers <= 0:
        return None
    return (queue_position + 1) * mean_run_s / workers


def running_eta_s(elapsed_s: float, progress: float) -> float | None:
    """Seconds left for a run `elapsed_s` in at `progress` (0..1), at its rate so far."""
    if progress < RUNNING_ETA_MIN_PROGRESS:
        return None
    if progress >= 1.0:
        return 0.0
    return max(0.0, elapsed_s) / progress * (1.0 - progress)


class EtaEstimator:
    """`estimate(job, queue_position)` for one API process. Blocking (it may query the
    store): call it on a database thread, inside the request's own `db.run` function."""

    def __init__(
        self,
        store: JobStore,
        *,
        live_within_s: float,
        history_jobs: int = HISTORY_JOBS,
        cache_s: float = CACHE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.live_within_s = live_within_s
        self.history_jobs = history_jobs
        self.cache_s = cache_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._mean_run_s: dict[str, tuple[float, float | None]] = {}
        self._workers: tuple[float, dict[str, int]] | None = None

    def estimate(self, job: Job, queue_position: int | None) -> float | None:
        if job.terminal:
            return 0.0
        if job.status is JobStatus.QUEUED:
            if queue_position is None:
                return None
            return _rounded(
                queued_eta_s(queue_position, self.mean_run_s(job.model), self.workers(job.model))
            )
        if job.started_at is None:
            return None
        # `started_at` is the first claim: after a requeue the rate is measured over the
        # earlier attempts too, and the guess runs long until progress catches up.
        return _rounded(running_eta_s(self.store.clock() - job.started_at, job.progress))

    def estimate_if_cached(self, job: Job, queue_position: int | None) -> tuple[bool, float | None]:
        """`(True, eta)` when `estimate` would read nothing from the database: a finished job,
        or a queued one whose model's figures are cached (up to ten cache periods old; see
        `stale`), else `(False, None)`."""
        if job.terminal:
            return True, 0.0
        if job.status is not JobStatus.QUEUED:
            return False, None  # running: the database's clock is read
        if queue_position is None:
            return True, None
        now = self._monotonic()
        usable_s = _STALE_USABLE * self.cache_s
        with self._lock:
            mean = self._mean_run_s.get(job.model)
            workers = self._workers
        if mean is None or now - mean[0] >= usable_s:
            return False, None
        if workers is None or now - workers[0] >= usable_s:
            return False, None
        eta = queued_eta_s(queue_position, mean[1], workers[1].get(job.model, 0))
        return True, _rounded(eta)

    def stale(self, model: str) -> bool:
        """Whether `model`'s figures are past their cache period: `refresh` is due."""
        now = self._monotonic()
        with self._lock:
            mean = self._mean_run_s.get(model)
            workers = self._workers
        return any(cached is None or now - cached[0] >= self.cache_s for cached in (mean, workers))

    def refresh(self, model: str) -> None:
        """Read `model`'s figures again where stale (blocking: on a database thread)."""
        self.mean_run_s(model)
        self.workers(model)

    def mean_run_s(self, model: str) -> float | None:
        now = self._monotonic()
        with self._lock:
            cached = self._mean_run_s.get(model)
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1]
        runs = self.store.recent_run_seconds(model, self.history_jobs)
        mean = fmean(runs) if runs else None
        with self._lock:
            self._mean_run_s[model] = (now, mean)
        return mean

    def workers(self, model: str) -> int:
        now = self._monotonic()
        with self._lock:
            cached = self._workers
        if cached is None or now - cached[0] >= self.cache_s:
            counts: dict[str, int] = {}
            for worker in self.store.live_workers(self.live_within_s):
                for served in set(worker.models):
                    counts[served] = counts.get(served, 0) + 1
            cached = (now, counts)
            with self._lock:
                self._workers = cached
        return cached[1].get(model, 0)


def _rounded(eta_s: float | None) -> float | None:
    return None if eta_s is None else round(eta_s, 1)
