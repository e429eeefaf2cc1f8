"""Idempotency keys: one create per (tenant, key) for a day, Stripe-style.

A create with a key first reserves it (`reserve`), naming the job id it will insert, before
any slow work (fetching and staging the input image); a retry that arrives meanwhile finds
the reservation and waits for that job instead of making a second. A create that fails
releases its reservation (`release`), so a retry starts afresh; one whose server died is
taken over once it is `stale_after_s` old without a job.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, and_, delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite

from reelforge.jobs.db import db_now
from reelforge.jobs.schema import idempotency_keys, jobs

__all__ = ["IdempotencyKeys", "Reservation"]


@dataclass(frozen=True)
class Reservation:
    """Who holds a key: `job_id`, for a request whose body hashed to `request_hash`."""

    job_id: str
    request_hash: str
    mine: bool
    """True when this call reserved the key (or took over a stale reservation)."""
    job_exists: bool


class IdempotencyKeys:
    def __init__(self, engine: Engine, *, ttl_s: float, stale_after_s: float) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.stale_after_s = stale_after_s
        self._now = db_now(engine)
        self._insert = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert

    def reserve(self, tenant: str, key: str, request_hash: str, job_id: str) -> Reservation:
        """Reserve `key` for `job_id`, or report the reservation that holds it."""
        this = and_(idempotency_keys.c.tenant == tenant, idempotency_keys.c.key == key)
        job_exists = exists().where(jobs.c.id == idempotency_keys.c.job_id)
        values = {
            "tenant": tenant,
            "key": key,
            "request_hash": request_hash,
            "job_id": job_id,
            "created_at": self._now,
            "expires_at": self._now + self.ttl_s,
        }
        with self.engine.begin() as conn:
            conn.execute(
                delete(idempotency_keys).where(this, idempotency_keys.c.expires_at < self._now)
            )
            # A concurrent reservation of the same key makes this a no-op, never an error.
            conn.execute(self._insert(idempotency_keys).values(**values).on_conflict_do_nothing())
            # Taking over: the holder's server died before it inserted its job.
            stale = and_(
                this,
                idempotency_keys.c.job_id != job_id,
                idempotency_keys.c.created_at < self._now - self.stale_after_s,
                ~job_exists,
            )
            conn.execute(idempotency_keys.update().where(stale).values(**values))
            row = conn.execute(
                select(
                    idempotency_keys.c.job_id,
                    idempotency_keys.c.request_hash,
                    job_exists.label("job_exists"),
                ).where(this)
            ).one()
        return Reservation(row.job_id, row.request_hash, row.job_id == job_id, bool(row.job_exists))

    def release(self, tenant: str, key: str, job_id: str) -> None:
        """Drop the reservation `job_id` holds (its create failed), so a retry may proceed."""
        with self.engine.begin() as conn:
            conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.tenant == tenant,
                    idempotency_keys.c.key == key,
                    idempotency_keys.c.job_id == job_id,
                )
            )

    def sweep(self) -> int:
        """Remove expired keys; returns how many."""
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(idempotency_keys).where(idempotency_keys.c.expires_at < self._now)
            )
            return result.rowcount or 0
