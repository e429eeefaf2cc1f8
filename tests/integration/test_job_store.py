"""The job store on real SQLite and real PostgreSQL: claims, leases, fencing, retries."""

from __future__ import annotations

import threading

from reelforge.jobs import JobStatus, JobStore, LeaseCheck, open_engine
from reelforge.jobs.schema import migrate
from tests.conftest import make_spec

MODEL = "klingai/v2-master-text-to-video"


def test_new_job_is_queued_with_its_spec(store: JobStore) -> None:
    spec = make_spec(prompt="a blue square")
    job = store.create_job(spec, tenant="team-a")
    loaded = store.get_job(job.id)
    assert loaded is not None
    assert loaded.status is JobStatus.QUEUED
    assert loaded.spec == spec
    assert loaded.tenant == "team-a"
    assert loaded.attempts == 0


def test_unknown_job_is_none(store: JobStore) -> None:
    assert store.get_job("no-such-job") is None


def test_claim_takes_oldest_job_of_served_model(store: JobStore) -> None:
    other = store.create_job(make_spec(model="other/model"))
    first = store.create_job(make_spec())
    store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None
    assert lease.job.id == first.id
    assert lease.job.status is JobStatus.RUNNING
    assert lease.job.attempts == 1
    assert lease.job.worker_id == "w1"
    assert store.get_job(other.id).status is JobStatus.QUEUED  # type: ignore[union-attr]


def test_claim_prefers_higher_priority(store: JobStore) -> None:
    store.create_job(make_spec())
    urgent = store.create_job(make_spec(), priority=5)
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None and lease.job.id == urgent.id


def test_claim_on_empty_queue_is_none(store: JobStore) -> None:
    assert store.claim_next_job("w1", [MODEL], lease_seconds=30) is None


def test_queue_position_counts_jobs_ahead(store: JobStore) -> None:
    jobs = [store.create_job(make_spec()) for _ in range(3)]
    assert [store.queue_position(j) for j in jobs] == [0, 1, 2]
    store.claim_next_job("w1", [MODEL], lease_seconds=30)
    refreshed = [store.get_job(j.id) for j in jobs]
    assert [store.queue_position(j) for j in refreshed if j] == [None, 0, 1]


def test_concurrent_claims_take_each_job_once(database_url: str) -> None:
    stores = []
    for _ in range(4):
        engine = open_engine(database_url)
        migrate(engine)
        stores.append(JobStore(engine))
    job_ids = {stores[0].create_job(make_spec()).id for _ in range(12)}
    claimed: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(stores))

    def claim_all(store: JobStore, worker: str) -> None:
        start.wait()
        while (lease := store.claim_next_job(worker, [MODEL], lease_seconds=30)) is not None:
            with lock:
                claimed.append(lease.job.id)

    threads = [threading.Thread(target=claim_all, args=(s, f"w{i}")) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for s in stores:
        s.engine.dispose()
    assert sorted(claimed) == sorted(job_ids)


def test_writes_with_a_stale_token_are_refused(store: JobStore) -> None:
    store.create_job(make_spec())
    stale = store.claim_next_job("w1", [MODEL], lease_seconds=-1)  # already expired
    assert stale is not None
    fresh = store.claim_next_job("w2", [MODEL], lease_seconds=30)
    assert fresh is not None and fresh.job.id == stale.job.id
    assert fresh.job.attempts == 2
    assert not store.report_progress(stale, 0.5)
    assert not store.renew_lease(stale, 30)
    assert not store.complete_job(stale, {"video": "stale"})
    assert store.fail_job(stale, name="x", message="stale") is None
    assert store.complete_job(fresh, {"video": "fresh"})
    done = store.get_job(fresh.job.id)
    assert done is not None
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == {"video": "fresh"}


def test_expired_lease_past_attempt_limit_fails_the_job(store: JobStore) -> None:
    job = store.create_job(make_spec())
    for worker in ("w1", "w2"):  # max_attempts is 2 in this fixture
        lease = store.claim_next_job(worker, [MODEL], lease_seconds=-1)  # expired
        assert lease is not None and lease.job.id == job.id
    store.requeue_expired()
    failed = store.get_job(job.id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert failed.error_name == "worker_lost"
    assert "stopped responding" in (failed.error_message or "")
    assert failed.finished_at is not None


def test_renewed_lease_is_not_requeued(store: JobStore) -> None:
    store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=-1)  # expired
    assert lease is not None
    assert store.renew_lease(lease, 30)
    assert store.requeue_expired() == 0
    assert store.get_job(lease.job_id).status is JobStatus.RUNNING  # type: ignore[union-attr]


def test_retryable_failure_requeues_until_attempts_run_out(store: JobStore) -> None:
    job = store.create_job(make_spec())
    first = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert first is not None
    assert store.fail_job(first, name="device", message="flaky", retryable=True) is JobStatus.QUEUED
    second = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert second is not None and second.job.id == job.id
    assert store.fail_job(second, name="device", message="flaky", retryable=True) is (
        JobStatus.FAILED
    )
    failed = store.get_job(job.id)
    assert failed is not None and failed.error_message == "flaky"


def test_progress_is_recorded_and_clamped(store: JobStore) -> None:
    store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None
    assert store.report_progress(lease, 0.25)
    assert store.get_job(lease.job_id).progress == 0.25  # type: ignore[union-attr]
    assert store.report_progress(lease, 7)
    assert store.get_job(lease.job_id).progress == 1.0  # type: ignore[union-attr]


def test_enqueue_wakes_workers(store: JobStore) -> None:
    woken = threading.Event()
    store.on_enqueue = woken.set
    store.create_job(make_spec())
    assert woken.is_set()


def test_live_workers_reflect_registration(store: JobStore) -> None:
    store.register_worker("w1", [MODEL], host="h", pid=1)
    live = store.live_workers(within_s=60)
    assert [(w.id, w.models) for w in live] == [("w1", [MODEL])]
    store.remove_worker("w1")
    assert store.live_workers(within_s=60) == []


def test_migrate_is_idempotent(database_url: str) -> None:
    engine = open_engine(database_url)
    assert migrate(engine) >= 1
    assert migrate(engine) == 0
    store = JobStore(engine)
    assert store.create_job(make_spec()).status is JobStatus.QUEUED
    engine.dispose()


def test_cancel_ends_a_queued_job_at_once(store: JobStore) -> None:
    job = store.create_job(make_spec())
    canceled = store.request_cancel(job.id)
    assert canceled is not None and canceled.status is JobStatus.CANCELED
    assert canceled.cancel_requested and canceled.finished_at is not None
    assert store.claim_next_job("w1", [MODEL], lease_seconds=30) is None


def test_cancel_flags_a_running_job_for_its_worker(store: JobStore) -> None:
    job = store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None
    assert store.check_lease(lease) is LeaseCheck.OWNED
    flagged = store.request_cancel(job.id)
    assert flagged is not None and flagged.status is JobStatus.RUNNING and flagged.cancel_requested
    assert store.check_lease(lease) is LeaseCheck.CANCEL_REQUESTED
    assert store.finish_canceled(lease)
    ended = store.get_job(job.id)
    assert ended is not None and ended.status is JobStatus.CANCELED
    assert store.check_lease(lease) is LeaseCheck.LOST
    assert not store.finish_canceled(lease)  # fenced: only once, only by the owner


def test_cancel_leaves_a_finished_job_alone(store: JobStore) -> None:
    job = store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None and store.complete_job(lease, {"video": "v"})
    after = store.request_cancel(job.id)
    assert after is not None and after.status is JobStatus.SUCCEEDED
    assert not after.cancel_requested
    assert store.request_cancel("no-such-job") is None


def test_stale_lease_is_lost_to_the_new_owner(store: JobStore) -> None:
    store.create_job(make_spec())
    stale = store.claim_next_job("w1", [MODEL], lease_seconds=-1)  # already expired
    assert stale is not None
    fresh = store.claim_next_job("w2", [MODEL], lease_seconds=30)
    assert fresh is not None
    assert store.check_lease(stale) is LeaseCheck.LOST
    assert store.check_lease(fresh) is LeaseCheck.OWNED


def test_expired_lease_of_a_canceled_job_ends_it_as_canceled(store: JobStore) -> None:
    job = store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=-1)  # its worker died
    assert lease is not None
    store.request_cancel(job.id)
    assert store.requeue_expired() == 1
    ended = store.get_job(job.id)
    assert ended is not None and ended.status is JobStatus.CANCELED
    assert ended.error_name is None and ended.finished_at is not None
