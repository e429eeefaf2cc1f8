"""The retention sweep on real SQLite and real PostgreSQL with real local storage: what goes,
what stays, sweepers of several replicas at once, the pruning of deleted jobs' events, and
the sweeper loop under a failing store and a refusing database."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from reelforge.api.app import build_context
from reelforge.api.context import ApiContext
from reelforge.engines import Registry
from reelforge.errors import ServiceUnavailable
from reelforge.jobs import JobStatus, JobStore, open_engine
from reelforge.jobs.schema import job_events, migrate
from reelforge.service import RetentionSweeper
from reelforge.settings import Settings
from reelforge.storage import LocalStorage, keys
from tests.conftest import make_spec
from tests.faults import FaultProxy
from tests.integration.test_job_store import make_result

MODEL = "klingai/v2-master-text-to-video"


def context(store: JobStore, root: Path) -> ApiContext:
    """An API process's context (and so its `Generations`) on `store`, files under `root`."""
    return build_context(Settings(data_dir=root), store, LocalStorage(root), Registry.load())


@pytest.fixture
def ctx(store: JobStore, tmp_path: Path) -> Iterator[ApiContext]:
    ctx = context(store, tmp_path / "files")
    yield ctx
    ctx.close()


def job_with_files(
    ctx: ApiContext, keep_for_s: float | None, end: JobStatus | None = JobStatus.SUCCEEDED
) -> str:
    """A job with a staged input, run to `end` (None: left queued) as a worker would."""
    store = ctx.store
    job = store.create_job(make_spec(), keep_for_s=keep_for_s)
    ctx.storage.put_bytes(keys.input_image(job.id), b"png", "image/png")
    if end is None:
        return job.id
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=60)
    assert lease is not None and lease.job_id == job.id
    if end is JobStatus.SUCCEEDED:
        result = make_result(job.id)
        for artifact in result.artifacts:
            ctx.storage.put_bytes(artifact.key, b"bytes", artifact.content_type)
        assert store.complete_job(lease, result)
    elif end is JobStatus.FAILED:
        assert store.fail_job(lease, name="x", message="y") is JobStatus.FAILED
    elif end is JobStatus.CANCELED:
        store.request_cancel(job.id)
        assert store.finish_canceled(lease)
    return job.id


def has_files(ctx: ApiContext, job_id: str) -> bool:
    root = ctx.storage.root  # type: ignore[attr-defined]
    return any((root / prefix).exists() for prefix in keys.job_prefixes(job_id))


def deleted_events(store: JobStore) -> dict[str, int]:
    query = (
        select(job_events.c.job_id, func.count())
        .where(job_events.c.type == "deleted")
        .group_by(job_events.c.job_id)
    )
    with store.engine.connect() as conn:
        return {job_id: n for job_id, n in conn.execute(query)}


def test_a_sweep_removes_expired_finished_jobs_and_keeps_the_rest(ctx: ApiContext) -> None:
    expired = [job_with_files(ctx, -1, end) for end in JobStatus if end.is_terminal]
    kept = [
        job_with_files(ctx, -1, JobStatus.RUNNING),  # running: kept until it ends
        job_with_files(ctx, 3600),  # finished, retention not yet out
        job_with_files(ctx, None),  # no retention: kept until deleted
        job_with_files(ctx, -1, None),  # queued (last: nothing claims past it)
    ]
    assert ctx.generations.sweep_expired() == len(expired) == 3
    for job_id in expired:
        assert ctx.store.get_job(job_id) is None and not has_files(ctx, job_id)
    for job_id in kept:
        assert ctx.store.get_job(job_id) is not None and has_files(ctx, job_id)
    assert set(deleted_events(ctx.store)) == set(expired)
    assert ctx.generations.sweep_expired() == 0


def test_sweepers_of_several_replicas_remove_each_job_once(
    ctx: ApiContext, database_url: str, tmp_path: Path
) -> None:
    expired = {job_with_files(ctx, -1) for _ in range(40)}
    replicas = []
    for _ in range(4):  # each replica has its own engine, as separate processes would
        engine = open_engine(database_url)
        replicas.append(context(JobStore(engine), tmp_path / "files"))
    barrier = threading.Barrier(len(replicas))
    removed: list[int] = []
    errors: list[BaseException] = []

    def sweep(replica: ApiContext) -> None:
        try:
            barrier.wait()
            while swept := replica.generations.sweep_expired(batch=5):
                removed.append(swept)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for replica in replicas:
        replica.close()
        replica.store.engine.dispose()

    assert errors == []
    assert sum(removed) == len(expired)
    assert deleted_events(ctx.store) == dict.fromkeys(expired, 1)
    assert not any(has_files(ctx, job_id) for job_id in expired)


def test_deleted_jobs_are_forgotten_after_a_while_and_their_late_files_removed(
    ctx: ApiContext,
) -> None:
    gone = job_with_files(ctx, None)
    alive = job_with_files(ctx, None)
    assert ctx.store.delete_job(gone) is not None
    ctx.generations.remove_files(gone)
    # A worker that stored a file after the delete and died before removing it.
    ctx.storage.put_bytes(keys.output(gone, "video.mp4"), b"late", "video/mp4")

    assert ctx.store.orphaned_event_jobs(older_than_s=3600) == []
    assert ctx.generations.prune_deleted() == 0  # an hour by default: too soon
    assert [e.type.value for e in ctx.store.events_after(gone)] == ["deleted"]

    assert ctx.store.orphaned_event_jobs(older_than_s=-1) == [gone]
    assert ctx.generations.prune_deleted(older_than_s=-1) == 1
    assert ctx.store.events_after(gone) == [] and not has_files(ctx, gone)
    # A job that exists keeps its events, however old, even if named.
    before = ctx.store.events_after(alive)
    assert ctx.store.prune_events([alive]) == 0
    assert ctx.store.events_after(alive) == before and has_files(ctx, alive)


class FlakyStorage(LocalStorage):
    """Local storage whose deletes fail while `broken` is set."""

    broken = False

    def delete_prefix(self, prefix: str) -> None:
        if self.broken:
            raise ServiceUnavailable("the artifact store is unavailable")
        super().delete_prefix(prefix)


def test_the_sweeper_survives_a_failing_store_and_retries(
    store: JobStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = FlakyStorage(tmp_path / "files")
    ctx = build_context(Settings(data_dir=tmp_path), store, storage, Registry.load())
    job_id = job_with_files(ctx, -1)
    sweeper = RetentionSweeper(ctx.generations, interval_s=60)
    caplog.set_level(logging.INFO, logger="reelforge.service.sweeper")

    storage.broken = True
    assert asyncio.run(sweeper.sweep()) == 0
    [line] = caplog.records
    assert line.levelno == logging.WARNING
    assert "retention sweep failed, trying again in 60 s" in line.getMessage()
    assert "the artifact store is unavailable" in line.getMessage()
    # Nothing half done: the job is still there with its files, for the next sweep.
    assert store.get_job(job_id) is not None and has_files(ctx, job_id)

    caplog.clear()
    storage.broken = False
    assert asyncio.run(sweeper.sweep()) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "retention sweep removed 1 expired generation(s) and their files"
    ]
    assert store.get_job(job_id) is None and not has_files(ctx, job_id)
    caplog.clear()
    assert asyncio.run(sweeper.sweep()) == 0
    assert caplog.records == []  # quiet when there is nothing to remove
    ctx.close()


def test_one_sweep_takes_every_batch(ctx: ApiContext) -> None:
    expired = [job_with_files(ctx, -1) for _ in range(7)]
    assert asyncio.run(RetentionSweeper(ctx.generations, 60, batch=3).sweep()) == 7
    assert all(ctx.store.get_job(job_id) is None for job_id in expired)


def test_the_sweeper_loop_stops_promptly_when_canceled(ctx: ApiContext) -> None:
    job_id = job_with_files(ctx, -1)
    sweeper = RetentionSweeper(ctx.generations, interval_s=3600)

    async def run_then_cancel() -> float:
        task = asyncio.create_task(sweeper.run())
        while ctx.store.get_job(job_id) is not None:  # the first sweep runs at once
            await asyncio.sleep(0.01)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - started

    assert asyncio.run(run_then_cancel()) < 0.5


@pytest.mark.postgres
def test_the_sweeper_survives_a_refusing_database(
    postgres_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FaultProxy(make_url(postgres_url).port or 5432) as proxy:
        engine = open_engine(proxy.url_for(postgres_url), connect_timeout_s=2)
        migrate(engine)
        ctx = context(JobStore(engine), tmp_path / "files")
        job_id = job_with_files(ctx, -1)
        sweeper = RetentionSweeper(ctx.generations, interval_s=60)
        caplog.set_level(logging.INFO, logger="reelforge.service.sweeper")

        proxy.refuse()
        started = time.monotonic()
        assert asyncio.run(sweeper.sweep()) == 0
        assert time.monotonic() - started < 10
        [line] = caplog.records
        assert line.levelno == logging.WARNING and "retention sweep failed" in line.getMessage()

        proxy.heal()
        assert asyncio.run(sweeper.sweep()) == 1
        assert ctx.store.get_job(job_id) is None and not has_files(ctx, job_id)
        ctx.close()
        engine.dispose()
