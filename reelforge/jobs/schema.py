"""The database schema (SQLAlchemy Core) and its migrations: one code path, SQLite and PostgreSQL.

The tables below are always the current schema. A fresh database is created from them and
stamped with every version; a database from an older release runs only the steps in
`MIGRATIONS` it lacks, each recorded in `schema_migrations`.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

__all__ = [
    "BASELINE_VERSION",
    "JOB_ID_MAX_CHARS",
    "MIGRATIONS",
    "jobs",
    "metadata",
    "migrate",
    "schema_migrations",
    "workers",
]

metadata = MetaData()

JOB_ID_MAX_CHARS = 64

jobs = Table(
    "jobs",
    metadata,
    # seq orders the queue (ties in priority go to the oldest); id is the public handle.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(JOB_ID_MAX_CHARS), nullable=False, unique=True),
    Column("model", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("spec", Text, nullable=False),
    Column("tenant", String(128), nullable=False, server_default=""),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False),
    Column("lease_token", String(64)),
    Column("lease_expires_at", Float),
    Column("worker_id", String(128)),
    Column("progress", Float, nullable=False, server_default="0"),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("error_name", String(64)),
    Column("error_message", Text),
    Column("result", Text),
    # Epoch seconds from the database clock, so every host agrees on lease expiry.
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("updated_at", Float, nullable=False),
    # The claim scans queued jobs in priority then age order.
    Index("ix_jobs_claim", "status", "priority", "seq"),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("models", Text, nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
)

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
)


BASELINE_VERSION = 1
"""A fresh database gets the current tables in one step and is stamped with every version."""

MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = []
"""Steps that bring a database made by an older release up to date, versions 2, 3, ...:
append ALTER-style functions here when a table above changes; never edit an old step."""


def migrate(engine: Engine) -> int:
    """Create or update the schema; return how many versions were applied. Safe to race."""
    # SQLite: take the write lock before reading the version table (see jobs.db).
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            # One migrator at a time across every process sharing this database.
            conn.execute(text("SELECT pg_advisory_xact_lock(724201)"))
        schema_migrations.create(conn, checkfirst=True)
        done = {row.version for row in conn.execute(schema_migrations.select())}
        if not done:
            metadata.create_all(conn)
            stamped = [{"version": BASELINE_VERSION, "name": "baseline"}] + [
                {"version": v, "name": name}
                for v, (name, _) in enumerate(MIGRATIONS, start=BASELINE_VERSION + 1)
            ]
            conn.execute(schema_migrations.insert(), stamped)
            return len(stamped)
        applied = 0
        for version, (name, step) in enumerate(MIGRATIONS, start=BASELINE_VERSION + 1):
            if version not in done:
                step(conn)
                conn.execute(schema_migrations.insert().values(version=version, name=name))
                applied += 1
        return applied
