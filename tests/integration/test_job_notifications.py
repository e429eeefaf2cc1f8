"""Job notifications on real PostgreSQL: what a create or requeue announces, to whom, only on
commit; a worker's LISTEN connection waking it, and coming back after the server killed it.
And expired-lease recovery by its periodic task alone (both databases), in a worker's thread
and in an API process's background loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql
from sqlalchemy import text

from reelforge.api.app import build_context, create_app
from reelforge.engines import Registry
from reelforge.jobs import JobStatus, JobStore, open_engine
from reelforge.jobs.db import connect_unpooled
from reelforge.jobs.notify import CHANNEL_SQL, JobNotifications
from reelforge.jobs.recovery import LeaseRecovery
from reelforge.jobs.schema import migrate
from reelforge.jobs.store import ExternalIdTaken
from reelforge.settings import Settings
from reelforge.storage import LocalStorage
from tests.conftest import POSTGRES_URL, make_spec, wait_for

MODEL = "klingai/v2-master-text-to-video"
OTHER = "other/model"
DEADLINE_S = 10.0


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[JobStore]:
    engine = open_engine(postgres_url)
    migrate(engine)
    yield JobStore(engine, max_attempts=2)
    engine.dispose()


@pytest.fixture
def raw_listener(pg_store: JobStore) -> Iterator[psycopg.Connection[Any]]:
    """A plain LISTEN on the store's channel, to see every notification it gets."""
    connection = connect_unpooled(pg_store.engine, 5)
    row = connection.execute(sql.SQL(f"SELECT {CHANNEL_SQL}")).fetchone()
    assert row is not None
    connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(row[0])))
    yield connection
    connection.close()


def payloads_until(connection: psycopg.Connection[Any], last: str) -> list[str]:
    """Every notification's payload up to and including the first that is `last`."""
    seen: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        for notification in connection.notifies(timeout=0.2):
            seen.append(notification.payload)
            if notification.payload == last:
                return seen
    pytest.fail(f"no notification {last!r} within {DEADLINE_S:g} s; saw {seen}")


@pytest.mark.postgres
def test_queued_jobs_are_announced_on_commit_only(
    pg_store: JobStore, raw_listener: psycopg.Connection[Any]
) -> None:
    first = pg_store.create_job(make_spec(), external_id="x")
    with pytest.raises(ExternalIdTaken):  # rolled back: never announced
        pg_store.create_job(make_spec(model="rolled/back"), external_id="x")
    retried = pg_store.create_job(make_spec(model="retried/model"))
    lease = pg_store.claim_next_job("w1", ["retried/model"], lease_seconds=30)
    assert lease is not None and lease.job_id == retried.id
    assert pg_store.fail_job(lease, name="flaky", message="m", retryable=True) is JobStatus.QUEUED
    lost = pg_store.claim_next_job("w1", ["retried/model"], lease_seconds=-1)
    assert lost is not None  # second attempt of two: recovery fails it, no announcement
    pg_store.create_job(make_spec(model="lost/model"))
    lost_once = pg_store.claim_next_job("w1", ["lost/model"], lease_seconds=-1)
    assert lost_once is not None
    assert pg_store.requeue_expired() == 2  # one failed, one requeued (announced)
    assert pg_store.delete_job(first.id) is not None  # a queued job gone: nothing to claim
    pg_store.create_job(make_spec(model="last/model"))
    assert payloads_until(raw_listener, "last/model") == [
        MODEL,
        "retried/model",  # created
        "retried/model",  # requeued by fail_job
        "lost/model",  # created
        "lost/model",  # requeued by requeue_expired
        "last/model",
    ]


@pytest.mark.postgres
def test_another_schema_on_the_same_database_is_not_woken(
    pg_store: JobStore, raw_listener: psycopg.Connection[Any], postgres_url: str
) -> None:
    schema = f"{pg_store.engine.url.query['options'].split('=')[-1]}_other"
    admin = open_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    other = open_engine(postgres_url.replace(schema.removesuffix("_other"), schema))
    try:
        migrate(other)
        JobStore(other).create_job(make_spec(model="elsewhere/model"))
        pg_store.create_job(make_spec())
        assert payloads_until(raw_listener, MODEL) == [MODEL]
    finally:
        other.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_a_listener_wakes_for_its_models_and_comes_back_after_being_killed(
    pg_store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    notifications = JobNotifications(pg_store.engine, [MODEL])
    notifications.start()
    try:
        first_pid = notifications.backend_pid
        assert first_pid is not None
        pg_store.create_job(make_spec())
        wait_for(notifications.wake.is_set, DEADLINE_S, "the wake-up for a job of its model")
        notifications.wake.clear()

        caplog.set_level(logging.INFO, logger="reelforge.jobs.notify")
        with pg_store.engine.connect() as conn:
            assert conn.execute(text(f"SELECT pg_terminate_backend({first_pid})")).scalar()
        wait_for(
            lambda: notifications.backend_pid not in (None, first_pid),
            DEADLINE_S,
            "a new LISTEN connection",
        )
        # It wakes once on reconnecting (jobs may have come while it was down) ...
        wait_for(notifications.wake.is_set, DEADLINE_S, "the wake-up after reconnecting")
        notifications.wake.clear()
        # ... and hears new jobs again.
        pg_store.create_job(make_spec())
        wait_for(notifications.wake.is_set, DEADLINE_S, "a wake-up on the new connection")
    finally:
        notifications.stop()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]  # one line per outage
    assert "cannot listen for new jobs" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    assert not notifications.listening


@pytest.mark.postgres
def test_a_listener_ignores_jobs_of_models_it_does_not_serve(
    pg_store: JobStore, raw_listener: psycopg.Connection[Any]
) -> None:
    notifications = JobNotifications(pg_store.engine, [MODEL])
    notifications.start()
    try:
        pg_store.create_job(make_spec(model=OTHER))
        # The raw listener heard it; the worker's, on the same server, has had as long.
        assert payloads_until(raw_listener, OTHER) == [OTHER]
        pg_store.create_job(make_spec())
        assert payloads_until(raw_listener, MODEL) == [MODEL]
        wait_for(notifications.wake.is_set, DEADLINE_S, "the wake-up for its own model")
    finally:
        notifications.stop()


def expired_job(store: JobStore) -> str:
    job = store.create_job(make_spec())
    lease = store.claim_next_job("lost-worker", [MODEL], lease_seconds=-1)  # it died
    assert lease is not None and lease.job_id == job.id
    return job.id


def status_of(store: JobStore, job_id: str) -> JobStatus:
    job = store.get_job(job_id)
    assert job is not None
    return job.status


def test_a_worker_s_recovery_thread_alone_requeues_an_expired_lease(store: JobStore) -> None:
    job_id = expired_job(store)
    recovery = LeaseRecovery(store, interval_s=0.05)
    recovery.start_thread()
    try:
        wait_for(
            lambda: status_of(store, job_id) is JobStatus.QUEUED,
            DEADLINE_S,
            "the job to be requeued",
        )
    finally:
        recovery.stop_thread()
    assert [e.type.value for e in store.events_after(job_id)][-1] == "requeued"


def test_an_api_process_alone_requeues_an_expired_lease(store: JobStore, tmp_path: Path) -> None:
    job_id = expired_job(store)
    settings = Settings(data_dir=tmp_path, lease_seconds=0.2, workers=0)
    ctx = build_context(settings, store, LocalStorage(tmp_path / "files"), Registry.load())
    try:
        # The lifespan runs the context's background loops, recovery among them.
        with TestClient(create_app(ctx), base_url="http://127.0.0.1"):
            wait_for(
                lambda: status_of(store, job_id) is JobStatus.QUEUED,
                DEADLINE_S,
                "the API to requeue it",
            )
    finally:
        ctx.close()
