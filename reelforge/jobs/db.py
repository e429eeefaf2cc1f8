"""Opening the job database: one SQLAlchemy engine per process, SQLite or PostgreSQL.

SQLite is tuned for several processes sharing one file: WAL (readers never block the writer),
a busy timeout instead of instant "database is locked" errors, and transactions that begin
in the driver's deferred mode unless a connection asks for `sqlite_begin="IMMEDIATE"`.

PostgreSQL is tuned so that no call waits forever on a database that is down, unreachable or
frozen: a connect timeout; TCP keepalives and `tcp_user_timeout`, so the kernel notices a
peer that vanished; a server-side `statement_timeout`; a client-side reply deadline just
above it (`reelforge.jobs.deadline`) for a server too stuck to enforce its own; and a
bounded wait for a pooled connection. A call on a database that stopped answering therefore
fails within `connect_timeout_s` on a new connection and within `statement_timeout_s + 1`
on a pooled one. Pooled connections are not pinged before use (a round trip per request):
one that died while pooled fails its first statement, which discards the pool's older
connections, and the next call connects afresh. Reads run in autocommit (`reading`), so a
read is one round trip.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    create_engine,
    event,
    func,
    literal_column,
)
from sqlalchemy.engine import URL, make_url

from reelforge.jobs.deadline import ReplyWatch, WatchedConnection

__all__ = ["connect_unpooled", "db_now", "open_engine", "reading", "shown_url"]

_REPLY_GRACE_S = 1.0
"""How much longer than `statement_timeout` the client waits for an answer: long enough for
the server to report its own cancellation, which leaves the connection reusable."""

_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
"""An idle pooled connection to a vanished host is noticed within about a minute."""

_POOL_OVERFLOW = 10


def open_engine(
    url: str,
    *,
    connect_timeout_s: float = 5.0,
    statement_timeout_s: float = 5.0,
    pool_timeout_s: float = 10.0,
    sqlite_busy_timeout_s: float = 30.0,
    pool_size: int = 10,
) -> Engine:
    """Create the engine for `url`, creating a SQLite file's folder if needed.

    `pool_size`: the connections kept open, sized by the caller to the threads that use
    them, so that a busy process does not open and close connections per request (10 more
    may open in a burst).

    PostgreSQL: `connect_timeout_s` bounds opening a connection (libpq counts whole seconds,
    at least 2); `statement_timeout_s` bounds each statement on the server, and the client
    closes a connection that has not answered one second after that; `pool_timeout_s`
    bounds waiting for a free pooled connection. libpq parameters given in the URL's query
    (e.g. `?connect_timeout=20`) win over these.

    SQLite: `sqlite_busy_timeout_s` is how long a writer waits for another process's write
    lock before "database is locked". The job store's transactions take milliseconds, so a
    long wait means something is stuck; an API process may prefer a few seconds.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": sqlite_busy_timeout_s},
            # As many kept connections as threads use them: an overflow connection is
            # closed on return, and opening one costs its PRAGMAs on the next request.
            pool_size=pool_size,
            max_overflow=_POOL_OVERFLOW,
        )
        _tune_sqlite(engine, busy_timeout_ms=round(sqlite_busy_timeout_s * 1000))
        return engine
    if parsed.get_backend_name() != "postgresql":
        return create_engine(
            url,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=_POOL_OVERFLOW,
            pool_timeout=pool_timeout_s,
        )
    if parsed.drivername == "postgresql":
        # A bare postgresql:// URL means psycopg 3, the driver reelforge installs.
        parsed = parsed.set(drivername="postgresql+psycopg")
    reply_timeout_s = statement_timeout_s + _REPLY_GRACE_S
    engine = create_engine(
        parsed,
        connect_args=_libpq_params(parsed, connect_timeout_s, reply_timeout_s),
        # No ping before each use (a round trip per request): a connection that died while
        # pooled fails its first statement, SQLAlchemy then discards every pooled connection
        # of that age, and the next request connects afresh. One request sees the outage.
        pool_pre_ping=False,
        pool_size=pool_size,
        max_overflow=_POOL_OVERFLOW,
        pool_timeout=pool_timeout_s,
    )
    _tune_postgresql(engine, parsed, statement_timeout_s, reply_timeout_s)
    return engine


def reading(engine: Engine) -> Connection:
    """A connection for reads that need no transaction of their own: each statement runs
    in autocommit, so a read is one round trip on PostgreSQL (no BEGIN before it, no
    ROLLBACK after) and one statement on SQLite (the BEGIN was half a poll's database time)."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn.execution_options(sqlite_autocommit=True)


_UNPOOLED_ACK_TIMEOUT_S = 30.0
"""How long a keepalive probe of an unpooled connection may stay unacknowledged."""


def connect_unpooled(
    engine: Engine, connect_timeout_s: float, application_name: str = "reelforge"
) -> psycopg.Connection[Any]:
    """A plain autocommit psycopg connection to `engine`'s PostgreSQL database, outside its
    pool, for a session that waits indefinitely (a LISTEN).

    It has the URL's parameters (search_path included), the connect timeout and keepalives,
    but neither the reply watch nor a statement timeout: waiting for a notification is a
    reply that may take hours, which the watch would cut after a few seconds. Keepalives
    notice a peer that vanished."""
    cargs, params = connect_arguments(engine, connect_timeout_s, _UNPOOLED_ACK_TIMEOUT_S)
    params.setdefault("application_name", application_name)
    return psycopg.connect(*cargs, autocommit=True, **params)


def connect_arguments(
    engine: Engine, connect_timeout_s: float, ack_timeout_s: float
) -> tuple[list[Any], dict[str, Any]]:
    """psycopg's `connect` arguments for `engine`'s PostgreSQL database, outside its pool:
    the URL's parameters (search_path included), the connect timeout, keepalives, and
    `ack_timeout_s` for sent data a dead peer never acknowledges."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    return list(cargs), {**_libpq_params(engine.url, connect_timeout_s, ack_timeout_s), **cparams}


def shown_url(url: str | URL) -> str:
    """`url` as it may appear in logs and error messages: no password, no query parameters
    (libpq accepts `?password=` there too)."""
    try:
        parsed = make_url(url)
    except Exception:  # not even a URL: say nothing of what it contained
        return "(unparsable database URL)"
    return parsed.set(query={}).render_as_string(hide_password=True)


def _libpq_params(url: URL, connect_timeout_s: float, reply_timeout_s: float) -> dict[str, Any]:
    params: dict[str, Any] = {
        # psycopg waits whole seconds, and raises anything below 2 to 2, as libpq does.
        "connect_timeout": max(2, math.ceil(connect_timeout_s)),
        **_KEEPALIVES,
    }
    if psycopg.pq.version() >= 120000:  # libpq 12 added it; unknown options fail to connect
        # Sent data unacknowledged this long (a dead peer, a partition): drop the connection.
        params["tcp_user_timeout"] = round(reply_timeout_s * 1000)
    return {name: value for name, value in params.items() if name not in url.query}


def _tune_postgresql(
    engine: Engine, url: URL, statement_timeout_s: float, reply_timeout_s: float
) -> None:
    # A URL may already carry `options=-c ...` (search_path, say): setting the timeout with
    # SET after connecting leaves those alone, and an explicit statement_timeout there wins.
    set_timeout = "statement_timeout" not in str(url.query.get("options", ""))
    statement_timeout_ms = round(statement_timeout_s * 1000)
    watch = ReplyWatch(reply_timeout_s) if url.get_driver_name() == "psycopg" else None

    if watch is not None:

        @event.listens_for(engine, "do_connect")
        def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            connection = WatchedConnection.connect(*cargs, **cparams)
            connection.reply_watch = watch
            return connection

    if set_timeout:

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"SET statement_timeout = {statement_timeout_ms}")
            cursor.close()
            # Outside autocommit the SET opened a transaction; a rollback would undo it.
            dbapi_connection.commit()


def _tune_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("sqlite_autocommit"):
            return  # `reading`: pysqlite (isolation_level None) runs each statement alone
        conn.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', '')}".strip())


def db_now(engine: Engine) -> ColumnElement[float]:
    """The database's clock as epoch seconds, so leases do not depend on hosts' clocks."""
    if engine.dialect.name == "sqlite":
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)
    return func.extract("epoch", func.clock_timestamp()).cast(Float)


def upsert_insert(dialect_name: str) -> Any:
    """The dialect's `insert()`, which has `on_conflict_do_update` (an upsert); both spell it
    alike. `Any`: their Insert types differ."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert
