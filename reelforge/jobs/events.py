"""Job events: the outbox every transition writes to, and what its consumers read.

`JobStore` writes one `job_events` row per transition in the transition's own transaction,
so an event exists exactly when its transition happened. Consumers read the table and
nothing else: the webhook dispatcher (through `webhook_deliveries`, written alongside the
events its subscriptions ask for), event streams (`GET …/{id}/events`) and metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Row

from reelforge.jobs.states import JobStatus

__all__ = [
    "DEFAULT_WEBHOOK_EVENTS",
    "PROGRESS_EVENT_STEP",
    "WEBHOOK_EVENTS",
    "EventType",
    "JobEvent",
    "webhook_event",
]


class EventType(StrEnum):
    CREATED = "created"
    STARTED = "started"
    """A worker claimed the job (again, after a requeue)."""
    PROGRESS = "progress"
    """Progress crossed a milestone (every `PROGRESS_EVENT_STEP`)."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REQUEUED = "requeued"
    """Back in the queue: its worker was lost or hit a retryable failure (`data.error`), or
    was stopped before the job finished (`data.reason`, e.g. `worker_draining`; no attempt
    spent)."""
    DELETED = "deleted"
    """The job and its files were removed (asked for, or its retention ran out)."""


PROGRESS_EVENT_STEP = 0.05
"""A progress event each time progress crosses a multiple of this (at most 20 per run)."""

# The names webhook subscribers use, per event type; other types are not sent.
_WEBHOOK_NAMES: dict[EventType, str] = {
    EventType.STARTED: "started",
    EventType.PROGRESS: "progress",
    EventType.SUCCEEDED: "completed",
    EventType.FAILED: "failed",
    EventType.CANCELED: "canceled",
}
WEBHOOK_EVENTS = frozenset(_WEBHOOK_NAMES.values())
"""Every event name a webhook subscription may ask for."""
DEFAULT_WEBHOOK_EVENTS = ("completed", "failed", "canceled")


def webhook_event(event_type: EventType) -> str | None:
    """The webhook event name for `event_type`, or None if webhooks never carry it."""
    return _WEBHOOK_NAMES.get(event_type)


@dataclass(frozen=True)
class JobEvent:
    """One row of the outbox: what happened to a job, and its status and progress after."""

    seq: int
    job_id: str
    tenant: str
    type: EventType
    status: JobStatus
    progress: float
    data: dict[str, Any]
    created_at: float

    @property
    def terminal(self) -> bool:
        return self.type in _TERMINAL

    @classmethod
    def from_row(cls, row: Row[Any]) -> JobEvent:
        m = row._mapping
        return cls(
            seq=m["seq"],
            job_id=m["job_id"],
            tenant=m["tenant"],
            type=EventType(m["type"]),
            status=JobStatus(m["status"]),
            progress=m["progress"],
            data=json.loads(m["data"]) if m["data"] else {},
            created_at=m["created_at"],
        )


_TERMINAL = frozenset(
    {EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELED, EventType.DELETED}
)
