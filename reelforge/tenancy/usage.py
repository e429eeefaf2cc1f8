"""What tenants used: jobs by status, seconds of video and of engine time, per day (UTC) and
per model, summed in the database over `ix_jobs_tenant_created`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Integer, cast, func, select

from reelforge.jobs.db import reading
from reelforge.jobs.schema import jobs

__all__ = ["UsageRow", "usage"]

_DAY_S = 86400


@dataclass
class UsageRow:
    """One tenant's use of one model on one day."""

    day: str  # YYYY-MM-DD, UTC
    tenant: str
    model: str
    jobs: dict[str, int] = field(default_factory=dict)  # by status
    video_seconds: float = 0.0  # of the jobs that did not fail or get canceled
    engine_seconds: float = 0.0  # of the jobs that succeeded

    def public(self) -> dict[str, Any]:
        return {
            "date": self.day,
            "tenant": self.tenant,
            "model": self.model,
            "jobs": self.jobs,
            "video_seconds": round(self.video_seconds, 3),
            "engine_seconds": round(self.engine_seconds, 3),
        }


def usage(engine: Engine, tenant: str | None, days: int) -> list[UsageRow]:
    """The last `days` days (today included) of `tenant`'s use, or every tenant's (None),
    by day, tenant and model, oldest first."""
    now = time.time()
    since = now - now % _DAY_S - (days - 1) * _DAY_S
    day = cast(func.floor(jobs.c.created_at / _DAY_S), Integer).label("day")
    query = (
        select(
            day,
            jobs.c.tenant,
            jobs.c.model,
            jobs.c.status,
            func.count(),
            func.coalesce(func.sum(jobs.c.video_seconds), 0.0),
            func.coalesce(func.sum(jobs.c.engine_seconds), 0.0),
        )
        .where(jobs.c.created_at >= since)
        .group_by(day, jobs.c.tenant, jobs.c.model, jobs.c.status)
        .order_by(day, jobs.c.tenant, jobs.c.model)
    )
    if tenant is not None:
        query = query.where(jobs.c.tenant == tenant)
    rows: dict[tuple[int, str, str], UsageRow] = {}
    with reading(engine) as conn:
        for day_number, owner, model, status, count, video_s, engine_s in conn.execute(query):
            key = (int(day_number), owner, model)
            date = datetime.fromtimestamp(int(day_number) * _DAY_S, UTC).date().isoformat()
            row = rows.setdefault(key, UsageRow(date, owner, model))
            row.jobs[status] = int(count)
            if status not in ("failed", "canceled"):
                row.video_seconds += float(video_s)
            row.engine_seconds += float(engine_s)
    return list(rows.values())
