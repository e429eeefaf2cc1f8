"""The webhook outbox as the dispatcher sees it: claiming due deliveries, recording attempts.

`JobStore._emit` writes a `webhook_deliveries` row (status `pending`) in the transaction of
the transition it reports; this class is everything else that touches those rows.

- A delivery is due when its `next_attempt_at` has passed and it is the oldest undelivered
  (`pending` or `sending`) delivery of its job: a generation's events arrive in order, and
  its `completed` waits until its `started` was delivered or given up on.
- `claim_due` takes due deliveries for one send each: status `sending`, `attempts` + 1 (the
  number of this attempt, which fences the outcome's write) and `next_attempt_at` moved
  `claim_s` ahead. A dispatcher killed mid-send never writes an outcome, so its claim
  expires and the delivery is due again: at least once, never lost. On PostgreSQL the rows
  are picked `FOR UPDATE SKIP LOCKED`, so replicas sharing a database never take the same
  one; SQLite serialises claims with an immediate (write-locking) transaction.
- `record_attempt` writes the attempt's row (status code or error, duration) and moves the
  delivery on: `delivered`, `failed` (the schedule ran out; the job's next delivery becomes
  due) or back to `pending` at its next attempt's time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Row, exists, select

from reelforge.jobs.db import db_now
from reelforge.jobs.events import JobEvent
from reelforge.jobs.schema import job_events, jobs, webhook_attempts, webhook_deliveries
from reelforge.jobs.store import Job

__all__ = ["Delivery", "DeliveryAttempt", "DeliveryStatus", "WebhookOutbox"]


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    """Waiting for its `next_attempt_at` (or for an older delivery of its job)."""
    SENDING = "sending"
    """Claimed by a dispatcher until `next_attempt_at`; due again if that passes."""
    DELIVERED = "delivered"
    """The receiver answered 2xx."""
    FAILED = "failed"
    """Every attempt of the retry schedule failed."""


_OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value)
_INTERRUPTED = "no outcome recorded: the sender stopped during this attempt"


@dataclass(frozen=True)
class Delivery:
    """One webhook message: one event of one job, to the job's subscription URL."""

    id: str
    """The `webhook-id`, the same on every attempt."""
    job_id: str
    event_seq: int
    event_type: str
    url: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float
    body: str | None
    last_status_code: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Delivery:
        m = row._mapping
        return cls(
            id=m["id"],
            job_id=m["job_id"],
            event_seq=m["event_seq"],
            event_type=m["event_type"],
            url=m["url"],
            status=DeliveryStatus(m["status"]),
            attempts=m["attempts"],
            next_attempt_at=m["next_attempt_at"],
            body=m["body"],
            last_status_code=m["last_status_code"],
            last_error=m["last_error"],
            created_at=m["created_at"],
            delivered_at=m["delivered_at"],
        )


@dataclass(frozen=True)
class DeliveryAttempt:
    attempt: int
    status_code: int | None
    error: str | None
    duration_s: float
    created_at: float


class WebhookOutbox:
    """Claims, fixes the body of, and records the attempts of webhook deliveries. Safe to
    share between threads, processes and hosts on one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._now = db_now(engine)

    def claim_due(self, limit: int, claim_s: float) -> list[Delivery]:
        """Claim up to `limit` due deliveries, soonest due first, for `claim_s` seconds each.
        The returned deliveries' `attempts` is the number of the attempt about to be made."""
        if limit < 1:
            return []
        d = webhook_deliveries
        earlier = d.alias("earlier")
        oldest_open = ~exists().where(
            earlier.c.job_id == d.c.job_id,
            earlier.c.status.in_(_OPEN),
            earlier.c.event_seq < d.c.event_seq,
        )
        due = (d.c.status.in_(_OPEN), d.c.next_attempt_at <= self._now)
        pick = (
            select(d.c.id, d.c.job_id, d.c.status, d.c.attempts)
            .where(*due, oldest_open)
            .order_by(d.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        # Most passes find nothing due: a plain read says so without taking SQLite's write
        # lock (which every worker's progress report would then wait for).
        with self.engine.connect() as conn:
            if conn.execute(select(d.c.id).where(*due, oldest_open).limit(1)).first() is None:
                return []
        begin = self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")
        with begin as conn, conn.begin():
            picked = conn.execute(pick).all()
            if not picked:
                return []
            # A claim that expired while `sending`: its sender died without an outcome.
            # Recorded, so the attempts a receiver may have seen all show in the list.
            for row in picked:
                if row.status == DeliveryStatus.SENDING.value:
                    conn.execute(
                        webhook_attempts.insert().values(
                            delivery_id=row.id,
                            job_id=row.job_id,
                            attempt=row.attempts,
                            error=_INTERRUPTED,
                            duration_s=0.0,
                            created_at=self._now,
                        )
                    )
            claimed = conn.execute(
                d.update()
                .where(d.c.id.in_([row.id for row in picked]), *due)
                .values(
                    status=DeliveryStatus.SENDING.value,
                    attempts=d.c.attempts + 1,
                    next_attempt_at=self._now + claim_s,
                    updated_at=self._now,
                )
                .returning(*d.c)
            ).all()
        deliveries = [Delivery.from_row(row) for row in claimed]
        return sorted(deliveries, key=lambda delivery: delivery.next_attempt_at)

    def subject(self, delivery: Delivery) -> tuple[Job, JobEvent] | None:
        """The delivery's job as it is now and the event it reports; None once the job is
        gone (deleting a job deletes its deliveries too, so only a race gets here)."""
        with self.engine.connect() as conn:
            job = conn.execute(select(jobs).where(jobs.c.id == delivery.job_id)).first()
            event = conn.execute(
                select(job_events).where(job_events.c.seq == delivery.event_seq)
            ).first()
        if job is None or event is None:
            return None
        return Job.from_row(job), JobEvent.from_row(event)

    def fix_body(self, delivery_id: str, body: str) -> str:
        """Store the body of the first attempt, unless one is stored already; return the
        stored one, which every attempt sends."""
        d = webhook_deliveries
        with self.engine.begin() as conn:
            conn.execute(
                d.update().where(d.c.id == delivery_id, d.c.body.is_(None)).values(body=body)
            )
            stored = conn.execute(select(d.c.body).where(d.c.id == delivery_id)).scalar()
        return stored if stored is not None else body

    def record_attempt(
        self,
        delivery: Delivery,
        *,
        status_code: int | None,
        error: str | None,
        duration_s: float,
        delivered: bool,
        retry_in_s: float | None,
    ) -> bool:
        """Record attempt `delivery.attempts` and move the delivery on: delivered, retried in
        `retry_in_s` seconds, or (None) failed for good. False when the claim had expired and
        another sender took the delivery over (its outcome then decides)."""
        d = webhook_deliveries
        values: dict[str, Any] = {
            "last_status_code": status_code,
            "last_error": error,
            "updated_at": self._now,
        }
        if delivered:
            values.update(status=DeliveryStatus.DELIVERED.value, delivered_at=self._now)
        elif retry_in_s is None:
            values.update(status=DeliveryStatus.FAILED.value)
        else:
            values.update(
                status=DeliveryStatus.PENDING.value, next_attempt_at=self._now + retry_in_s
            )
        fence = (
            d.c.id == delivery.id,
            d.c.attempts == delivery.attempts,
            d.c.status == DeliveryStatus.SENDING.value,
        )
        with self.engine.begin() as conn:
            conn.execute(
                webhook_attempts.insert().values(
                    delivery_id=delivery.id,
                    job_id=delivery.job_id,
                    attempt=delivery.attempts,
                    status_code=status_code,
                    error=error,
                    duration_s=duration_s,
                    created_at=self._now,
                )
            )
            return bool(conn.execute(d.update().where(*fence).values(**values)).rowcount)

    def deliveries_of(self, job_id: str) -> list[tuple[Delivery, list[DeliveryAttempt]]]:
        """The job's deliveries in event order, each with its attempts in order."""
        d, a = webhook_deliveries, webhook_attempts
        with self.engine.connect() as conn:
            rows = conn.execute(select(d).where(d.c.job_id == job_id).order_by(d.c.event_seq)).all()
            attempt_rows = conn.execute(
                select(a).where(a.c.job_id == job_id).order_by(a.c.seq)
            ).all()
        attempts: dict[str, list[DeliveryAttempt]] = {}
        for r in attempt_rows:
            attempts.setdefault(r.delivery_id, []).append(
                DeliveryAttempt(r.attempt, r.status_code, r.error, r.duration_s, r.created_at)
            )
        return [(Delivery.from_row(r), attempts.get(r.id, [])) for r in rows]
