"""A draining worker's hand-back and the worker registry's state, on real SQLite and real
PostgreSQL."""

from __future__ import annotations

import threading

from reelforge.jobs import JobStatus, JobStore, WorkerState
from reelforge.jobs.events import EventType
from tests.conftest import make_spec
from tests.integration.test_job_store import MODEL, make_result


def test_a_handed_back_job_is_queued_again_without_spending_an_attempt(store: JobStore) -> None:
    job = store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=60)
    assert lease is not None and lease.job.attempts == 1
    assert store.report_progress(lease, 0.4, (4, 10))

    assert store.hand_back(lease, reason="worker_draining")

    back = store.get_job(job.id)
    assert back is not None
    assert back.status is JobStatus.QUEUED
    assert back.attempts == 0
    assert back.progress == 0.0 and back.worker_id is None
    assert (back.step, back.steps) == (None, None)  # the next run counts its own steps
    assert back.error_name is None and back.finished_at is None
    last = store.events_after(job.id)[-1]
    assert last.type is EventType.REQUEUED
    assert last.data == {"reason": "worker_draining"}
    assert last.status is JobStatus.QUEUED and last.progress == 0.0

    # Another worker takes it as its first attempt; the old lease writes nothing more.
    again = store.claim_next_job("w2", [MODEL], lease_seconds=60)
    assert again is not None and again.job_id == job.id and again.job.attempts == 1
    assert not store.renew_lease(lease, 60)
    assert not store.complete_job(lease, make_result("stale"))
    assert not store.hand_back(lease, reason="worker_draining")
    assert store.complete_job(again, make_result("second"))
    done = store.get_job(job.id)
    assert done is not None and done.result is not None
    assert done.result.video.key == "jobs/second/video.mp4"


def test_a_handed_back_job_keeps_its_place_at_the_head_of_the_queue(store: JobStore) -> None:
    first = store.create_job(make_spec())
    store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=60)
    assert lease is not None and lease.job_id == first.id
    assert store.hand_back(lease, reason="worker_draining")
    again = store.claim_next_job("w2", [MODEL], lease_seconds=60)
    assert again is not None and again.job_id == first.id


def test_hand_back_wakes_idle_workers(store: JobStore) -> None:
    store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=60)
    assert lease is not None
    woken = threading.Event()
    store.on_enqueue = woken.set
    assert store.hand_back(lease, reason="worker_draining")
    assert woken.is_set()


def test_a_canceled_job_cannot_be_handed_back(store: JobStore) -> None:
    job = store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=60)
    assert lease is not None
    store.request_cancel(job.id)
    assert store.finish_canceled(lease)
    assert not store.hand_back(lease, reason="worker_draining")
    ended = store.get_job(job.id)
    assert ended is not None and ended.status is JobStatus.CANCELED


def test_live_workers_show_device_state_and_current_job(store: JobStore) -> None:
    store.register_worker("w1", [MODEL], host="gpu-host", pid=41, device="cuda:1")
    store.register_worker("w2", [MODEL], host="cpu-host", pid=42, device="cpu")
    job = store.create_job(make_spec())
    store.set_worker_state("w1", WorkerState.RUNNING, job.id)
    store.set_worker_state("w2", WorkerState.DRAINING, None)

    live = {w.id: w for w in store.live_workers(within_s=60)}
    assert (live["w1"].device, live["w1"].state, live["w1"].current_job_id) == (
        "cuda:1",
        WorkerState.RUNNING,
        job.id,
    )
    assert (live["w2"].host, live["w2"].pid, live["w2"].state) == ("cpu-host", 42, "draining")
    assert live["w2"].current_job_id is None

    store.set_worker_state("w1", WorkerState.IDLE, None)
    [w1] = [w for w in store.live_workers(within_s=60) if w.id == "w1"]
    assert w1.state is WorkerState.IDLE and w1.current_job_id is None
    # A worker registering again (a restart with the same id) starts idle.
    store.set_worker_state("w2", WorkerState.RUNNING, job.id)
    store.register_worker("w2", [MODEL], host="cpu-host", pid=43, device="cpu")
    [w2] = [w for w in store.live_workers(within_s=60) if w.id == "w2"]
    assert (w2.pid, w2.state, w2.current_job_id) == (43, WorkerState.IDLE, None)
