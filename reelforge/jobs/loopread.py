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
import itertools
import logging
import sqlite3
import time
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import Engine, any_, bindparam, select

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

log = logging.getLogger(__name__)

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
        max_batch: int = 64,
        pause_after_failure_s: float = _OFF_AFTER_FAILURE_S,
    ) -> None:
        """`connections`: at most that many queries at once; `max_batch`: jobs per query."""
        self.deadline_s = deadline_s
        self.pause_after_failure_s = pause_after_failure_s
        # SQLAlchemy's psycopg dialect compiles bound parameters as %(name)s, as psycopg takes.
        self._batch_sql = str(
            select(jobs).where(jobs.c.id == any_(bindparam("ids"))).compile(dialect=engine.dialect)
        )
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
        self._connections = connections
        self._max_batch = max_batch
        self._pending: dict[str, asyncio.Future[Job | None]] = {}  # by job id, not yet sent
        self._running = 0  # batch tasks, at most one per connection
        self._starting = False  # a batch task is started and has not taken its batch yet
        self._off_until = 0.0
        # Every batch in flight, held so that one past its deadline, left to finish (or
        # fail) in the background, is not collected while pending.
        self._in_flight: set[asyncio.Task[None]] = set()

    async def get_job(self, job_id: str) -> Job | None:
        if not could_be_id(job_id):
            return None
        if time.monotonic() < self._off_until:
            raise LoopReadSkipped("the database failed recently")
        waiter = self._pending.get(job_id)
        if waiter is None:  # else a read of the same job is waiting to be sent: share it
            waiter = asyncio.get_running_loop().create_future()
            # Its failure is each waiter's to report; with none left (past the deadline)
            # it is taken here, so that asyncio does not log it as never retrieved.
            waiter.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._pending[job_id] = waiter
            self._start_batch()
        # Not `wait_for`: cancelling a psycopg query waits up to 10 s for the server to
        # confirm it, which a black-holed server never does. The batch is left to end alone.
        done, _ = await asyncio.wait({waiter}, timeout=self.deadline_s)
        if not done:
            self._off_until = time.monotonic() + self.pause_after_failure_s
            raise DatabaseUnavailable.no_answer_within(self.deadline_s)
        try:
            return waiter.result()
        except (psycopg.Error, OSError) as exc:
            self._off_until = time.monotonic() + self.pause_after_failure_s
            # The others were opened to the same server and most likely broke with it (a
            # restart, a failover): reconnect afresh rather than fail once per connection.
            await self._close_idle()
            raise LoopReadSkipped(str(exc)) from exc

    # Batches. Reads that arrive while every connection has a query in flight wait, and go
    # out together as one `id = ANY(...)` query when a connection comes free: one round trip
    # and one statement for the server instead of one per poll, which on a busy API (and
    # its database on the same cores) was most of a poll's cost. A read only ever joins a
    # query not yet sent, so it sees every commit made before it was asked. Written here:
    # a DataLoader (aiodataloader) batches one loop tick, not "while the connections are
    # busy", which is what bounds both the waiting and the number of queries.

    def _start_batch(self) -> None:
        """Starts a batch task for what is pending, if none is about to take it and a
        connection is free."""
        if self._starting or not self._pending or self._running >= self._connections:
            return
        self._starting = True
        self._running += 1
        task = asyncio.ensure_future(self._send_batches())
        self._in_flight.add(task)
        task.add_done_callback(self._batch_ended)

    def _batch_ended(self, task: asyncio.Task[None]) -> None:
        # Here, not in the task's own `finally`: a task cancelled before it ran (the reader
        # closed) never runs its body, and would leave its slot and the flag taken for good.
        self._in_flight.discard(task)
        self._running -= 1
        if task.cancelled():
            self._starting = False  # at worst one task too many starts, and finds nothing
        elif task.exception() is not None:  # taken, so asyncio does not log it as lost
            log.error("a batch of job reads failed", exc_info=task.exception())
        self._start_batch()

    async def _send_batches(self) -> None:
        self._starting = False  # from here on, what is pending is this task's to take
        while self._pending:
            batch = dict(itertools.islice(self._pending.items(), self._max_batch))
            for job_id in batch:
                del self._pending[job_id]
            self._start_batch()  # more than one batch waits: another connection's
            await self._read_batch(batch)

    async def _read_batch(self, batch: dict[str, asyncio.Future[Job | None]]) -> None:
        conn = None
        try:
            conn = self._idle.pop() if self._idle else await self._connect()
            cursor = await conn.execute(self._batch_sql, {"ids": list(batch)})
            rows = {row["id"]: row for row in await cursor.fetchall()}
        except BaseException as exc:
            if conn is not None:
                await conn.close()  # in an unknown state: never reused
            for waiter in batch.values():
                if waiter.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    waiter.cancel()
                else:
                    waiter.set_exception(exc)
            if not isinstance(exc, Exception):
                raise  # cancelled (the reader closes) or exiting: not a read's failure
            return
        self._idle.append(conn)
        for job_id, waiter in batch.items():
            if waiter.done():
                continue
            row = rows.get(job_id)
            try:
                job = Job.from_mapping(row) if row is not None else None
            except Exception as exc:  # a row this version cannot read fails its own read only
                waiter.set_exception(exc)
            else:
                waiter.set_result(job)

    async def _connect(self) -> psycopg.AsyncConnection[dict[str, Any]]:
        conn = await psycopg.AsyncConnection.connect(
            *self._args, autocommit=True, row_factory=dict_row, **self._params
        )
        if self._set_timeout is not None:
            try:
                await conn.execute(self._set_timeout)
            except BaseException:
                await conn.close()  # not pooled yet: nobody else would close it
                raise
        return conn

    async def _close_idle(self) -> None:
        while self._idle:
            await self._idle.pop().close()

    async def aclose(self) -> None:
        for task in list(self._in_flight):
            task.cancel()
        for waiter in self._pending.values():
            waiter.cancel()
        self._pending.clear()
        await self._close_idle()
