"""The event loop's point reads (`jobs.loopread`), on SQLite and PostgreSQL: the same job as
the store reads, the latest commit every time, a locked SQLite refused at once, and a
PostgreSQL that refuses or black-holes answered within the deadline."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, make_url

from reelforge.errors import DatabaseUnavailable
from reelforge.jobs import JobStore, open_engine
from reelforge.jobs.loopread import (
    LoopReader,
    LoopReadSkipped,
    PostgresLoopReader,
    SqliteLoopReader,
    loop_reader_for,
)
from reelforge.jobs.queue import QueuePositions
from reelforge.jobs.schema import migrate
from reelforge.service.eta import EtaEstimator
from tests.conftest import make_result, make_spec
from tests.faults import FaultProxy

MODEL = "klingai/v2-master-text-to-video"
TIMEOUTS = {"deadline_s": 1.0, "connect_timeout_s": 2.0, "statement_timeout_s": 1.0}


def reader_for(store: JobStore, **timeouts: float) -> LoopReader:
    reader = loop_reader_for(store.engine, **{**TIMEOUTS, **timeouts})
    assert reader is not None
    return reader


def test_reads_the_latest_commit_as_the_store_does(store: JobStore) -> None:
    async def scenario() -> None:
        reader = reader_for(store)
        try:
            job = store.create_job(make_spec(), priority=3)
            assert await reader.get_job(job.id) == store.get_job(job.id)
            assert await reader.get_job("no-such-job") is None
            assert await reader.get_job("") is None and await reader.get_job("a\x00b") is None
            lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
            assert lease is not None
            running = await reader.get_job(job.id)
            assert running is not None and running.status.value == "running"
            assert store.complete_job(lease, make_result("loop"))
            finished = await reader.get_job(job.id)
            assert finished == store.get_job(job.id) and finished is not None
            assert finished.status.value == "succeeded" and finished.result is not None
            store.delete_job(job.id)
            assert await reader.get_job(job.id) is None
        finally:
            await reader.aclose()

    asyncio.run(scenario())


def test_a_locked_sqlite_database_is_skipped_not_waited_for(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    migrate(engine)
    engine.dispose()  # in WAL mode an exclusive lock needs every other connection closed
    holder = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
    reader = SqliteLoopReader(engine)
    try:
        # Exclusive locking mode keeps the write lock after the write, shutting readers out
        # (another process in that mode, or a recovery, does the same).
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("DELETE FROM jobs")
        holder.execute("COMMIT")
        with pytest.raises(LoopReadSkipped, match="locked"):
            reader.read("any")
    finally:
        holder.close()
    assert reader.read("any") is None  # the lock gone, it reads again
    asyncio.run(reader.aclose())


def test_which_databases_get_a_reader(postgres_url: str, sqlite_url: str) -> None:
    assert loop_reader_for(create_engine("sqlite://"), **TIMEOUTS) is None  # in-memory
    assert isinstance(loop_reader_for(open_engine(sqlite_url), **TIMEOUTS), SqliteLoopReader)
    assert isinstance(loop_reader_for(open_engine(postgres_url), **TIMEOUTS), PostgresLoopReader)


@pytest.fixture
def proxied_store(postgres_url: str) -> Iterator[tuple[JobStore, FaultProxy]]:
    engine = open_engine(postgres_url)
    migrate(engine)
    with FaultProxy(make_url(postgres_url).port or 5432) as proxy:
        proxied = open_engine(proxy.url_for(postgres_url))
        yield JobStore(proxied), proxy
        proxied.dispose()
    engine.dispose()


@pytest.mark.postgres
def test_a_refused_postgresql_is_skipped_at_once_then_left_alone(
    proxied_store: tuple[JobStore, FaultProxy],
) -> None:
    store, proxy = proxied_store
    job = store.create_job(make_spec())

    async def scenario() -> None:
        reader = reader_for(store)
        try:
            assert await reader.get_job(job.id) == store.get_job(job.id)
            proxy.refuse()  # drops the open connection too
            with pytest.raises(LoopReadSkipped):
                await reader.get_job(job.id)
            proxy.heal()
            # Off for a while after a failure: the database threads read, and report.
            with pytest.raises(LoopReadSkipped, match="failed recently"):
                await reader.get_job(job.id)
        finally:
            await reader.aclose()

    asyncio.run(scenario())


@pytest.mark.postgres
def test_a_black_holed_postgresql_is_unavailable_at_the_deadline(
    proxied_store: tuple[JobStore, FaultProxy],
) -> None:
    store, proxy = proxied_store
    job = store.create_job(make_spec())

    async def scenario() -> float:
        reader = reader_for(store, deadline_s=0.5)
        try:
            assert await reader.get_job(job.id) is not None  # a connection is open
            proxy.blackhole()
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable, match=r"within 0\.5 s"):
                await reader.get_job(job.id)
            return time.monotonic() - started
        finally:
            proxy.heal()
            await reader.aclose()

    # The answer comes at the deadline, not after psycopg's own wait for a cancellation
    # the black-holed server never confirms (up to 10 s).
    assert asyncio.run(scenario()) < 5.0


def test_cached_positions_answer_without_a_read_until_twice_their_age(
    store: JobStore,
) -> None:
    jobs = [store.create_job(make_spec()) for _ in range(3)]
    positions = QueuePositions(store, max_age_s=3600, exact_below=0)
    assert positions.position_if_cached(jobs[2]) == (False, None)  # nothing read yet
    positions.refresh()
    assert not positions.stale
    assert positions.position_if_cached(jobs[2]) == (True, 2)
    near_front = QueuePositions(store, max_age_s=3600, exact_below=10)
    near_front.refresh()
    assert near_front.position_if_cached(jobs[2]) == (False, None)  # exact: a read
    never_cached = QueuePositions(store, max_age_s=0, exact_below=0)
    never_cached.refresh()
    assert never_cached.stale and never_cached.position_if_cached(jobs[2]) == (False, None)
    now = [1000.0]
    aging = QueuePositions(store, max_age_s=1, exact_below=0, monotonic=lambda: now[0])
    aging.refresh()
    now[0] += 5  # past its age limit: still answered, and a refresh is due
    assert aging.stale and aging.position_if_cached(jobs[2]) == (True, 2)
    now[0] += 5  # ten age limits: too old to answer without a read
    assert aging.position_if_cached(jobs[2]) == (False, None)


def test_eta_figures_answer_stale_while_a_refresh_is_due(store: JobStore) -> None:
    now = [1000.0]
    eta = EtaEstimator(store, live_within_s=60, cache_s=5, monotonic=lambda: now[0])
    done = store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None and store.complete_job(lease, make_result("eta"))
    store.register_worker("w1", [MODEL], "host", 1)
    queued = store.create_job(make_spec())
    assert eta.estimate_if_cached(queued, 3) == (False, None)  # nothing cached yet
    assert eta.estimate_if_cached(store.get_job(done.id), None) == (True, 0.0)  # type: ignore[arg-type]
    assert eta.stale(MODEL)
    eta.refresh(MODEL)
    assert not eta.stale(MODEL)
    known, guess = eta.estimate_if_cached(queued, 3)
    assert known and guess == eta.estimate(queued, 3) and guess is not None
    now[0] += 6  # past the cache period: still answered, and a refresh is due
    assert eta.stale(MODEL) and eta.estimate_if_cached(queued, 3) == (True, guess)
    now[0] += 60  # ten periods: too old to answer without a read
    assert eta.estimate_if_cached(queued, 3) == (False, None)


@pytest.mark.postgres
def test_after_a_server_restart_every_pooled_connection_is_replaced(postgres_url: str) -> None:
    name = f"looptest_{secrets.token_hex(4)}"
    url = f"{postgres_url}&application_name={name}"
    engine = open_engine(url)
    migrate(engine)
    store = JobStore(engine)
    job = store.create_job(make_spec())
    # One job per query: two reads at once take a connection each.
    reader = PostgresLoopReader(engine, **TIMEOUTS, max_batch=1, pause_after_failure_s=0)

    async def scenario() -> None:
        try:
            # Two reads at once: two connections, both pooled afterwards.
            other = store.create_job(make_spec())
            await asyncio.gather(reader.get_job(job.id), reader.get_job(other.id))
            with engine.connect() as conn:  # what a restart does to every connection
                killed = conn.exec_driver_sql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = %(name)s AND pid <> pg_backend_pid()",
                    {"name": name},
                ).scalar_one()
            assert killed >= 2
            with pytest.raises(LoopReadSkipped):
                await reader.get_job(job.id)
            # The other pooled connection went with the first: the next read connects anew.
            assert await reader.get_job(job.id) == store.get_job(job.id)
        finally:
            await reader.aclose()

    asyncio.run(scenario())
    engine.dispose()


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[JobStore]:
    engine = open_engine(postgres_url)
    migrate(engine)
    yield JobStore(engine)
    engine.dispose()


@pytest.mark.postgres
def test_reads_asked_together_go_out_as_one_query_each_answered_with_its_own_job(
    postgres_store: JobStore,
) -> None:
    store, engine = postgres_store, postgres_store.engine
    jobs = [store.create_job(make_spec()) for _ in range(20)]
    reader = PostgresLoopReader(engine, **TIMEOUTS, connections=2)
    batches: list[int] = []
    send = reader._read_batch

    async def counted(batch: dict[str, asyncio.Future[object]]) -> None:
        batches.append(len(batch))
        await send(batch)  # type: ignore[arg-type]

    reader._read_batch = counted  # type: ignore[method-assign,assignment]
    asked = [job.id for job in jobs] + ["no-such-job", jobs[0].id]

    async def scenario() -> tuple[list[object], object]:
        try:
            together = list(await asyncio.gather(*(reader.get_job(job_id) for job_id in asked)))
            store.request_cancel(jobs[1].id)
            # Asked after that query went out: a query of its own, which sees the cancel.
            return together, await reader.get_job(jobs[1].id)
        finally:
            await reader.aclose()

    answers, later = asyncio.run(scenario())
    assert answers[0] == store.get_job(jobs[0].id)
    assert answers[2:20] == [store.get_job(job.id) for job in jobs[2:]]
    assert answers[20] is None and answers[21] == answers[0]
    # Asked in one turn of the loop: one query, for 21 distinct ids (the repeat shares).
    assert batches == [21, 1]
    assert later == store.get_job(jobs[1].id)
    assert later is not None and later.status.value == "canceled"  # type: ignore[attr-defined]
    assert answers[1] is not None and answers[1].status.value == "queued"  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_a_row_it_cannot_read_fails_its_own_read_only_and_a_closed_reader_reads_again(
    postgres_store: JobStore,
) -> None:
    store, engine = postgres_store, postgres_store.engine
    good, bad, other = (store.create_job(make_spec()) for _ in range(3))
    with engine.begin() as conn:  # what an older or newer version might have written
        conn.exec_driver_sql("UPDATE jobs SET spec = '{\"broken\": 1}' WHERE id = %s", (bad.id,))
    reader = PostgresLoopReader(engine, **TIMEOUTS)

    async def together() -> list[object]:
        reads = (reader.get_job(job_id) for job_id in (good.id, bad.id, other.id))
        return list(await asyncio.gather(*reads, return_exceptions=True))

    async def closed_while_a_batch_waits() -> None:
        read = asyncio.ensure_future(reader.get_job(good.id))
        await asyncio.sleep(0)  # the read is pending and its batch task not yet run
        await reader.aclose()
        with pytest.raises(asyncio.CancelledError):
            await read

    async def again() -> object:
        try:
            return await reader.get_job(other.id)
        finally:
            await reader.aclose()

    answers = asyncio.run(together())
    assert answers[0] == store.get_job(good.id) and answers[2] == store.get_job(other.id)
    assert isinstance(answers[1], ValueError)  # pydantic's ValidationError, for that job alone
    asyncio.run(closed_while_a_batch_waits())
    assert asyncio.run(again()) == store.get_job(other.id)  # not a 503 at the deadline
