"""Opening the job database: one SQLAlchemy engine per process, SQLite or PostgreSQL.

SQLite is tuned for several processes sharing one file: WAL (readers never block the writer),
a busy timeout instead of instant "database is locked" errors, and transactions that begin
in the driver's deferred mode unless a connection asks for `sqlite_begin="IMMEDIATE"`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Engine, Float, create_engine, event, func, literal_column
from sqlalchemy.engine import make_url

__all__ = ["db_now", "open_engine"]

_SQLITE_BUSY_TIMEOUT_MS = 30_000


def open_engine(url: str) -> Engine:
    """Create the engine for `url`, creating a SQLite file's folder if needed."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _tune_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # A bare postgresql:// URL means psycopg 3, the driver reelforge installs.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


def db_now(engine: Engine) -> ColumnElement[float]:
    """The database's clock as epoch seconds, so leases do not depend on hosts' clocks."""
    if engine.dialect.name == "sqlite":
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)
    return func.extract("epoch", func.clock_timestamp()).cast(Float)
