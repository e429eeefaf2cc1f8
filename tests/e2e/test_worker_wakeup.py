"""A real `reelforge worker` on PostgreSQL, polling only every 30 s, claims jobs created by
another process at once: only the NOTIFY can wake it that fast (the issue's target is about
100 ms; the bound here is a second, for a loaded CI machine). Its LISTEN connection, killed by
the server, comes back and wakes it again."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text

from reelforge.jobs import JobStatus, JobStore, WorkerState, open_store
from reelforge.jobs.notify import APPLICATION_NAME, CHANNEL_SQL
from tests.conftest import make_spec
from tests.e2e.conftest import REPO_ROOT, START_TIMEOUT_S, TESTSRC_REGISTRY, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

T2V = "klingai/v2-master-text-to-video"
POLL_INTERVAL_S = 30
CLAIM_WITHIN_S = 5.0
"""Far below the poll interval: a claim this fast was woken by the notification."""
WAKE_UPS = 5
WAKE_UP_MEDIAN_S = 1.0
"""The median time from a create to the idle worker's claim (both by the database's clock)."""


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path
    store: JobStore

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def alive(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"the worker exited with {self.process.returncode}:\n{self.log()}")
        return True


@pytest.fixture
def worker(postgres_url: str, tmp_path: Path) -> Iterator[Worker]:
    store = open_store(postgres_url)
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "REELFORGE_DATA_DIR": str(tmp_path / "worker-data"),
        "REELFORGE_DATABASE_URL": postgres_url,
        "REELFORGE_MODELS_FILE": str(TESTSRC_REGISTRY),
        "REELFORGE_POLL_INTERVAL_S": str(POLL_INTERVAL_S),
        "REELFORGE_DEVICE": "cpu",
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "reelforge", "worker"], env=env, stdout=log, stderr=log
        )
    running = Worker(process, log_path, store)
    try:
        # A worker registers only once its LISTEN is in place.
        wait_for(
            lambda: running.alive() and store.live_workers(within_s=60),
            START_TIMEOUT_S,
            "the worker to register",
        )
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        store.engine.dispose()


def claimed_soon(worker: Worker) -> str:
    """Create a job from this process and wait (far less than a poll) for the worker to end
    it; returns its id."""
    job = worker.store.create_job(make_spec(model=T2V))

    def done() -> bool:
        current = worker.store.get_job(job.id)
        return current is not None and current.status is JobStatus.SUCCEEDED

    wait_for(lambda: worker.alive() and done(), CLAIM_WITHIN_S, f"job {job.id} to be run")
    return job.id


def listen_backend(worker: Worker) -> int | None:
    """The server process of the worker's LISTEN connection on this test's channel."""
    with worker.store.engine.connect() as conn:
        channel = conn.execute(text(f"SELECT {CHANNEL_SQL}")).scalar_one()
        pid = conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE application_name = :name "
                "AND query = :listen"
            ),
            {"name": APPLICATION_NAME, "listen": f'LISTEN "{channel}"'},
        ).scalar()
    return None if pid is None else int(pid)


def test_an_idle_worker_claims_a_new_job_at_once(worker: Worker) -> None:
    # The first may meet the worker's first claim at start; the second finds it idle, in
    # its 30 s wait, right after the first job ended.
    claimed_soon(worker)
    claimed_soon(worker)
    assert worker.log().count("claimed (attempt 1)") == 2


def idle(worker: Worker) -> bool:
    """Whether the worker's row says it waits for a job (written as its last job ended)."""
    rows = worker.store.live_workers(within_s=60)
    return len(rows) == 1 and rows[0].state is WorkerState.IDLE and rows[0].current_job_id is None


def test_an_idle_worker_claims_within_a_second_of_the_create(worker: Worker) -> None:
    waited: list[float] = []
    for _ in range(WAKE_UPS):
        wait_for(lambda: worker.alive() and idle(worker), 30, "the worker to be idle")
        job = worker.store.get_job(claimed_soon(worker))
        assert job is not None and job.started_at is not None
        waited.append(job.started_at - job.created_at)
    median = statistics.median(waited)
    print(f"create to claim: median {median * 1000:.0f} ms of {[round(w * 1000) for w in waited]}")
    assert median < WAKE_UP_MEDIAN_S, waited


def test_the_listen_connection_comes_back_after_the_server_kills_it(worker: Worker) -> None:
    claimed_soon(worker)
    first = wait_for(lambda: listen_backend(worker), 10, "the LISTEN connection")
    with worker.store.engine.connect() as conn:
        assert conn.execute(text(f"SELECT pg_terminate_backend({first})")).scalar()
    wait_for(
        lambda: worker.alive() and listen_backend(worker) not in (None, first),
        10,
        "the worker to listen again",
    )
    claimed_soon(worker)
    claimed_soon(worker)  # and again from idle, on the new connection alone
    log = worker.log()
    assert log.count("cannot listen for new jobs") == 1, log
    assert "Traceback" not in log, log
