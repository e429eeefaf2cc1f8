"""Expired-lease recovery on its own period: jobs of lost workers go back to the queue.

A worker that dies (or freezes) mid-job stops renewing its lease; `JobStore.requeue_expired`
then requeues the job (or fails it past its attempts, or ends it as canceled). It runs every
`interval_s` (`Settings.lease_recovery_interval_s`, a quarter of the lease) in every worker
(`start_thread`) and in every API process (`run`, one of `ApiContext.background`), so any
deployment recovers: workers only, API processes only, or both. Running it in many processes
at once is safe: one UPDATE per expired job wins, and a period with nothing expired costs
one indexed read, no write. Claims never run it: an idle claim only reads.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from reelforge.jobs.store import JobStore

__all__ = ["LeaseRecovery"]

log = logging.getLogger(__name__)


class LeaseRecovery:
    def __init__(self, store: JobStore, interval_s: float) -> None:
        self.store = store
        self.interval_s = interval_s
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def recover(self) -> int:
        """One pass; returns how many jobs it requeued or ended. Never raises: a failing
        database is one warning line per outage, and the next pass tries again."""
        try:
            recovered = self.store.requeue_expired()
        except Exception as exc:
            if not self._failing:
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                log.warning(
                    "expired-lease recovery failed, trying again every %g s: %s: %s",
                    self.interval_s,
                    type(exc).__name__,
                    reason[:300],
                )
            self._failing = True
            return 0
        if self._failing:
            log.info("expired-lease recovery works again")
        self._failing = False
        if recovered:
            log.info("returned %d job(s) of lost workers to the queue (or ended them)", recovered)
        return recovered

    async def run(self) -> None:
        """Recover every `interval_s` until canceled (for `ApiContext.background`)."""
        while True:
            await asyncio.to_thread(self.recover)
            await asyncio.sleep(self.interval_s)

    def start_thread(self) -> None:
        """Recover every `interval_s` on a thread of its own, until `stop_thread`."""
        self._thread = threading.Thread(target=self._loop, name="lease-recovery", daemon=True)
        self._thread.start()

    def stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.recover()
            self._stop.wait(self.interval_s)
