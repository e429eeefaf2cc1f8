"""Point reads of one job on the event loop's own thread (`loop_reader_for`).

A poll handed to a database thread spent most of its time waiting for the GIL: the thread
lets go of it inside each database call and must then wait for the busy event loop to give
it back (Python's switch interval, 5 ms). A read on the loop costs no hop at all. Both
readers execute SQLAlchemy's own select, compiled once, on a plain driver connection:
going through the engine (a pool checkout, a result object, the statement cache) was four
times the read itself.

- SQLite (`SqliteLoopReader`): a read by primary key takes microseconds and never waits:
  in WAL mode readers are not blocked by writers, and this connection's busy timeout is 0,
  so a read that finds the database locked (a recovery, another process's exclusive mode)
  fails at once.
- PostgreSQL (`PostgresLoopReader`): psycopg's async connections, a few per process, each
  read under the API's database deadline. A deadline that passes answers 503 at once, as
  the database thread would have; any other failure (refused, dropped) closes its pooled
  connections and turns the reader off for a few seconds, so that requests take the
  database thread, which reports it.

A reader raises `LoopReadSkipped` where the caller must take its usual path (the database
thread) instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import Engine, bindparam, select

from reelforge.errors import DatabaseUnavailable
from reelforge.jobs.db import connect_arguments
from reelforge.jobs.schema import jobs
from reelforge.jobs.store import Job, could_be_id

__all__ = [
    "LoopReadSkipped",
    "LoopReader",
    "PostgresLoopReader",
    "SqliteLoopReader",
    "loop_reader_for",
]

_OFF_AFTER_FAILURE_S = 5.0
"""How long a PostgreSQL reader leaves reads to the database threads after a failure."""


class LoopReadSkipped(Exception):
    """The read could not be done on the loop; take the database thread."""


class LoopReader(Protocol):
    async def get_job(self, job_id: str) -> Job | None:
        """The job, or None if there is none; `LoopReadSkipped`, or `DatabaseUnavailable`
        once the deadline has passed."""
        ...

    async def aclose(self) -> None: ...


def loop_reader_for(
    engine: Engine, *, deadline_s: float, connect_timeout_s: float, statement_timeout_s: float
) -> LoopReader | None:
    """The reader for `engine`'s database, or None where reads stay on threads (an
    in-memory SQLite database: a second connection would open another one)."""
    if engine.dialect.name == "sqlite":
        if engine.url.database in (None, "", ":memory:"):
            return None
        return SqliteLoopReader(engine)
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        return PostgresLoopReader(
            engine,
            deadline_s=deadline_s,
            connect_timeout_s=connect_timeout_s,
            statement_timeout_s=statement_timeout_s,
        )
    return None


def _select_sql(engine: Engine) -> str:
    statement = select(jobs).where(jobs.c.id == bindparam("id"))
    return str(statement.compile(dialect=engine.dialect))


class SqliteLoopReader:
    """One SQLite connection that never waits for a lock; one thread (the loop's) uses it."""

    def __init__(self, engine: Engine) -> None:
        """`engine`: on a SQLite file."""
        self._sql = _select_sql(engine)  # pysqlite's parameters are `?`
        self._path = engine.url.database or ""
        self._conn: sqlite3.Connection | None = None  # opened by the first read

    async def get_job(self, job_id: str) -> Job | None:
        return self.read(job_id)

    def read(self, job_id: str) -> Job | None:
        if not could_be_id(job_id):
            return None
        try:
            if self._conn is None:
                self._conn = self._connect()
            # fetchall, not fetchone: stepping the statement to its end finishes its read
            # transaction, so the next read sees the latest commit, not this one's snapshot.
            rows = self._conn.execute(self._sql, (job_id,)).fetchall()
        except sqlite3.Error as exc:
            raise LoopReadSkipped(str(exc)) from exc
        return Job.from_mapping(rows[0]) if rows else None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only=ON")
        return conn

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresLoopReader:
    """Up to `connections` async psycopg connections of one event loop, opened on demand.

    Written here rather than with psycopg_pool: its `getconn` waits its whole timeout while
    it retries a refused database in the background, where the API answers a refused
    database at once."""

    def __init__(
        self,
        engine: Engine,
        *,
        deadline_s: float,
        connect_timeout_s: float,
        statement_timeout_s: float,
        connections: int = 4,
        pause_after_failure_s: float = _OFF_AFTER_FAILURE_S,
    ) -> None:
        self.deadline_s = deadline_s
        self.pause_after_failure_s = pause_after_failure_s
        # SQLAlchemy's psycopg dialect compiles bound parameters as %(name)s, as psycopg takes.
        self._sql = _select_sql(engine)
        self._args, self._params = connect_arguments(
            engine, connect_timeout_s, statement_timeout_s + 1.0
        )
        self._params.setdefault("application_name", "reelforge-api")
        # As the engine's connections (`jobs.db`): a timeout the URL sets itself wins.
        own_timeout = "statement_timeout" in str(self._params.get("options", ""))
        self._set_timeout = (
            None if own_timeout else f"SET statement_timeout = {round(statement_timeout_s * 1000)}"
        )
        self._idle: list[psycopg.AsyncConnection[dict[str, Any]]] = []
        self._slots = asyncio.Semaphore(connections)
        self._off_until = 0.0
        # Every read in flight, held so that one past its deadline, left to finish (or fail)
        # in the background, is not collected while pending.
        self._in_flight: set[asyncio.Task[Job | None]] = set()

    async def get_job(self, job_id: str) -> Job | None:
        if not could_be_id(job_id):
            return None
        if time.monotonic() < self._off_until:
            raise LoopReadSkipped("the database failed recently")
        read = asyncio.ensure_future(self._read(job_id))
        self._in_flight.add(read)
        read.add_done_callback(self._in_flight.discard)
        # Not `wait_for`: cancelling a psycopg query waits up to 10 s for the server to
        # confirm it, which a black-holed server never does. The read is left to end alone.
        done, _ = await asyncio.wait({read}, timeout=self.deadline_s)
        if not done:
            read.cancel()
            self._off_until = time.monotonic() + self.pause_after_failure_s
            raise DatabaseUnavailable.no_answer_within(self.deadline_s)
        try:
            return read.result()
        except (psycopg.Error, OSError) as exc:
            self._off_until = time.monotonic() + self.pause_after_failure_s
            # The others were opened to the same server and most likely broke with it (a
            # restart, a failover): reconnect afresh rather than fail once per connection.
            await self._close_idle()
            raise LoopReadSkipped(str(exc)) from exc

    async def _read(self, job_id: str) -> Job | None:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                cursor = await conn.execute(self._sql, {"id": job_id})
                row = await cursor.fetchone()
            except BaseException:
                await conn.close()  # in an unknown state: never reused
                raise
            self._idle.append(conn)
        return Job.from_mapping(row) if row is not None else None

    async def _connect(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        conn = await psycopg.AsyncConnection.connect(
            *self._args, autocommit=True, row_factory=dict_row, **self._params
        )
        if self._set_timeout is not None:
            await conn.execute(self._set_timeout)
        return conn

    async def _close_idle(self) -> None:
        while self._idle:
            await self._idle.pop().close()

    async def aclose(self) -> None:
        for task in list(self._in_flight):
            task.cancel()
        await self._close_idle()
