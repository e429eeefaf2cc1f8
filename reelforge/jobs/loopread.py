"""Point reads of one job on the event loop's own thread, for SQLite (`LoopReader`).

A poll handed to a database thread spent most of its time waiting for the GIL: the thread
lets go of it inside each SQLite call and must then wait for the busy event loop to give it
back (Python's switch interval, 5 ms). Reading on the loop costs no hop at all, and a read
by primary key takes microseconds. It is safe only where a read never waits: SQLite in WAL
mode does not block readers behind writers, and this connection's busy timeout is 0, so a
read that finds the database locked (a recovery, another process's exclusive mode) fails at
once and the caller takes the database thread instead. PostgreSQL reads cross a network and
stay on threads.

Plain `sqlite3` rather than SQLAlchemy: the statement is SQLAlchemy's own select, compiled
once, but executing it through the engine (a pool checkout, a result object, the statement
cache) was four times the read itself.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import Engine, bindparam, select

from reelforge.jobs.schema import jobs
from reelforge.jobs.store import Job, could_be_id

__all__ = ["LoopReader"]


class LoopReader:
    """`get_job(id)` on one SQLite connection that never waits for a lock. Use it from one
    thread (the event loop's); `close()` when done."""

    def __init__(self, engine: Engine) -> None:
        """`engine`: on a SQLite file (see `for_engine`)."""
        statement = select(jobs).where(jobs.c.id == bindparam("id"))
        self._sql = str(statement.compile(dialect=engine.dialect))
        self._conn = sqlite3.connect(
            engine.url.database or "", timeout=0, isolation_level=None, check_same_thread=False
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA query_only=ON")

    @classmethod
    def for_engine(cls, engine: Engine) -> LoopReader | None:
        """A reader of `engine`'s database, or None where reads must stay on threads."""
        if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
            return None  # a second connection to an in-memory database opens another one
        return cls(engine)

    def get_job(self, job_id: str) -> Job | None:
        """The job, or None if there is none. Raises `sqlite3.Error` (locked, damaged)."""
        if not could_be_id(job_id):
            return None
        # fetchall, not fetchone: stepping the statement to its end finishes its read
        # transaction, so the next read sees the latest commit, not this read's snapshot.
        rows = self._conn.execute(self._sql, (job_id,)).fetchall()
        return Job.from_mapping(rows[0]) if rows else None

    def close(self) -> None:
        self._conn.close()
