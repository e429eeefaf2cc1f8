"""A job whose artifact store, or the worker's scratch folder for encoding, is full or
read-only fails with a named error that says so, not as an internal error, and is not retried.

Real parts throughout: the job runner, the test-pattern engine, real encoding, a real job store,
and a real tmpfs that is full to the last byte or mounted read-only.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy.engine import make_url

from reelforge.engines.base import Clip, OnStep
from reelforge.engines.registry import ModelEntry, Registry
from reelforge.engines.testsrc import TestSourceEngine
from reelforge.jobs import JobStatus, JobStore, open_engine
from reelforge.jobs.schema import migrate
from reelforge.spec import GenerationSpec
from reelforge.storage import LocalStorage
from reelforge.worker.heartbeat import Heartbeat
from reelforge.worker.runner import JobRunner
from tests.conftest import make_spec
from tests.fixtures.engines import FailingEngine

MODEL = "klingai/v2-master-text-to-video"

# (fixture of the broken filesystem, the job's error name, words its message must contain)
FULL = ("full_filesystem", "storage_full", "is full: No space left on device")
READ_ONLY = ("read_only_filesystem", "storage_unavailable", "is read-only: Read-only file system")


def _runner(store: JobStore, storage_root: Path, scratch_dir: Path | None) -> JobRunner:
    return JobRunner(
        store,
        LocalStorage(storage_root),
        Registry([ModelEntry(MODEL, "testsrc")]),
        {MODEL: TestSourceEngine(None)},
        Heartbeat(store, "w1", lease_seconds=60, interval_s=30),  # never beats here
        scratch_dir=scratch_dir,
    )


def _run_one_job(store: JobStore, runner: JobRunner) -> str:
    job = store.create_job(make_spec(MODEL))
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=60)
    assert lease is not None
    runner.run(lease)
    return job.id


@pytest.mark.parametrize(("filesystem", "error_name", "cause"), [FULL, READ_ONLY])
def test_a_broken_artifact_store_fails_the_job_by_name(
    request: pytest.FixtureRequest,
    store: JobStore,
    tmp_path: Path,
    filesystem: str,
    error_name: str,
    cause: str,
) -> None:
    broken: Path = request.getfixturevalue(filesystem)
    job_id = _run_one_job(store, _runner(store, broken, scratch_dir=tmp_path))

    job = store.get_job(job_id)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error_name == error_name
    assert job.error_message is not None
    assert job.error_message.startswith(f"the artifact store {cause}")
    assert str(broken) not in job.error_message
    assert job.attempts == 1  # failed at once: the store stays broken for the next attempt


@pytest.mark.parametrize(("filesystem", "error_name", "cause"), [FULL, READ_ONLY])
def test_a_broken_scratch_folder_fails_the_job_by_name(
    request: pytest.FixtureRequest,
    store: JobStore,
    tmp_path: Path,
    filesystem: str,
    error_name: str,
    cause: str,
) -> None:
    broken: Path = request.getfixturevalue(filesystem)
    runner = _runner(store, tmp_path / "artifacts", scratch_dir=broken)
    job_id = _run_one_job(store, runner)

    job = store.get_job(job_id)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error_name == error_name
    assert (job.error_message or "").startswith(f"the worker's scratch directory {cause}")
    assert not list((tmp_path / "artifacts").rglob("*.*"))  # nothing stored for the job

    # The same worker runs the next job once encoding has room again.
    runner.scratch_dir = tmp_path
    following = _run_one_job(store, runner)
    assert store.get_job(following).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]


class _LockingFailingEngine(FailingEngine):
    """Fails its job, after taking the database's write lock as another process would
    (a real `BEGIN IMMEDIATE` on the SQLite file), so the failure cannot be written."""

    def __init__(self, database: str) -> None:
        super().__init__(None)
        self.holder = sqlite3.connect(database, isolation_level=None)

    def generate(self, spec: GenerationSpec, image: Image.Image | None, on_step: OnStep) -> Clip:
        self.holder.execute("BEGIN IMMEDIATE")
        return super().generate(spec, image, on_step)


def test_a_database_away_when_the_outcome_is_written_leaves_the_worker_running(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = open_engine(sqlite_url, sqlite_busy_timeout_s=0.2)
    migrate(engine)
    store = JobStore(engine)
    failing = _LockingFailingEngine(make_url(sqlite_url).database or "")
    runner = JobRunner(
        store,
        LocalStorage(tmp_path / "artifacts"),
        Registry([ModelEntry(MODEL, "fixture-failing")]),
        {MODEL: failing},
        Heartbeat(store, "w1", lease_seconds=60, interval_s=30),  # never beats here
    )
    job = store.create_job(make_spec(MODEL))
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=60)
    assert lease is not None
    try:
        runner.run(lease)  # the failure cannot be written: no exception out of the runner
    finally:
        failing.holder.close()
    # Unchanged: still the lost run's, until its lease runs out and recovery requeues it.
    left = store.get_job(job.id)
    assert left is not None and left.status is JobStatus.RUNNING and left.attempts == 1
    store.create_job(make_spec(MODEL))
    assert store.claim_next_job("w1", [MODEL], lease_seconds=60) is not None  # works on
    engine.dispose()
