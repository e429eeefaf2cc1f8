"""The retention sweeper: a loop of the API process that keeps disk use bounded.

Every `interval_s` it deletes the finished generations whose retention ran out
(`REELFORGE_RETENTION_HOURS`, counted from each generation's creation) with their files and
expired idempotency keys; every `PRUNE_EVERY_S`, the `deleted` events of generations gone
for an hour. The work runs on a thread, one batch at a time, so the event loop never blocks
and a shutdown waits at most for the batch in progress. A failing database or store costs
one log line and a retry at the next interval. Every API replica runs one; running them at
once is safe (see `Generations.sweep_expired`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from reelforge.service.generations import Generations

__all__ = ["RetentionSweeper"]

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 600.0
"""How often deleted generations' events are pruned: a scan of `job_events` (about 1 s per
200,000 rows on SQLite), for rows kept an hour anyway."""


class RetentionSweeper:
    def __init__(self, generations: Generations, interval_s: float, batch: int = 100) -> None:
        self.generations = generations
        self.interval_s = interval_s
        self.batch = batch
        self._next_prune = 0.0

    async def run(self) -> None:
        """Sweep now, then every `interval_s`, until canceled."""
        while True:
            await self.sweep()
            await asyncio.sleep(self.interval_s)

    async def sweep(self) -> int:
        """One sweep: batches until no expired generation is left; returns how many went.
        Never raises for a failure of the database or the store (it logs one line)."""
        removed = 0
        try:
            while True:
                swept = await asyncio.to_thread(self.generations.sweep_expired, self.batch)
                removed += swept
                if swept < self.batch:
                    break
            if time.monotonic() >= self._next_prune:
                await asyncio.to_thread(self.generations.prune_deleted)
                self._next_prune = time.monotonic() + PRUNE_EVERY_S
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.warning(
                "retention sweep failed, trying again in %g s: %s: %s",
                self.interval_s,
                type(exc).__name__,
                reason[:300],
            )
        if removed:
            log.info("retention sweep removed %d expired generation(s) and their files", removed)
        return removed
