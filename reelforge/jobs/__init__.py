"""The durable job queue: schema, states and the store that makes every transition."""

from __future__ import annotations

from reelforge.jobs.db import open_engine
from reelforge.jobs.schema import migrate
from reelforge.jobs.states import JobStatus
from reelforge.jobs.store import Job, JobStore, Lease, LeaseCheck, WorkerInfo, new_job_id

__all__ = [
    "Job",
    "JobStatus",
    "JobStore",
    "Lease",
    "LeaseCheck",
    "WorkerInfo",
    "new_job_id",
    "open_engine",
    "open_store",
]


def open_store(database_url: str, *, max_attempts: int = 3) -> JobStore:
    """Open (and migrate) the job database at `database_url`."""
    engine = open_engine(database_url)
    migrate(engine)
    return JobStore(engine, max_attempts=max_attempts)
