"""Fair share between tenants: which queued job a worker takes next, and where a job stands.

A worker takes, among the tenants waiting for one of its models, the next job of the tenant
with the fewest running jobs; ties go to the higher priority of that next job, then to the
tenant served longest ago (`tenant_claims`; never served counts as longest), then to the
older job. So one tenant's burst and another tenant's single job interleave: once the
burst's first job is claimed, the other tenant's job goes next, even with a single worker.
With one tenant (the keyless default) the order is priority, then age, as it always was.

Cost: the waiting tenants are found with a loose index scan (a recursive query that steps
from one tenant to the next in `ix_jobs_tenant_claim`), and each one's next job is one
probe of that index, so choosing grows with the number of tenants waiting, not with the
depth of the queue.

Queue positions follow the same order (`predicted_order`), played forward from the queue and
the times tenants were last served. They are exact with one tenant (the keyless default);
with several they leave out running jobs, which hold their tenant back only while they run.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Select, case, func, select

from reelforge.jobs.db import upsert_insert
from reelforge.jobs.schema import jobs, tenant_claims
from reelforge.jobs.states import JobStatus

__all__ = [
    "QueueKey",
    "exact_position",
    "next_job_query",
    "predicted_order",
    "read_queues",
    "upsert_claim",
]

QueueKey = tuple[int, int]
"""A queued job's place in its tenant's queue: (-priority, seq), smallest first."""

_QUEUED = jobs.c.status == JobStatus.QUEUED.value
_AFTER_S = 0.001  # how much later than the latest a claim in the same clock tick is recorded


def _waiting_tenants() -> Any:
    """A recursive CTE of the tenants with queued jobs, one index probe per tenant."""
    # Ordered by all of `ix_jobs_tenant_claim`'s columns, not just by tenant: no other index
    # gives that order, so PostgreSQL's planner cannot pick one that starts with tenant
    # (`ix_jobs_tenant_seq`) and filter its way through the finished jobs.
    in_index_order = (jobs.c.status, jobs.c.tenant, jobs.c.priority.desc(), jobs.c.seq)
    first = (
        select(jobs.c.tenant)
        .where(_QUEUED)
        .order_by(*in_index_order)
        .limit(1)
        .scalar_subquery()
        .label("tenant")
    )
    waiting = select(first).cte("waiting", recursive=True)
    previous = waiting.alias("previous")
    following = (
        select(jobs.c.tenant)
        .where(_QUEUED, jobs.c.tenant > previous.c.tenant)
        .order_by(*in_index_order)
        .limit(1)
        .scalar_subquery()
    )
    return waiting.union_all(select(following).where(previous.c.tenant.is_not(None)))


def next_job_query(models: Sequence[str]) -> Select[Any]:
    """The seq of the job a worker serving `models` takes next (no row: none waits)."""
    waiting = _waiting_tenants()
    head_seq = (
        select(jobs.c.seq)
        .where(_QUEUED, jobs.c.tenant == waiting.c.tenant, jobs.c.model.in_(list(models)))
        .order_by(jobs.c.priority.desc(), jobs.c.seq)
        .limit(1)
        .scalar_subquery()
    )
    running = (
        select(func.count())
        .where(jobs.c.status == JobStatus.RUNNING.value, jobs.c.tenant == waiting.c.tenant)
        .scalar_subquery()
    )
    heads = (
        select(waiting.c.tenant, head_seq.label("seq"), running.label("running"))
        .where(waiting.c.tenant.is_not(None))
        .subquery("heads")
    )
    head = jobs.alias("head")
    return (
        select(head.c.seq)
        .join_from(heads, head, head.c.seq == heads.c.seq)
        .outerjoin(tenant_claims, tenant_claims.c.tenant == heads.c.tenant)
        .order_by(
            heads.c.running,
            head.c.priority.desc(),
            func.coalesce(tenant_claims.c.last_claimed_at, -1.0),
            head.c.seq,
        )
        .limit(1)
    )


def upsert_claim(conn: Connection, tenant: str, now: Any) -> None:
    """Record that `tenant` had a job claimed at `now`, in the claim's transaction.

    The time recorded is later than every tenant's, even within one tick of a coarse clock
    (SQLite's is in milliseconds), so "served longest ago" never ties between two tenants.
    """
    insert = upsert_insert(conn.dialect.name)
    latest = select(func.coalesce(func.max(tenant_claims.c.last_claimed_at), 0.0)).scalar_subquery()
    claimed_at = case((now > latest, now), else_=latest + _AFTER_S)
    statement = insert(tenant_claims).values(tenant=tenant, last_claimed_at=claimed_at)
    upsert = statement.on_conflict_do_update(
        index_elements=[tenant_claims.c.tenant],
        set_={"last_claimed_at": statement.excluded.last_claimed_at},
    )
    conn.execute(upsert)


def predicted_order(
    queues: Mapping[str, Sequence[QueueKey]],
    served: Mapping[str, float],
    cut: Collection[str] = (),
) -> Iterator[tuple[str, QueueKey]]:
    """The queued jobs in the order workers will take them: each step takes, among the
    tenants' next jobs, the highest priority, then the tenant served longest ago (`served`:
    when each last had a job claimed; absent is never), then the oldest job. Running jobs
    are not modelled: a tenant's running jobs put it behind others only while they run.

    `queues`: each waiting tenant's queued jobs, sorted; those named in `cut` were read only
    in part, so the order stops when one of them runs out (what follows is unknown).
    """
    clock = max(served.values(), default=0.0)
    heap: list[tuple[int, float, int, str, int]] = [
        (queue[0][0], served.get(tenant, -1.0), queue[0][1], tenant, 0)
        for tenant, queue in queues.items()
        if queue
    ]
    heapq.heapify(heap)
    while heap:
        _, _, _, tenant, index = heapq.heappop(heap)
        queue = queues[tenant]
        yield tenant, queue[index]
        index += 1
        if index < len(queue):
            clock += 1.0  # served now: after everyone else
            heapq.heappush(heap, (queue[index][0], clock, queue[index][1], tenant, index))
        elif tenant in cut:
            return


def read_queues(
    conn: Connection, per_tenant: int | None = None
) -> tuple[dict[str, list[QueueKey]], dict[str, float]]:
    """Each waiting tenant's queued jobs in order (the first `per_tenant` of each, or all),
    and when each tenant was last served: what `predicted_order` needs."""
    queues: dict[str, list[QueueKey]] = {}
    if per_tenant is None:  # one index-only pass over `ix_jobs_tenant_claim`
        query = (
            select(jobs.c.tenant, jobs.c.priority, jobs.c.seq)
            .where(_QUEUED)
            .order_by(jobs.c.tenant, jobs.c.priority.desc(), jobs.c.seq)
        )
        for tenant, priority, seq in conn.execute(query):
            queues.setdefault(tenant, []).append((-priority, seq))
    else:  # one bounded index range per waiting tenant
        waiting = _waiting_tenants()
        for (tenant,) in conn.execute(
            select(waiting.c.tenant).where(waiting.c.tenant.is_not(None))
        ):
            front = (
                select(jobs.c.priority, jobs.c.seq)
                .where(_QUEUED, jobs.c.tenant == tenant)
                .order_by(jobs.c.priority.desc(), jobs.c.seq)
                .limit(per_tenant)
            )
            queues[tenant] = [(-priority, seq) for priority, seq in conn.execute(front)]
    claimed = select(tenant_claims.c.tenant, tenant_claims.c.last_claimed_at)
    served = {tenant: float(at) for tenant, at in conn.execute(claimed) if tenant in queues}
    return queues, served


def exact_position(conn: Connection, tenant: str, key: QueueKey, horizon: int | None) -> int | None:
    """How many queued jobs workers take before the job (`tenant`, `key`), read afresh; only
    the first `horizon` of each tenant's jobs are read, so the answer costs time in
    proportion to `horizon`. None: it is not within `horizon` of the front, or it left."""
    queues, served = read_queues(conn, horizon)
    cut = {t for t, queue in queues.items() if horizon is not None and len(queue) == horizon}
    for position, taken in enumerate(predicted_order(queues, served, cut)):
        if taken == (tenant, key):
            return position
    return None
