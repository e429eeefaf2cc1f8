"""A job whose artifact store, or the worker's scratch folder for encoding, is full or
read-only fails with a named error that says so, not as an internal error, and is not retried.

Real parts throughout: the job runner, the test-pattern engine, real encoding, a real job store,
and a real tmpfs that is full to the last byte or mounted read-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reelforge.engines.registry import ModelEntry, Registry
from reelforge.engines.testsrc import TestSourceEngine
from reelforge.jobs import JobStatus, JobStore
from reelforge.storage import LocalStorage
from reelforge.worker.heartbeat import Heartbeat
from reelforge.worker.runner import JobRunner
from tests.conftest import make_spec

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
