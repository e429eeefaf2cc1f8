"""The event loop's point reads of SQLite (`jobs.loopread.LoopReader`): the same job as the
store reads, the latest commit every time, and a locked database refused at once."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, make_url

from reelforge.jobs import JobStore, open_engine
from reelforge.jobs.loopread import LoopReader
from reelforge.jobs.queue import QueuePositions
from reelforge.jobs.schema import migrate
from tests.conftest import make_result, make_spec

MODEL = "klingai/v2-master-text-to-video"


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The conftest's `store`, on SQLite only: the reader is SQLite's."""
    return sqlite_url


@pytest.fixture
def reader(store: JobStore) -> Iterator[LoopReader]:
    reader = LoopReader.for_engine(store.engine)
    assert reader is not None
    yield reader
    reader.close()


def test_reads_the_job_the_store_reads(store: JobStore, reader: LoopReader) -> None:
    job = store.create_job(make_spec(), priority=3)
    assert reader.get_job(job.id) == store.get_job(job.id)
    assert reader.get_job("no-such-job") is None
    assert reader.get_job("") is None and reader.get_job("a\x00b") is None


def test_every_read_sees_the_latest_commit(store: JobStore, reader: LoopReader) -> None:
    job = store.create_job(make_spec())
    assert reader.get_job(job.id).status.value == "queued"  # type: ignore[union-attr]
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None
    assert reader.get_job(job.id).status.value == "running"  # type: ignore[union-attr]
    assert store.complete_job(lease, make_result("loop"))
    finished = reader.get_job(job.id)
    assert finished == store.get_job(job.id) and finished is not None
    assert finished.status.value == "succeeded" and finished.result is not None
    store.delete_job(job.id)
    assert reader.get_job(job.id) is None


def test_a_locked_database_is_an_error_not_a_wait(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    migrate(engine)
    engine.dispose()  # in WAL mode an exclusive lock needs every other connection closed
    holder = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
    reader = LoopReader(engine)
    try:
        # Exclusive locking mode keeps the write lock after the write, shutting readers out
        # (another process in that mode, or a recovery, does the same).
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("DELETE FROM jobs")
        holder.execute("COMMIT")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            reader.get_job("any")
    finally:
        holder.close()
    assert reader.get_job("any") is None  # the lock gone, it reads again
    reader.close()


def test_only_sqlite_files_get_a_reader(postgres_url: str) -> None:
    assert LoopReader.for_engine(create_engine("sqlite://")) is None
    assert LoopReader.for_engine(open_engine(postgres_url)) is None


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
