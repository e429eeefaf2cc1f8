"""A key's quotas and rate limit, enforced with state in the database, so every replica
counts the same jobs and requests.

Quotas are checked when a job is created, inside the insert's own transaction
(`JobStore.create_job(admit=...)`), under a lock per tenant (PostgreSQL: an advisory lock;
SQLite: the write lock), so two replicas cannot both admit the job that goes over:

    max_concurrent        jobs in flight (queued or running): what a client may have
                          unfinished, as Kling's concurrency limit (1303) counts them
    max_queued            jobs waiting, of those (so max_concurrent 5 with max_queued 2:
                          at most 5 unfinished, at most 2 of them not started)

Both are refused at the create (a 429 with Retry-After the client can back off on), not
held back at the claim: a job admitted is a job the workers may start.
    daily_video_seconds   seconds of video created since 00:00 UTC (failed and canceled
                          jobs do not count)

The rate limit counts requests per tenant per minute in `rate_windows` (one upsert per
request, made only for keys that have a rate limit).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

from sqlalchemy import Connection, Engine, Integer, cast, func, select, text

from reelforge.errors import TooManyRequests
from reelforge.jobs.db import db_now, upsert_insert
from reelforge.jobs.schema import jobs, rate_windows
from reelforge.jobs.states import JobStatus
from reelforge.jobs.store import Admission
from reelforge.spec import GenerationSpec
from reelforge.tenancy.keys import KeyLimits

__all__ = ["RateLimiter", "admission"]

log = logging.getLogger(__name__)

_DAY_S = 86400
# A tenant at a concurrency limit waits for one of its jobs to end: a guess, not a promise.
_IN_FLIGHT_RETRY_S = 10
_FAILED = (JobStatus.FAILED.value, JobStatus.CANCELED.value)


def admission(tenant: str, limits: KeyLimits) -> Admission | None:
    """The check `create_job` runs for a job of `tenant`; None when the key has no quota."""
    if (
        limits.max_concurrent is None
        and limits.max_queued is None
        and limits.daily_video_seconds is None
    ):
        return None

    def admit(conn: Connection, spec: GenerationSpec) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(tenant)})
        mine = jobs.c.tenant == tenant
        in_flight = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
        counts: dict[str, int] = dict(
            conn.execute(
                select(jobs.c.status, func.count())
                .where(mine, jobs.c.status.in_(in_flight))
                .group_by(jobs.c.status)
            ).all()
        )
        queued = int(counts.get(JobStatus.QUEUED.value, 0))
        running = int(counts.get(JobStatus.RUNNING.value, 0))
        if limits.max_concurrent is not None and queued + running >= limits.max_concurrent:
            raise TooManyRequests(
                f"max_concurrent: this key may have {limits.max_concurrent} generation(s) in "
                f"flight (queued or running) at once, and has {queued + running}; try again "
                "once one finishes",
                retry_after_s=_IN_FLIGHT_RETRY_S,
                code="quota_exceeded",
            )
        if limits.max_queued is not None and queued >= limits.max_queued:
            raise TooManyRequests(
                f"max_queued: this key may have {limits.max_queued} generation(s) waiting, and "
                f"has {queued}; try again once one starts",
                retry_after_s=_IN_FLIGHT_RETRY_S,
                code="quota_exceeded",
            )
        if limits.daily_video_seconds is not None:
            now = time.time()
            day_start = now - now % _DAY_S
            used = conn.execute(
                select(func.coalesce(func.sum(jobs.c.video_seconds), 0.0)).where(
                    mine, jobs.c.created_at >= day_start, jobs.c.status.not_in(_FAILED)
                )
            ).scalar_one()
            if float(used) + spec.seconds > limits.daily_video_seconds:
                raise TooManyRequests(
                    f"daily_video_seconds: this key may make {limits.daily_video_seconds:g} s "
                    f"of video a day (UTC), has made {float(used):g} s, and this one is "
                    f"{spec.seconds:g} s",
                    retry_after_s=int(day_start + _DAY_S - now) + 1,
                    code="quota_exceeded",
                )

    return admit


def _lock_key(tenant: str) -> int:
    """A signed 64-bit advisory lock key for a tenant (stable across processes)."""
    return int.from_bytes(hashlib.sha256(tenant.encode()).digest()[:8], "big", signed=True)


class RateLimiter:
    """Requests per minute per tenant, shared by every replica through `rate_windows`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._minute = cast(func.floor(db_now(engine) / 60), Integer)

    def hit(self, tenant: str, per_minute: int) -> None:
        """Count one request; raise `TooManyRequests` past `per_minute` this minute."""
        statement = upsert_insert(self.engine.dialect.name)(rate_windows).values(
            tenant=tenant, minute=self._minute, requests=1
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[rate_windows.c.tenant, rate_windows.c.minute],
            set_={"requests": rate_windows.c.requests + 1},
        ).returning(rate_windows.c.requests)
        writing = self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")
        with writing as conn, conn.begin():
            requests = int(conn.execute(upsert).scalar_one())
        if requests > per_minute:
            raise TooManyRequests(
                f"rate_per_minute: this key may make {per_minute} requests a minute",
                retry_after_s=60 - int(time.time()) % 60,
            )

    def prune(self) -> int:
        """Forget the windows before the last minute; returns how many went."""
        with self.engine.begin() as conn:
            gone = conn.execute(
                rate_windows.delete().where(rate_windows.c.minute < self._minute - 1)
            )
            return int(gone.rowcount)

    async def run(self, every_s: float = 60.0) -> None:
        """The background loop (`ApiContext.background`) that forgets old windows."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await asyncio.to_thread(self.prune)
            except Exception as exc:  # the next round tries again; the table only grows
                log.warning("rate limits: cannot prune old windows (%s)", exc)
