"""Two real `reelforge worker` processes on one real database (SQLite, and PostgreSQL where
locks differ): graceful drain on SIGTERM, and a worker SIGKILLed or frozen (SIGSTOP) mid-job;
then `serve` (with `--workers auto`) drained as a whole and one of its children restarted.

The engine is the gate fixture: a run steps (every 20 ms, each step checking its lease)
until the test releases the gate, so each fault lands on a job that is certainly running.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from reelforge.jobs import Job, JobStatus, WorkerState
from reelforge.jobs.events import EventType
from reelforge.worker.devices import list_cuda_devices
from tests.conftest import make_spec
from tests.e2e.conftest import LiveServer, wait_for
from tests.e2e.test_service import T2V, create, wait_terminal, write_models_file
from tests.worker_processes import WorkerPool, WorkerProcess, wait_until

pytestmark = pytest.mark.slow  # server processes

EXIT_S = 30.0
LEASE_S = 1.5


@pytest.fixture
def pool(tmp_path: Path, database_url: str) -> Iterator[WorkerPool]:
    workers = WorkerPool(tmp_path, database_url, lease_seconds=LEASE_S)
    yield workers
    workers.close()


@pytest.fixture
def sqlite_pool(tmp_path: Path, sqlite_url: str) -> Iterator[WorkerPool]:
    workers = WorkerPool(tmp_path, sqlite_url, lease_seconds=LEASE_S)
    yield workers
    workers.close()


def _job(pool: WorkerPool, job_id: str) -> Job:
    job = pool.store.get_job(job_id)
    assert job is not None
    return job


def _claimed_by(pool: WorkerPool, job_id: str, worker: WorkerProcess) -> bool:
    info = pool.info(worker)
    job = _job(pool, job_id)
    return info is not None and job.status is JobStatus.RUNNING and job.worker_id == info.id


def _succeeded(pool: WorkerPool, job_id: str) -> Job:
    return wait_until(
        lambda: (job := _job(pool, job_id)).status is JobStatus.SUCCEEDED and job,
        EXIT_S,
        f"job {job_id} to succeed",
    )


def _one_result_from_one_run(pool: WorkerPool, job: Job) -> None:
    """The job has one result, whose files all exist and come from one run, and no other
    run's files are left under the job."""
    assert job.result is not None
    referenced = {job.result.video.key, job.result.preview.key, job.result.thumbnail.key}
    assert len({Path(key).parent for key in referenced}) == 1
    stored = {
        str(path.relative_to(pool.artifacts))
        for path in (pool.artifacts / "jobs" / job.id).rglob("*")
        if path.is_file()
    }
    assert stored == referenced
    events = [event.type for event in pool.store.events_after(job.id)]
    assert events.count(EventType.SUCCEEDED) == 1


def test_drain_zero_hands_the_job_back_and_another_worker_completes_it(
    pool: WorkerPool,
) -> None:
    first = pool.start(drain_seconds="0")
    job = pool.store.create_job(make_spec())
    pool.wait_started(first)
    second = pool.start()
    assert _claimed_by(pool, job.id, first)

    first.signal(signal.SIGTERM)
    assert first.wait_exit(EXIT_S) == 0, pool.logs()
    wait_until(lambda: _claimed_by(pool, job.id, second), EXIT_S, "the second worker's claim")
    assert _job(pool, job.id).attempts == 1  # the drained run spent none
    assert pool.info(first) is None  # it deregistered on its way out
    requeued = [e for e in pool.store.events_after(job.id) if e.type is EventType.REQUEUED]
    assert [e.data for e in requeued] == [{"reason": "worker_draining"}]

    pool.release()
    done = _succeeded(pool, job.id)
    assert done.attempts == 1
    _one_result_from_one_run(pool, done)
    assert "handed back to the queue" in first.log()


def test_drain_with_time_to_spare_finishes_the_job_and_claims_no_other(
    sqlite_pool: WorkerPool,
) -> None:
    pool = sqlite_pool
    worker = pool.start(drain_seconds="60")
    job = pool.store.create_job(make_spec())
    pool.wait_started(worker)

    worker.signal(signal.SIGTERM)
    draining = wait_until(
        lambda: (
            (info := pool.info(worker)) is not None and info.state is WorkerState.DRAINING and info
        ),
        EXIT_S,
        "the worker to show it is draining",
    )
    assert draining.current_job_id == job.id
    later = pool.store.create_job(make_spec(prompt="queued during the drain"))
    assert worker.process.poll() is None  # still finishing its job

    pool.release()
    assert worker.wait_exit(EXIT_S) == 0, worker.log()
    done = _job(pool, job.id)
    assert done.status is JobStatus.SUCCEEDED and done.attempts == 1
    _one_result_from_one_run(pool, done)
    untouched = _job(pool, later.id)
    assert untouched.status is JobStatus.QUEUED and untouched.attempts == 0
    assert pool.started() == [worker.pid] and len(list(pool.gate.glob("started-*"))) == 1


DRAIN_S = 1.0
DRAINED_EXIT_S = 15.0
"""The drain period, then an engine step, the hand-back and deregistering: seconds at most."""


def test_a_job_still_running_at_the_drain_deadline_is_handed_back_unspent(
    sqlite_pool: WorkerPool,
) -> None:
    pool = sqlite_pool
    worker = pool.start(drain_seconds=str(DRAIN_S))
    job = pool.store.create_job(make_spec())
    pool.wait_started(worker)  # the gate is never released: the job cannot finish

    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait_exit(DRAINED_EXIT_S) == 0, worker.log()
    took_s = time.monotonic() - signalled
    assert took_s >= DRAIN_S, took_s  # it gave the job its grace period first

    back = _job(pool, job.id)
    assert back.status is JobStatus.QUEUED and back.attempts == 0, back
    assert back.worker_id is None and back.result is None
    requeued = [e for e in pool.store.events_after(job.id) if e.type is EventType.REQUEUED]
    assert [e.data for e in requeued] == [{"reason": "worker_draining"}]
    assert pool.info(worker) is None  # it deregistered on its way out
    assert "handed back to the queue" in worker.log()


def test_a_worker_killed_mid_job_has_it_rerun_by_the_other_after_the_lease(
    sqlite_pool: WorkerPool,
) -> None:
    pool = sqlite_pool
    first = pool.start()
    job = pool.store.create_job(make_spec())
    pool.wait_started(first)
    second = pool.start()

    first.signal(signal.SIGKILL)
    first.wait_exit(EXIT_S)
    wait_until(lambda: _claimed_by(pool, job.id, second), EXIT_S, "the rerun after the lease")
    assert _job(pool, job.id).attempts == 2  # the lost run counts: it may be the job's fault
    pool.release()
    done = _succeeded(pool, job.id)
    _one_result_from_one_run(pool, done)


def test_a_frozen_worker_is_fenced_after_its_lease_was_taken_over(pool: WorkerPool) -> None:
    first = pool.start()
    job = pool.store.create_job(make_spec())
    pool.wait_started(first)
    second = pool.start()

    pool.freeze(first, job.id)
    wait_until(lambda: _claimed_by(pool, job.id, second), EXIT_S, "the takeover")
    pool.release()
    done = _succeeded(pool, job.id)
    winner = pool.info(second)
    assert winner is not None and done.worker_id == winner.id and done.attempts == 2

    first.signal(signal.SIGCONT)
    # The resumed run sees the release too, then finds its lease gone and stops writing.
    wait_until(lambda: "abandoned after its lease was lost" in first.log(), EXIT_S, "the fence")
    first.signal(signal.SIGTERM)
    assert first.wait_exit(EXIT_S) == 0, first.log()
    after = _job(pool, job.id)
    assert after.status is JobStatus.SUCCEEDED and after.result == done.result
    assert after.finished_at == done.finished_at
    _one_result_from_one_run(pool, after)


def test_serve_with_auto_workers_drains_on_sigterm_and_a_restart_completes_the_job(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """A rolling restart of `serve`: SIGTERM drains its worker, a second SIGTERM makes it hand
    the job back at once, and the restarted server runs it first, without waiting out a
    lease and as its first attempt."""
    gate = tmp_path / "gate"
    gate.mkdir()
    models = write_models_file(tmp_path / "models.toml", "tests.fixtures.engines:GateEngine", gate)
    settings = {"models_file": str(models), "workers": "auto", "drain_seconds": "600"}
    server = server_factory(**settings, lease_seconds="600", poll_interval_s="0.05")
    gpus = list_cuda_devices()
    health = httpx.get(server.base_url + "/healthz").json()
    assert [w["device"] for w in health["live_workers"]] == (
        [f"cuda:{gpu}" for gpu in gpus] if gpus else ["cpu"]
    )

    created = create(server, {"model": T2V, "prompt": "survive a restart"})
    wait_for(lambda: list(gate.glob("started-*")), 60, "the job to start")
    [worker] = httpx.get(server.base_url + "/healthz").json()["live_workers"]
    assert (worker["state"], worker["current_job"]) == ("running", created["id"])

    assert server.process is not None
    store = server.store()
    try:
        server.process.send_signal(signal.SIGTERM)
        wait_for(
            lambda: [w.state for w in store.live_workers(within_s=600)] == ["draining"],
            60,
            "the worker to drain",
        )
        server.process.send_signal(signal.SIGTERM)  # don't wait for the job: hand it back
        assert server.process.wait(timeout=60) == 0, server.log()
        job = store.get_job(created["id"])
        assert job is not None and job.status is JobStatus.QUEUED and job.attempts == 0
        assert store.live_workers(within_s=600) == []
    finally:
        store.engine.dispose()

    (gate / "release").touch()
    # Lease 600 s: only a job handed back, not one waiting out its lease, runs again now.
    restarted = server_factory(**settings, lease_seconds="600", poll_interval_s="0.05")
    final = wait_terminal(restarted, created["id"], timeout_s=60)
    assert final["status"] == "completed", final
    assert final["meta"]["attempts"] == 1


def test_sigterm_to_one_serve_worker_restarts_it_and_it_runs_the_handed_back_job(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """A rolling restart of one worker child of `serve`: drained (drain 0), it exits 0, the
    supervisor starts it again, and the new process takes the job back at once (lease 600 s)
    as the same attempt."""
    gate = tmp_path / "gate"
    gate.mkdir()
    models = write_models_file(tmp_path / "models.toml", "tests.fixtures.engines:GateEngine", gate)
    server = server_factory(
        models_file=str(models), drain_seconds="0", lease_seconds="600", poll_interval_s="0.05"
    )
    created = create(server, {"model": T2V, "prompt": "survive a worker restart"})

    def started() -> list[int]:
        return [int(path.name.split("-")[1]) for path in gate.glob("started-*")]

    [first] = wait_for(started, 60, "the job to start")
    os.kill(first, signal.SIGTERM)
    restarted = wait_for(lambda: [pid for pid in started() if pid != first], 60, "the rerun")
    assert restarted and first not in restarted
    assert "exited with code 0; restarting" in server.log()
    (gate / "release").touch()
    final = wait_terminal(server, created["id"], timeout_s=60)
    assert final["status"] == "completed", final
    assert final["meta"]["attempts"] == 1
