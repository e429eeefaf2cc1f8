"""A stale run (a worker frozen past its lease, then resumed) that resumes while storing its
files, after its last lease check: its files go under its own run folder, the job keeps the
files of the run that took over, and the stale run removes its own. Real store (SQLite and
PostgreSQL), real local storage, the real runner and encoder; the engine is the gate fixture,
released from the start (a few quick steps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reelforge.engines.registry import ModelEntry, Registry
from reelforge.jobs import JobStatus, JobStore, Lease
from reelforge.storage import open_storage
from reelforge.worker.heartbeat import Heartbeat
from reelforge.worker.runner import JobRunner
from tests.conftest import make_spec
from tests.fixtures.engines import GateEngine
from tests.worker_processes import wait_until

MODEL = "klingai/v2-master-text-to-video"


def _runner(store: JobStore, root: Path, gate: Path, worker_id: str) -> JobRunner:
    engine = GateEngine(str(gate))
    registry = Registry([ModelEntry(MODEL, "fixture-gate")])
    heartbeat = Heartbeat(store, worker_id, lease_seconds=60, interval_s=30)  # never beats
    return JobRunner(store, open_storage(root.as_uri()), registry, {MODEL: engine}, heartbeat)


def test_a_run_resumed_while_storing_never_replaces_the_files_of_the_run_that_took_over(
    store: JobStore, tmp_path: Path
) -> None:
    gate, root = tmp_path / "gate", tmp_path / "artifacts"
    gate.mkdir()
    (gate / "release").touch()
    stale_runner = _runner(store, root, gate, "frozen")
    fresh_runner = _runner(store, root, gate, "fresh")
    job = store.create_job(make_spec())
    stale = store.claim_next_job("frozen", [MODEL], lease_seconds=0.2)
    assert stale is not None

    put_file = stale_runner.storage.put_file
    stale_keys: list[str] = []

    def frozen_after_the_first_file(key: str, source: Path, content_type: str) -> Any:
        written = put_file(key, source, content_type)
        stale_keys.append(key)
        if len(stale_keys) == 1:  # as if frozen here, past the lease: another run takes over

            def takeover() -> Lease | None:
                store.requeue_expired()  # what LeaseRecovery runs in every worker
                return store.claim_next_job("fresh", [MODEL], lease_seconds=60)

            fresh: Lease = wait_until(takeover, 10, "takeover")
            fresh_runner.run(fresh)
        return written

    stale_runner.storage.put_file = frozen_after_the_first_file  # type: ignore[method-assign]
    stale_runner.run(stale)

    done = store.get_job(job.id)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.attempts == 2
    assert done.result is not None
    referenced = {done.result.video.key, done.result.preview.key, done.result.thumbnail.key}
    assert len(stale_keys) == 3 and not referenced & set(stale_keys)
    stored = {str(p.relative_to(root)) for p in (root / "jobs" / job.id).rglob("*") if p.is_file()}
    assert stored == referenced  # the stale run's files are gone, the accepted run's intact
    assert (root / done.result.video.key).stat().st_size == done.result.video.size
