"""What the job database says about the whole system, for `/metrics`.

Every API replica reads these figures from the database when it is scraped, so each answers
the same totals whichever worker ran a job and whichever replica took its request. Each read
is one aggregate query; the queue's use the claim index (`status` first), the workers and
webhook tables are small. The counts of finished jobs and the stage histograms scan the
jobs still in the table (the retention sweep bounds it); the API caches a snapshot for
`metrics_max_age_s`, so scrapes cost one set of reads per interval whatever their rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, Float, case, cast, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from reelforge.jobs.db import db_now
from reelforge.jobs.schema import generation_totals, jobs, webhook_deliveries, workers
from reelforge.jobs.states import JobStatus

__all__ = ["STAGES", "JobStats", "StageHistogram", "SystemSnapshot"]

STAGES = ("queue_wait", "engine", "encode", "store")
"""The stages of a generation timed in the histograms: waiting in the queue (creation to
the last claim), then the worker's three (`jobs.result.StageTimings`)."""


@dataclass(frozen=True)
class StageHistogram:
    """Cumulative counts of one stage's durations per bucket upper bound (Prometheus' `le`)."""

    cumulative: tuple[int, ...]
    count: int
    sum_s: float


@dataclass(frozen=True)
class SystemSnapshot:
    """The figures of one read: jobs by (model, dialect, status); for each model, when its
    oldest queued job was created; stage histograms by (stage, model); live workers by
    (state, device); webhook deliveries by status; the database's clock then."""

    now: float
    jobs: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # Generations ever created and finished by (model, dialect, outcome): `generation_totals`.
    totals: dict[tuple[str, str, str], int] = field(default_factory=dict)
    oldest_queued_at: dict[str, float] = field(default_factory=dict)
    stages: dict[tuple[str, str], StageHistogram] = field(default_factory=dict)
    workers: dict[tuple[str, str], int] = field(default_factory=dict)
    # GPU memory each live GPU worker's process holds, by (worker id, device).
    gpu_memory: dict[tuple[str, str], int] = field(default_factory=dict)
    webhook_deliveries: dict[str, int] = field(default_factory=dict)


class JobStats:
    """Reads `SystemSnapshot`s; `buckets` are the histograms' upper bounds in seconds."""

    def __init__(self, engine: Engine, buckets: Sequence[float]) -> None:
        self.engine = engine
        self.buckets = tuple(buckets)

    def snapshot(self, live_within_s: float) -> SystemSnapshot:
        """One consistent read (one transaction) of every figure; `live_within_s`: how
        recently a worker must have been seen to count (the lease time, as `/healthz`)."""
        with self.engine.connect() as conn, conn.begin():
            now = float(conn.execute(select(db_now(self.engine))).scalar_one())
            snap = SystemSnapshot(now=now)
            for model, dialect, status, n in conn.execute(
                select(jobs.c.model, jobs.c.dialect, jobs.c.status, func.count()).group_by(
                    jobs.c.model, jobs.c.dialect, jobs.c.status
                )
            ):
                snap.jobs[(model, dialect, status)] = int(n)
            for model, dialect, outcome, n in conn.execute(
                select(
                    generation_totals.c.model,
                    generation_totals.c.dialect,
                    generation_totals.c.outcome,
                    func.sum(generation_totals.c.count),
                ).group_by(
                    generation_totals.c.model,
                    generation_totals.c.dialect,
                    generation_totals.c.outcome,
                )
            ):
                snap.totals[(model, dialect, outcome)] = int(n)
            queued = jobs.c.status == JobStatus.QUEUED.value
            for model, oldest in conn.execute(
                select(jobs.c.model, func.min(jobs.c.created_at))
                .where(queued)
                .group_by(jobs.c.model)
            ):
                snap.oldest_queued_at[model] = float(oldest)
            snap.stages.update(self._histograms(conn))
            for state, device, n in conn.execute(
                select(workers.c.state, workers.c.device, func.count())
                .where(workers.c.seen_at >= now - live_within_s)
                .group_by(workers.c.state, workers.c.device)
            ):
                snap.workers[(state, device)] = int(n)
            for worker_id, device, held in conn.execute(
                select(workers.c.id, workers.c.device, workers.c.gpu_memory_bytes).where(
                    workers.c.seen_at >= now - live_within_s,
                    workers.c.gpu_memory_bytes.is_not(None),
                )
            ):
                snap.gpu_memory[(worker_id, device)] = int(held)
            for status, n in conn.execute(
                select(webhook_deliveries.c.status, func.count()).group_by(
                    webhook_deliveries.c.status
                )
            ):
                snap.webhook_deliveries[status] = int(n)
        return snap

    def _histograms(self, conn: Connection) -> dict[tuple[str, str], StageHistogram]:
        """Each stage's histogram per model, counted by the database in one query: a
        `SUM(CASE …)` per bucket, so no row leaves it. The durations are computed once per
        row first (a materialized CTE; otherwise every bucket's CASE would parse the
        result's JSON again)."""
        succeeded = jobs.c.status == JobStatus.SUCCEEDED.value
        durations = (
            select(
                jobs.c.model,
                (jobs.c.started_at - jobs.c.created_at).label("queue_wait"),
                *(
                    case((succeeded, _timing(self.engine, f"{stage}_s"))).label(stage)
                    for stage in STAGES[1:]
                ),
            )
            .where(jobs.c.started_at.is_not(None))
            .cte("durations")
            .prefix_with("MATERIALIZED")
        )
        columns: list[ColumnElement[Any]] = []
        for stage in STAGES:
            value = durations.c[stage]
            columns += [
                func.count(value),
                func.coalesce(func.sum(value), 0.0),
                *(func.sum(case((value <= le, 1), else_=0)) for le in self.buckets),
            ]
        width = 2 + len(self.buckets)
        found = {}
        for model, *figures in conn.execute(
            select(durations.c.model, *columns).group_by(durations.c.model)
        ):
            for n, stage in enumerate(STAGES):
                count, total, *cumulative = figures[n * width : (n + 1) * width]
                if count:
                    found[(stage, model)] = StageHistogram(
                        cumulative=tuple(int(c or 0) for c in cumulative),
                        count=int(count),
                        sum_s=float(total),
                    )
        return found


def _timing(engine: Engine, name: str) -> ColumnElement[float]:
    """`result.timings.<name>` of a job row (the result is JSON in a text column)."""
    if engine.dialect.name == "postgresql":
        as_json = cast(jobs.c.result, postgresql.JSON)
        return cast(func.json_extract_path_text(as_json, "timings", name), Float)
    return func.json_extract(jobs.c.result, f"$.timings.{name}")
