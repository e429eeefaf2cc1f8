"""The durable job queue: schema, states and the store that makes every transition."""

from __future__ import annotations

from reelforge.jobs.db import open_engine
from reelforge.jobs.failures import DatabaseStartupError, startup_error, translate_db_error
from reelforge.jobs.schema import migrate
from reelforge.jobs.states import JobStatus
from reelforge.jobs.store import Job, JobStore, Lease, LeaseCheck, new_job_id
from reelforge.jobs.workers import WorkerInfo, WorkerState

__all__ = [
    "DatabaseStartupError",
    "Job",
    "JobStatus",
    "JobStore",
    "Lease",
    "LeaseCheck",
    "WorkerInfo",
    "WorkerState",
    "new_job_id",
    "open_engine",
    "open_store",
    "translate_db_error",
]


def open_store(
    database_url: str,
    *,
    max_attempts: int = 3,
    connect_timeout_s: float = 5.0,
    statement_timeout_s: float = 5.0,
    pool_timeout_s: float = 10.0,
    sqlite_busy_timeout_s: float = 30.0,
    pool_size: int = 10,
) -> JobStore:
    """Open (and migrate) the job database at `database_url`; the timeouts are
    `open_engine`'s.

    Raises `DatabaseStartupError`, whose message is one line for the operator, when the
    database cannot be reached or opened (down, black-holed, misnamed, a damaged SQLite file).
    """
    engine = None
    try:
        engine = open_engine(
            database_url,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_s=statement_timeout_s,
            pool_timeout_s=pool_timeout_s,
            sqlite_busy_timeout_s=sqlite_busy_timeout_s,
            pool_size=pool_size,
        )
        migrate(engine)
    except Exception as exc:
        if engine is not None:
            engine.dispose()
        error = startup_error(database_url, exc)
        if error is None:
            raise
        raise error from exc
    return JobStore(engine, max_attempts=max_attempts)
