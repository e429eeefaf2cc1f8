"""The job store: every job state transition, on SQLite or PostgreSQL, in one place.

Workers claim jobs atomically and get a random lease token; every later write of theirs
(heartbeat, progress, result, failure) carries that token in its WHERE clause, so a worker
whose lease expired and whose job was handed to another cannot overwrite the new run.

Every transition also writes its event (`jobs.events`) in the same transaction, and the
webhook deliveries the job's subscription asks for: the outbox its consumers read.
"""

from __future__ import annotations

import enum
import functools
import json
import logging
import math
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Row, RowMapping, and_, case, delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from reelforge.jobs import fairshare
from reelforge.jobs.db import db_now, reading, upsert_insert
from reelforge.jobs.events import PROGRESS_EVENT_STEP, EventType, JobEvent, webhook_event
from reelforge.jobs.notify import notify_queued
from reelforge.jobs.result import JobResult
from reelforge.jobs.schema import (
    EXTERNAL_ID_MAX_CHARS,
    GENERATION_TOTAL_SHARDS,
    JOB_ID_MAX_CHARS,
    generation_totals,
    idempotency_keys,
    job_events,
    jobs,
    webhook_attempts,
    webhook_deliveries,
)
from reelforge.jobs.states import JobStatus
from reelforge.jobs.workers import WorkerInfo, WorkerRegistry
from reelforge.spec import GenerationSpec

__all__ = [
    "ExternalIdTaken",
    "Job",
    "JobPage",
    "JobStore",
    "Lease",
    "LeaseCheck",
    "WebhookSubscription",
    "WorkerInfo",
]

log = logging.getLogger(__name__)


_CLAIM_TRIES = 5

Admission = Callable[[Connection, GenerationSpec], None]
"""A check a create runs in its insert's transaction (`JobStore.create_job(admit=...)`)."""


@dataclass(frozen=True)
class WebhookSubscription:
    """Where a job's events are sent, and which of them (webhook names, `jobs.events`)."""

    url: str
    events: tuple[str, ...]


class ColumnValues(Protocol):
    """A row's values by column name: SQLAlchemy's `RowMapping`, or a `sqlite3.Row`."""

    def __getitem__(self, name: str, /) -> Any: ...


@dataclass(frozen=True)
class Job:
    """A snapshot of one job row."""

    id: str
    seq: int
    model: str
    status: JobStatus
    spec: GenerationSpec
    tenant: str
    priority: int
    attempts: int
    max_attempts: int
    progress: float
    cancel_requested: bool
    error_name: str | None
    error_message: str | None
    result: JobResult | None
    worker_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    dialect: str = "aimlapi"
    webhook: WebhookSubscription | None = None
    expires_at: float | None = None
    external_id: str | None = None
    """The client's own name for the job (Kling's `external_task_id`), unique per tenant."""
    step: int | None = None
    """The engine's denoising step the running job has done, of `steps`; None until the
    run's first step is reported (and again once it is handed back)."""
    steps: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status.is_terminal

    @classmethod
    def from_row(cls, row: Row[Any]) -> Job:
        return cls.from_mapping(row._mapping)

    @classmethod
    def from_mapping(cls, m: ColumnValues) -> Job:
        """From a row of `jobs` by column name (SQLAlchemy's or `sqlite3.Row`)."""
        return cls(
            id=m["id"],
            seq=m["seq"],
            model=m["model"],
            status=JobStatus(m["status"]),
            spec=_parsed_spec(m["spec"]),
            tenant=m["tenant"],
            priority=m["priority"],
            attempts=m["attempts"],
            max_attempts=m["max_attempts"],
            progress=m["progress"],
            cancel_requested=bool(m["cancel_requested"]),
            error_name=m["error_name"],
            error_message=m["error_message"],
            result=_parsed_result(m["result"]) if m["result"] else None,
            worker_id=m["worker_id"],
            created_at=m["created_at"],
            started_at=m["started_at"],
            finished_at=m["finished_at"],
            updated_at=m["updated_at"],
            dialect=m["dialect"],
            webhook=_subscription(m),
            expires_at=m["expires_at"],
            external_id=m["external_id"],
            step=m["step"],
            steps=m["steps"],
        )


# A job's spec never changes and its result is written once, and polls read the same few
# jobs again and again: their parsed models (frozen) are kept by their JSON text, which
# saves the validation of both on most reads (a third of turning a row into a `Job`).
# Shared by every `Job` read from the same text, then: a result's `meta` dict (and the
# lists in it) must be copied, never changed in place (renderers spread it into their own).
@functools.lru_cache(maxsize=1024)
def _parsed_spec(text: str) -> GenerationSpec:
    return GenerationSpec.model_validate_json(text)


@functools.lru_cache(maxsize=1024)
def _parsed_result(text: str) -> JobResult:
    return JobResult.model_validate_json(text)


def _subscription(m: ColumnValues) -> WebhookSubscription | None:
    if not m["webhook_url"]:
        return None
    return WebhookSubscription(m["webhook_url"], tuple(json.loads(m["webhook_events"] or "[]")))


@dataclass(frozen=True)
class JobPage:
    """One page of a tenant's jobs, newest first."""

    jobs: list[Job]
    has_more: bool


@dataclass(frozen=True)
class Lease:
    """A worker's claim on one job; `token` fences every write the worker makes."""

    job: Job
    token: str

    @property
    def job_id(self) -> str:
        return self.job.id


class LeaseCheck(enum.Enum):
    """What a worker may do with a job it holds, checked between denoising steps."""

    OWNED = "owned"
    """Carry on."""
    CANCEL_REQUESTED = "cancel_requested"
    """Stop now and record the job as canceled (`JobStore.finish_canceled`)."""
    LOST = "lost"
    """Another worker owns the job now (or it ended); drop it without writing."""


class JobStore(WorkerRegistry):
    """Creates, claims and finishes jobs, and keeps the worker registry (`jobs.workers`).
    Safe to share between threads of one process and between processes (and hosts) on the
    same database."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_attempts: int = 3,
        on_enqueue: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        # Wakes idle workers of this host at once instead of at their next poll (a hint,
        # never required): `serve`'s children on SQLite. On PostgreSQL every queued job is
        # also announced to all hosts by NOTIFY (`jobs.notify`).
        self.on_enqueue = on_enqueue
        self._now = db_now(engine)

    # --- the API's side ---------------------------------------------------------------

    def create_job(
        self,
        spec: GenerationSpec,
        *,
        tenant: str = "",
        priority: int = 0,
        job_id: str | None = None,
        dialect: str = "aimlapi",
        webhook: WebhookSubscription | None = None,
        keep_for_s: float | None = None,
        external_id: str | None = None,
        admit: Admission | None = None,
    ) -> Job:
        """Insert a queued job (and its `created` event) and wake the workers. `keep_for_s`:
        how long the retention sweeper keeps it after creation (None: until deleted);
        `external_id`: the client's name for it, which raises `ExternalIdTaken` when another
        of the tenant's jobs has it; `admit`: a check run in the insert's own transaction,
        before it (a tenant's quotas), which refuses the job by raising."""
        job_id = job_id or new_job_id()
        try:
            row = self._insert_job(
                spec, tenant, priority, job_id, dialect, webhook, keep_for_s, external_id, admit
            )
        except IntegrityError:
            if external_id is not None and self.find_job_by_external_id(tenant, external_id):
                raise ExternalIdTaken(external_id) from None
            raise
        if self.on_enqueue is not None:
            self.on_enqueue()
        return Job.from_row(row)

    def _insert_job(
        self,
        spec: GenerationSpec,
        tenant: str,
        priority: int,
        job_id: str,
        dialect: str,
        webhook: WebhookSubscription | None,
        keep_for_s: float | None,
        external_id: str | None,
        admit: Admission | None = None,
    ) -> Row[Any]:
        # SQLite: a check that reads before the insert writes must hold the write lock from
        # the start, or two creates could both pass it (and one would fail to upgrade).
        options = {"sqlite_begin": "IMMEDIATE"} if admit is not None else {}
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            if admit is not None:
                admit(conn, spec)
            row = conn.execute(
                jobs.insert()
                .values(
                    id=job_id,
                    model=spec.model,
                    status=JobStatus.QUEUED.value,
                    spec=spec.model_dump_json(),
                    tenant=tenant,
                    priority=priority,
                    max_attempts=self.max_attempts,
                    created_at=self._now,
                    updated_at=self._now,
                    dialect=dialect,
                    webhook_url=webhook.url if webhook else None,
                    webhook_events=json.dumps(list(webhook.events)) if webhook else None,
                    expires_at=None if keep_for_s is None else self._now + keep_for_s,
                    external_id=external_id,
                    video_seconds=spec.seconds,
                )
                .returning(*jobs.c)
            ).one()
            self._emit(conn, row._mapping, EventType.CREATED)
        return row

    def find_job_by_external_id(self, tenant: str, external_id: str) -> Job | None:
        """The tenant's job with this external id (None if it has none)."""
        if not 0 < len(external_id) <= EXTERNAL_ID_MAX_CHARS or "\x00" in external_id:
            return None
        query = select(jobs).where(jobs.c.tenant == tenant, jobs.c.external_id == external_id)
        with reading(self.engine) as conn:
            row = conn.execute(query).first()
        return Job.from_row(row) if row is not None else None

    def get_job(self, job_id: str) -> Job | None:
        if not could_be_id(job_id):
            return None
        with reading(self.engine) as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return Job.from_row(row) if row is not None else None

    def queue_position(self, job: Job, horizon: int | None = None) -> int | None:
        """How many queued jobs workers will take before this one (0 = next), in the
        fair-share order (`jobs.fairshare.predicted_order`); None once the job has left the
        queue, or when it is not within `horizon` of the front. Reads up to `horizon` jobs
        of each waiting tenant (all, without one); `jobs.queue.QueuePositions` is the cheap
        form."""
        if job.status is not JobStatus.QUEUED:
            return None
        key = (-job.priority, job.seq)
        with reading(self.engine) as conn:
            return fairshare.exact_position(conn, job.tenant, key, horizon)

    def recent_run_seconds(self, model: str, limit: int = 20) -> list[float]:
        """How long the last `limit` succeeded jobs of `model` took from their first claim to
        their end, newest first (what a queued job's ETA is made of)."""
        recent = (
            select((jobs.c.finished_at - jobs.c.started_at).label("run_s"))
            .where(
                jobs.c.status == JobStatus.SUCCEEDED.value,
                jobs.c.model == model,
                jobs.c.started_at.is_not(None),
                jobs.c.finished_at.is_not(None),
            )
            .order_by(jobs.c.seq.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [max(0.0, float(run_s)) for (run_s,) in conn.execute(recent)]

    def clock(self) -> float:
        """The database's clock (epoch seconds): what job timestamps are measured against."""
        with self.engine.connect() as conn:
            return float(conn.execute(select(self._now)).scalar_one())

    def request_cancel(self, job_id: str) -> Job | None:
        """Cancel a job: a queued one ends as canceled at once; a running one is flagged, and
        its worker stops at the next denoising step (`check_lease`). A finished job is left
        as it is. Returns the job as it now stands, or None if there is no such job."""
        if not could_be_id(job_id):
            return None
        queued = and_(jobs.c.id == job_id, jobs.c.status == JobStatus.QUEUED.value)
        running = and_(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING.value)
        with self.engine.begin() as conn:
            ended = conn.execute(
                jobs.update()
                .where(queued)
                .values(
                    status=JobStatus.CANCELED.value,
                    cancel_requested=True,
                    finished_at=self._now,
                    updated_at=self._now,
                )
                .returning(*jobs.c)
            ).first()
            if ended is not None:
                self._emit(conn, ended._mapping, EventType.CANCELED)
            conn.execute(
                jobs.update().where(running).values(cancel_requested=True, updated_at=self._now)
            )
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return Job.from_row(row) if row is not None else None

    def events_after(self, job_id: str, after_seq: int = 0, limit: int = 100) -> list[JobEvent]:
        """The job's events with `seq > after_seq`, oldest first."""
        if not could_be_id(job_id):
            return []
        query = (
            select(job_events)
            .where(job_events.c.job_id == job_id, job_events.c.seq > after_seq)
            .order_by(job_events.c.seq)
            .limit(limit)
        )
        with reading(self.engine) as conn:
            return [JobEvent.from_row(row) for row in conn.execute(query)]

    def list_jobs(
        self,
        tenant: str | None,
        *,
        limit: int,
        after: str | None = None,
        status: Sequence[JobStatus] = (),
        model: str | None = None,
        models: Sequence[str] = (),
        offset: int = 0,
        oldest_first: bool = False,
    ) -> JobPage:
        """The tenant's jobs (None: every tenant's), newest first (or oldest first); `after`
        is the id of the last job of the previous page (an id that is not the tenant's, or no
        longer exists, gives an empty page); `models` keeps jobs of any of these models;
        `offset` skips that many (page-number paging, for dialects that page so)."""
        mine = [] if tenant is None else [jobs.c.tenant == tenant]
        query = select(jobs).where(*mine)
        if after is not None:
            if not could_be_id(after):
                return JobPage([], False)
            cursor = select(jobs.c.seq).where(jobs.c.id == after, *mine).scalar_subquery()
            query = query.where(jobs.c.seq > cursor if oldest_first else jobs.c.seq < cursor)
        if status:
            query = query.where(jobs.c.status.in_([s.value for s in status]))
        if model is not None:
            query = query.where(jobs.c.model == model)
        if models:
            query = query.where(jobs.c.model.in_(list(models)))
        order = jobs.c.seq.asc() if oldest_first else jobs.c.seq.desc()
        query = query.order_by(order).offset(offset).limit(limit + 1)
        with reading(self.engine) as conn:
            rows = conn.execute(query).all()
        return JobPage([Job.from_row(r) for r in rows[:limit]], has_more=len(rows) > limit)

    def delete_job(self, job_id: str) -> Job | None:
        """Remove the job's row, its events, idempotency keys and webhook records, and write
        its `deleted` event; returns the job as it was (its storage keys are the caller's to
        remove), or None if there was no such job. A running job should be canceled first:
        its worker then finds its lease gone and drops its result."""
        if not could_be_id(job_id):
            return None
        with self.engine.begin() as conn:
            row = conn.execute(jobs.delete().where(jobs.c.id == job_id).returning(*jobs.c)).first()
            if row is None:
                return None
            for table in (job_events, webhook_deliveries, webhook_attempts, idempotency_keys):
                conn.execute(delete(table).where(table.c.job_id == job_id))
            self._emit(conn, row._mapping, EventType.DELETED)
        return Job.from_row(row)

    def expired_jobs(self, limit: int = 100) -> list[Job]:
        """Finished jobs whose retention ran out, oldest first (the sweeper deletes them)."""
        query = (
            select(jobs)
            .where(
                jobs.c.expires_at < self._now,
                jobs.c.status.in_([s.value for s in JobStatus if s.is_terminal]),
            )
            .order_by(jobs.c.expires_at)
            .limit(limit)
        )
        with reading(self.engine) as conn:
            return [Job.from_row(r) for r in conn.execute(query)]

    def orphaned_event_jobs(self, older_than_s: float, limit: int = 100) -> list[str]:
        """Ids of jobs that no longer exist but still have events older than `older_than_s`:
        their `deleted` event, kept a while so that an event stream learns where its job
        went (`prune_events` removes them)."""
        # Only a `deleted` event outlives its job (`delete_job` removes the others with the
        # row), and comparing the type first spares the probe of `jobs` for every other row.
        query = (
            select(job_events.c.job_id)
            .where(
                job_events.c.type == EventType.DELETED.value,
                job_events.c.created_at < self._now - older_than_s,
                _job_gone(),
            )
            .distinct()
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def prune_events(self, job_ids: Sequence[str]) -> int:
        """Remove the events of these jobs, if the jobs no longer exist; returns how many."""
        if not job_ids:
            return 0
        query = delete(job_events).where(job_events.c.job_id.in_(job_ids), _job_gone())
        with self.engine.begin() as conn:
            return int(conn.execute(query).rowcount)

    def count_by_status(self) -> dict[JobStatus, int]:
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        with reading(self.engine) as conn:
            counts = {JobStatus(status): n for status, n in conn.execute(query)}
        return {status: counts.get(status, 0) for status in JobStatus}

    # --- the worker's side ------------------------------------------------------------

    def claim_next_job(
        self, worker_id: str, models: Sequence[str], lease_seconds: float
    ) -> Lease | None:
        """Atomically take the next queued job for one of `models` in fair-share order
        (`jobs.fairshare`), or return None. The choice is a read; only a claim writes, so an
        idle worker's polls write nothing. Jobs of lost workers come back to the queue
        through `requeue_expired`, on its own period (`jobs.recovery.LeaseRecovery`)."""
        if not models:
            return None
        choose = fairshare.next_job_query(models)
        # Another worker may take the chosen job between the read and the update; then the
        # update matches nothing and the next choice is read. Bounded: each miss means a
        # job was claimed, and a worker that keeps losing simply polls again.
        for _ in range(_CLAIM_TRIES):
            with reading(self.engine) as conn:
                seq = conn.execute(choose).scalar()
            if seq is None:
                return None
            lease = self._claim(seq, worker_id, lease_seconds)
            if lease is not None:
                return lease
        return None

    def _claim(self, seq: int, worker_id: str, lease_seconds: float) -> Lease | None:
        token = secrets.token_hex(16)
        claim = (
            jobs.update()
            .where(jobs.c.seq == seq, jobs.c.status == JobStatus.QUEUED.value)
            .values(
                status=JobStatus.RUNNING.value,
                lease_token=token,
                lease_expires_at=self._now + lease_seconds,
                worker_id=worker_id,
                attempts=jobs.c.attempts + 1,
                progress=0.0,
                step=None,
                steps=None,
                started_at=func.coalesce(jobs.c.started_at, self._now),
                updated_at=self._now,
            )
            .returning(*jobs.c)
        )
        with self.engine.begin() as conn:
            row = conn.execute(claim).first()
            if row is None:
                return None
            fairshare.upsert_claim(conn, row.tenant, self._now)
            self._emit(conn, row._mapping, EventType.STARTED, {"attempt": row.attempts})
        return Lease(Job.from_row(row), token)

    def renew_lease(self, lease: Lease, lease_seconds: float) -> bool:
        """Extend the lease; False means this worker no longer owns the job."""
        return self._fenced_update(
            lease, lease_expires_at=self._now + lease_seconds, updated_at=self._now
        )

    def check_lease(self, lease: Lease) -> LeaseCheck:
        """Whether the worker still owns the job and whether a cancel was asked for: one
        indexed read, cheap enough to run after every denoising step."""
        query = select(jobs.c.status, jobs.c.lease_token, jobs.c.cancel_requested).where(
            jobs.c.id == lease.job_id
        )
        with reading(self.engine) as conn:
            row = conn.execute(query).first()
        if row is None or row.status != JobStatus.RUNNING.value or row.lease_token != lease.token:
            return LeaseCheck.LOST
        return LeaseCheck.CANCEL_REQUESTED if row.cancel_requested else LeaseCheck.OWNED

    def finish_canceled(self, lease: Lease) -> bool:
        """End a running job as canceled (its worker stopped on request); fenced."""
        return self._fenced_update(
            lease,
            event=EventType.CANCELED,
            status=JobStatus.CANCELED.value,
            lease_token=None,
            lease_expires_at=None,
            finished_at=self._now,
            updated_at=self._now,
        )

    def report_progress(
        self, lease: Lease, progress: float, step: tuple[int, int] | None = None
    ) -> bool:
        """Record progress (0..1) of the running job, and `step` (done, total) of its engine
        when given, with a `progress` event each time it crosses a milestone; False if the
        lease was lost."""
        progress = max(0.0, min(1.0, progress))
        values: dict[str, object] = {"progress": progress}
        if step is not None:
            values["step"], values["steps"] = step
        fence = self._fence(lease)
        # Read, then write: on SQLite the transaction must take the write lock first. A
        # deferred one that read before another process committed (the API's webhook
        # dispatcher, a create) cannot upgrade and fails at once with "database is locked",
        # whatever the busy timeout.
        begin = self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")
        with begin as conn, conn.begin():
            before = conn.execute(select(jobs.c.progress).where(fence)).scalar_one_or_none()
            if before is None:
                return False
            row = conn.execute(
                jobs.update().where(fence).values(**values).returning(*jobs.c)
            ).first()
            if row is None:
                return False
            if _milestone(progress) > _milestone(before):
                self._emit(conn, row._mapping, EventType.PROGRESS)
        return True

    def complete_job(self, lease: Lease, result: JobResult) -> bool:
        """Mark the job succeeded with its artifacts, in one fenced update."""
        return self._fenced_update(
            lease,
            event=EventType.SUCCEEDED,
            status=JobStatus.SUCCEEDED.value,
            progress=1.0,
            result=result.model_dump_json(),
            engine_seconds=result.timings.engine_s,
            lease_token=None,
            lease_expires_at=None,
            finished_at=self._now,
            updated_at=self._now,
        )

    def fail_job(
        self, lease: Lease, *, name: str, message: str, retryable: bool = False
    ) -> JobStatus | None:
        """End the run in failure: back to the queue if `retryable` and attempts remain,
        otherwise failed. Returns the new status, or None if the lease was lost."""
        requeue = retryable and lease.job.attempts < lease.job.max_attempts
        status = JobStatus.QUEUED if requeue else JobStatus.FAILED
        changed = self._fenced_update(
            lease,
            event=EventType.REQUEUED if requeue else EventType.FAILED,
            event_data={"error": name},
            status=status.value,
            error_name=None if requeue else name,
            error_message=None if requeue else message,
            lease_token=None,
            lease_expires_at=None,
            worker_id=None,
            finished_at=None if requeue else self._now,
            updated_at=self._now,
        )
        if changed and requeue and self.on_enqueue is not None:
            self.on_enqueue()
        return status if changed else None

    def hand_back(self, lease: Lease, *, reason: str) -> bool:
        """Return a running job to the queue without spending an attempt (its worker was
        told to stop and the job did not finish in time), with a `requeued` event carrying
        `reason`; fenced. False if the lease was lost."""
        changed = self._fenced_update(
            lease,
            event=EventType.REQUEUED,
            event_data={"reason": reason},
            status=JobStatus.QUEUED.value,
            # The claim counted this run as an attempt; it was not the job's fault.
            attempts=jobs.c.attempts - 1,
            progress=0.0,
            step=None,
            steps=None,
            lease_token=None,
            lease_expires_at=None,
            worker_id=None,
            updated_at=self._now,
        )
        if changed and self.on_enqueue is not None:
            self.on_enqueue()
        return changed

    def requeue_expired(self) -> int:
        """Return jobs of lost workers to the queue, fail those out of attempts, and end those
        whose cancel was asked for as canceled. Costs one indexed read when no lease has
        expired (the usual case): every worker and API process runs it periodically."""
        expired = and_(
            jobs.c.status == JobStatus.RUNNING.value, jobs.c.lease_expires_at < self._now
        )
        # Read first: an UPDATE that matches nothing still takes SQLite's write lock and is a
        # write transaction on PostgreSQL.
        with reading(self.engine) as conn:
            if conn.execute(select(jobs.c.seq).where(expired).limit(1)).first() is None:
                return 0
        canceled = jobs.c.cancel_requested.is_(True)
        out_of_attempts = and_(jobs.c.attempts >= jobs.c.max_attempts, ~canceled)
        ends = or_(canceled, out_of_attempts)
        with self.engine.begin() as conn:
            # One statement, so a job is either requeued or ended, never both.
            result = conn.execute(
                jobs.update()
                .where(expired)
                .values(
                    status=case(
                        (canceled, JobStatus.CANCELED.value),
                        (out_of_attempts, JobStatus.FAILED.value),
                        else_=JobStatus.QUEUED.value,
                    ),
                    error_name=case((out_of_attempts, "worker_lost"), else_=None),
                    error_message=case(
                        (
                            out_of_attempts,
                            "the worker running this job stopped responding; "
                            "giving up after the attempt limit",
                        ),
                        else_=None,
                    ),
                    finished_at=case((ends, self._now), else_=None),
                    lease_token=None,
                    lease_expires_at=None,
                    worker_id=None,
                    updated_at=self._now,
                )
                .returning(*jobs.c)
            ).all()
            for row in result:
                status = JobStatus(row.status)
                event = _EXPIRY_EVENTS[status]
                self._emit(conn, row._mapping, event, {"error": row.error_name or "worker_lost"})
            return len(result)

    def _fence(self, lease: Lease) -> Any:
        return and_(
            jobs.c.id == lease.job_id,
            jobs.c.lease_token == lease.token,
            jobs.c.status == JobStatus.RUNNING.value,
        )

    def _fenced_update(
        self,
        lease: Lease,
        *,
        event: EventType | None = None,
        event_data: dict[str, Any] | None = None,
        **values: Any,
    ) -> bool:
        update = jobs.update().where(self._fence(lease)).values(**values)
        with self.engine.begin() as conn:
            if event is None:
                return bool(conn.execute(update).rowcount)
            row = conn.execute(update.returning(*jobs.c)).first()
            if row is not None:
                self._emit(conn, row._mapping, event, event_data)
            return row is not None

    def _count(self, conn: Connection, job: RowMapping, event: EventType) -> None:
        """One more in the job's `generation_totals` row for `event` (a random shard)."""
        insert = upsert_insert(self.engine.dialect.name)
        statement = insert(generation_totals).values(
            model=job["model"],
            dialect=job["dialect"],
            outcome=event.value,
            shard=secrets.randbelow(GENERATION_TOTAL_SHARDS),
            count=1,
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[
                    generation_totals.c.model,
                    generation_totals.c.dialect,
                    generation_totals.c.outcome,
                    generation_totals.c.shard,
                ],
                set_={"count": generation_totals.c.count + 1},
            )
        )

    def _emit(
        self,
        conn: Connection,
        job: RowMapping,
        event: EventType,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Write `event` for the job row `job` (as it is after the transition), and the
        webhook delivery its subscription asks for, in the caller's transaction; a job
        that is now queued is announced to listening workers on commit (PostgreSQL)."""
        if event in _QUEUEING_EVENTS and self.engine.dialect.name == "postgresql":
            notify_queued(conn, job["model"])
        if event in _COUNTED_EVENTS:
            self._count(conn, job, event)
        seq = conn.execute(
            job_events.insert()
            .values(
                job_id=job["id"],
                tenant=job["tenant"],
                type=event.value,
                status=job["status"],
                progress=job["progress"],
                data=json.dumps(data) if data else None,
                created_at=self._now,
            )
            .returning(job_events.c.seq)
        ).scalar_one()
        # One log line per transition, from whichever process made it (progress only at
        # DEBUG: up to 20 a run). Written inside the transaction: a transition whose commit
        # then fails has a line but no event.
        log.log(
            logging.DEBUG if event is EventType.PROGRESS else logging.INFO,
            "job %s: %s (status %s)",
            job["id"],
            event.value,
            job["status"],
            extra={"job_id": job["id"], "event": event.value, "status": job["status"]},
        )
        subscription = _subscription(job)
        name = webhook_event(event)
        if subscription is not None and name is not None and name in subscription.events:
            conn.execute(
                webhook_deliveries.insert().values(
                    id=f"msg_{uuid.uuid4().hex}",
                    job_id=job["id"],
                    event_seq=seq,
                    event_type=name,
                    url=subscription.url,
                    status="pending",
                    next_attempt_at=self._now,
                    created_at=self._now,
                    updated_at=self._now,
                )
            )


_QUEUEING_EVENTS = frozenset({EventType.CREATED, EventType.REQUEUED})
"""The transitions that put a job in the queue: workers are told of them."""

# The transitions `generation_totals` counts.
_COUNTED_EVENTS = frozenset(
    {EventType.CREATED, EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELED}
)

_EXPIRY_EVENTS = {
    JobStatus.QUEUED: EventType.REQUEUED,
    JobStatus.FAILED: EventType.FAILED,
    JobStatus.CANCELED: EventType.CANCELED,
}


def _milestone(progress: float) -> int:
    # The epsilon keeps 0.15 (stored as 0.1499...) on its own milestone.
    return math.floor(progress / PROGRESS_EVENT_STEP + 1e-9)


def _job_gone() -> Any:
    """True for a `job_events` row whose job no longer exists."""
    return ~select(jobs.c.id).where(jobs.c.id == job_events.c.job_id).exists()


class ExternalIdTaken(Exception):
    """Another job of the tenant already has this external id."""


def could_be_id(job_id: str) -> bool:
    """Whether `job_id` could name a row: ids from the outside are checked before a query,
    since PostgreSQL refuses a NUL in any text (an error, not "no such job")."""
    return 0 < len(job_id) <= JOB_ID_MAX_CHARS and "\x00" not in job_id


def new_job_id() -> str:
    """A public job id: random, so ids cannot be guessed or enumerated."""
    return str(uuid.uuid4())
