"""The database schema (SQLAlchemy Core) and its migrations (alembic): one code path, SQLite
and PostgreSQL.

The tables below are always the current schema, the one the queries use. The history lives in
`reelforge/jobs/migrations/versions/`, one alembic revision per change: a fresh database runs
them all, an older one only those it lacks. A change to a table here needs a new revision
there (`tests/integration/test_job_store.py` compares the two).
"""

from __future__ import annotations

import logging

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    BigInteger,
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
    inspect,
    text,
)

__all__ = [
    "EXTERNAL_ID_MAX_CHARS",
    "GENERATION_TOTAL_SHARDS",
    "JOB_ID_MAX_CHARS",
    "api_keys",
    "audit_log",
    "generation_totals",
    "idempotency_keys",
    "job_events",
    "jobs",
    "metadata",
    "migrate",
    "rate_windows",
    "tenant_claims",
    "webhook_attempts",
    "webhook_deliveries",
    "workers",
]

metadata = MetaData()

JOB_ID_MAX_CHARS = 64
EXTERNAL_ID_MAX_CHARS = 255

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
    # The engine's denoising step of the current run and how many it takes (revision
    # 0011), for "step k of n"; NULL before the first step is reported.
    Column("step", Integer),
    Column("steps", Integer),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("error_name", String(64)),
    Column("error_message", Text),
    Column("result", Text),
    # Epoch seconds from the database clock, so every host agrees on lease expiry.
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("updated_at", Float, nullable=False),
    # Which dialect created the job: webhooks and event streams render it in that format.
    Column("dialect", String(32), nullable=False, server_default="aimlapi"),
    # The creator's webhook subscription: its URL and the events it wants (a JSON list).
    Column("webhook_url", Text),
    Column("webhook_events", Text),
    # When the retention sweeper removes the job and its files; None: kept until deleted.
    Column("expires_at", Float),
    # The client's own name for the job (Kling's `external_task_id`): unique per tenant,
    # and the job can be read by it.
    Column("external_id", String(EXTERNAL_ID_MAX_CHARS)),
    # The clip's length (at create) and the engine's time (once it succeeded): what quotas
    # and usage sum (revision 0008).
    Column("video_seconds", Float, nullable=False, server_default="0"),
    Column("engine_seconds", Float),
    # A tenant's list, newest first.
    Index("ix_jobs_tenant_seq", "tenant", "seq"),
    Index("ix_jobs_expires_at", "expires_at"),
    Index("ix_jobs_tenant_external_id", "tenant", "external_id", unique=True),
    # A tenant's jobs of a day: daily quotas and usage.
    Index("ix_jobs_tenant_created", "tenant", "created_at"),
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
    # What the worker runs on (`cuda:0`, `cpu`) and is doing, for `/healthz`.
    Column("device", String(64), nullable=False, server_default=""),
    Column("state", String(16), nullable=False, server_default="idle"),
    Column("current_job_id", String(JOB_ID_MAX_CHARS)),
    # The GPU memory its process holds, from its heartbeat; NULL on a CPU (revision 0010).
    Column("gpu_memory_bytes", BigInteger),
)

tenant_claims = Table(
    "tenant_claims",
    metadata,
    # When each tenant last had a job claimed: the fair-share claim serves, among tenants
    # with as many running jobs, the one served longest ago (revision 0006).
    Column("tenant", String(128), primary_key=True),
    Column("last_claimed_at", Float, nullable=False),
)

# The claim takes queued jobs by priority (highest first), then age: an index in exactly that
# order makes it one index read (a mixed-direction ORDER BY on a plain index sorts the queue).
Index("ix_jobs_claim", jobs.c.status, jobs.c.priority.desc(), jobs.c.seq)
# The fair-share claim reads the head of each waiting tenant's queue: one index read each.
Index("ix_jobs_tenant_claim", jobs.c.status, jobs.c.tenant, jobs.c.priority.desc(), jobs.c.seq)

job_events = Table(
    "job_events",
    metadata,
    # The outbox: one row per transition, written in the transition's own transaction.
    # Consumers (webhooks, event streams, metrics) read it; nothing else hooks into the store.
    # No foreign key: a `deleted` event outlives its job's row.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("job_id", String(JOB_ID_MAX_CHARS), nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("type", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("progress", Float, nullable=False),
    Column("data", Text),
    Column("created_at", Float, nullable=False),
    Index("ix_job_events_job", "job_id", "seq"),
    # A seq is never handed out twice, even after the newest rows are deleted (SQLite
    # reuses the largest rowid + 1 otherwise; revision 0004).
    sqlite_autoincrement=True,
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    # One create per (tenant, Idempotency-Key) for 24 h; `job_id` is reserved before the
    # job's input is staged, so a retry that arrives meanwhile finds the first attempt.
    Column("tenant", String(128), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("job_id", String(JOB_ID_MAX_CHARS), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_idempotency_keys_expires_at", "expires_at"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    # One message per (job event, subscription); `id` is its `webhook-id`, the same on every
    # retry. Written with the event; the dispatcher sends them, oldest first per job.
    Column("id", String(64), primary_key=True),
    Column("job_id", String(JOB_ID_MAX_CHARS), nullable=False),
    Column("event_seq", Integer, nullable=False),
    Column("event_type", String(16), nullable=False),
    Column("url", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    # The signed body, fixed at the first attempt so that every retry sends the same bytes.
    Column("body", Text),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("delivered_at", Float),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    Index("ix_webhook_deliveries_job", "job_id", "event_seq"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(64), nullable=False),
    Column("job_id", String(JOB_ID_MAX_CHARS), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_s", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_webhook_attempts_job", "job_id", "seq"),
)

api_keys = Table(
    "api_keys",
    metadata,
    # Managed keys (revision 0007; `reelforge.tenancy.keys`). The secret is never stored:
    # only its SHA-256, found by the public id the secret carries.
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("tenant", String(128), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("scopes", Text, nullable=False),  # a JSON list
    Column("max_concurrent", Integer),
    Column("max_queued", Integer),
    Column("daily_video_seconds", Float),
    Column("rate_per_minute", Integer),
    Column("created_at", Float, nullable=False),
    # Every change bumps it, so replicas notice a change with one cheap read.
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
    Index("ix_api_keys_updated_at", "updated_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    # Who created, rotated or revoked a key, or used the admin scope; when and from where.
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(32), nullable=False),
    Column("target", String(128)),
    Column("source", String(255), nullable=False),
    Column("detail", Text),
    Index("ix_audit_log_at", "at"),
)

rate_windows = Table(
    "rate_windows",
    metadata,
    # Requests per tenant per minute (epoch minute), counted by every replica alike.
    Column("tenant", String(128), primary_key=True),
    Column("minute", Integer, primary_key=True),
    Column("requests", Integer, nullable=False),
)

generation_totals = Table(
    "generation_totals",
    metadata,
    # Generations created and finished (`outcome`: created, succeeded, failed, canceled),
    # counted in the transition's transaction: totals a delete does not lower (revision
    # 0009). Spread over `GENERATION_TOTAL_SHARDS` rows each, summed when read.
    Column("model", String(200), primary_key=True),
    Column("dialect", String(32), primary_key=True),
    Column("outcome", String(16), primary_key=True),
    Column("shard", Integer, primary_key=True),
    Column("count", Integer, nullable=False),
)
GENERATION_TOTAL_SHARDS = 8

_FIRST_RELEASE_REVISION = "0001"


def migrate(engine: Engine) -> int:
    """Create or update the schema; return how many revisions were applied. Safe to race."""
    # SQLite: take the write lock before reading the version table (see jobs.db).
    with engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            # One migrator at a time across every process sharing this database.
            conn.execute(text("SELECT pg_advisory_xact_lock(724201)"))
        config = Config()
        config.set_main_option("script_location", "reelforge.jobs:migrations")
        config.attributes["connection"] = conn
        _adopt_first_release(conn, config)
        script = ScriptDirectory.from_config(config)
        current = MigrationContext.configure(conn).get_current_revision()
        pending = list(script.iterate_revisions("head", current))
        if pending:
            # Alembic reports each step at INFO; a server's start-up log stays quiet.
            logging.getLogger("alembic").setLevel(logging.WARNING)
            command.upgrade(config, "head")
        return len(pending)


def _adopt_first_release(conn: Connection, config: Config) -> None:
    """A database made by the first release has its own version table and no alembic one:
    record it as revision 0001 so that only the later revisions run."""
    tables = set(inspect(conn).get_table_names())
    if "schema_migrations" in tables and "alembic_version" not in tables:
        command.stamp(config, _FIRST_RELEASE_REVISION)
