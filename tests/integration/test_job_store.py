"""The job store on real SQLite and real PostgreSQL: claims, leases, fencing, retries."""

from __future__ import annotations

import logging
import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select, text

from reelforge.jobs import JobStatus, JobStore, LeaseCheck, open_engine, schema
from reelforge.jobs.queue import QueuePositions
from reelforge.jobs.schema import migrate, webhook_deliveries
from reelforge.jobs.store import WebhookSubscription
from tests.conftest import make_result, make_spec

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
    assert store.requeue_expired() == 1  # the periodic recovery (jobs.recovery)
    fresh = store.claim_next_job("w2", [MODEL], lease_seconds=30)
    assert fresh is not None and fresh.job.id == stale.job.id
    assert fresh.job.attempts == 2
    assert not store.report_progress(stale, 0.5)
    assert not store.renew_lease(stale, 30)
    assert not store.complete_job(stale, make_result("stale"))
    assert store.fail_job(stale, name="x", message="stale") is None
    assert store.complete_job(fresh, make_result("fresh"))
    done = store.get_job(fresh.job.id)
    assert done is not None
    assert done.status is JobStatus.SUCCEEDED
    assert done.result == make_result("fresh")


def test_expired_lease_past_attempt_limit_fails_the_job(store: JobStore) -> None:
    job = store.create_job(make_spec())
    for worker in ("w1", "w2"):  # max_attempts is 2 in this fixture
        lease = store.claim_next_job(worker, [MODEL], lease_seconds=-1)  # expired
        assert lease is not None and lease.job.id == job.id
        assert store.requeue_expired() == 1
    failed = store.get_job(job.id)
    assert failed is not None
    assert failed.status is JobStatus.FAILED
    assert failed.error_name == "worker_lost"
    assert "stopped responding" in (failed.error_message or "")
    assert failed.finished_at is not None


def test_a_claim_leaves_expired_leases_to_the_periodic_recovery(store: JobStore) -> None:
    job = store.create_job(make_spec())
    lost = store.claim_next_job("w1", [MODEL], lease_seconds=-1)  # its worker died
    assert lost is not None
    assert store.claim_next_job("w2", [MODEL], lease_seconds=30) is None
    assert store.get_job(job.id).status is JobStatus.RUNNING  # type: ignore[union-attr]
    assert store.requeue_expired() == 1
    assert store.requeue_expired() == 0  # nothing left expired: a read, no write
    again = store.claim_next_job("w2", [MODEL], lease_seconds=30)
    assert again is not None and again.job.id == job.id and again.job.attempts == 2


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


def test_engine_steps_are_recorded_per_run(store: JobStore) -> None:
    store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None and (lease.job.step, lease.job.steps) == (None, None)
    assert store.report_progress(lease, 0.3, (3, 10))
    job = store.get_job(lease.job_id)
    assert job is not None and (job.step, job.steps) == (3, 10)
    # Progress without a step (the encode stage) keeps the last step reported.
    assert store.report_progress(lease, 0.95)
    job = store.get_job(lease.job_id)
    assert job is not None and (job.step, job.steps, job.progress) == (3, 10, 0.95)


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


def test_migrations_build_exactly_the_current_tables(database_url: str) -> None:
    engine = open_engine(database_url)
    migrate(engine)
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    engine.dispose()
    assert differences == []


def test_a_first_release_database_keeps_its_jobs(database_url: str) -> None:
    """The first release stamped its own `schema_migrations` table (version 1) and had no
    alembic table: migrate adopts it as revision 0001 and applies only what came after."""
    engine = open_engine(database_url)
    config = Config()
    config.set_main_option("script_location", "reelforge.jobs:migrations")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(
            text("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT)")
        )
        conn.execute(text("INSERT INTO schema_migrations VALUES (1, 'baseline')"))
        conn.execute(
            text(
                "INSERT INTO jobs (id, model, status, spec, max_attempts, created_at, updated_at)"
                " VALUES ('old-job', :model, 'succeeded', :spec, 3, 1.0, 1.0)"
            ),
            {"model": MODEL, "spec": make_spec().model_dump_json()},
        )
    later_revisions = len(list(ScriptDirectory.from_config(config).walk_revisions())) - 1
    assert migrate(engine) == later_revisions  # everything after 0001, and 0001 not again
    assert migrate(engine) == 0
    old = JobStore(engine).get_job("old-job")
    engine.dispose()
    assert old is not None and old.status is JobStatus.SUCCEEDED and old.dialect == "aimlapi"


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
    assert lease is not None and store.complete_job(lease, make_result("v"))
    after = store.request_cancel(job.id)
    assert after is not None and after.status is JobStatus.SUCCEEDED
    assert not after.cancel_requested
    assert store.request_cancel("no-such-job") is None


def test_stale_lease_is_lost_to_the_new_owner(store: JobStore) -> None:
    store.create_job(make_spec())
    stale = store.claim_next_job("w1", [MODEL], lease_seconds=-1)  # already expired
    assert stale is not None
    assert store.requeue_expired() == 1  # the periodic recovery (jobs.recovery)
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


def event_types(store: JobStore, job_id: str) -> list[str]:
    return [event.type.value for event in store.events_after(job_id)]


def test_every_transition_writes_its_event(
    store: JobStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="reelforge.jobs.store")
    done = store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None
    for progress in (0.01, 0.02, 0.3, 0.31, 0.9):
        assert store.report_progress(lease, progress)
    assert store.complete_job(lease, make_result("done"))
    # Progress events only where a 5 % milestone was crossed: 0.3 and 0.9, not the rest.
    assert event_types(store, done.id) == [
        "created",
        "started",
        "progress",
        "progress",
        "succeeded",
    ]
    events = store.events_after(done.id)
    assert [e.progress for e in events if e.type.value == "progress"] == [0.3, 0.9]
    assert events[-1].status is JobStatus.SUCCEEDED and events[-1].terminal
    assert store.events_after(done.id, after_seq=events[2].seq) == events[3:]

    canceled = store.create_job(make_spec())
    store.request_cancel(canceled.id)
    assert event_types(store, canceled.id) == ["created", "canceled"]

    retried = store.create_job(make_spec())
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None and lease.job.id == retried.id
    assert store.fail_job(lease, name="flaky", message="m", retryable=True) is JobStatus.QUEUED
    lost = store.claim_next_job("w1", [MODEL], lease_seconds=-1)
    assert lost is not None and lost.job.id == retried.id
    store.requeue_expired()  # max_attempts is 2: the lost second run fails the job
    assert event_types(store, retried.id) == ["created", "started", "requeued", "started", "failed"]
    assert store.events_after(retried.id)[-1].data == {"error": "worker_lost"}

    # And one log line per transition (progress only at DEBUG), carrying the job's id.
    for job in (done, canceled, retried):
        logged = [
            getattr(r, "event", None)
            for r in caplog.records
            if r.levelno == logging.INFO and getattr(r, "job_id", None) == job.id
        ]
        assert logged == [t for t in event_types(store, job.id) if t != "progress"], job.id


def test_webhook_deliveries_follow_the_subscription(store: JobStore) -> None:
    subscription = WebhookSubscription("https://hooks.example/x", ("started", "completed"))
    job = store.create_job(make_spec(), webhook=subscription)
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None
    store.report_progress(lease, 0.5)
    store.complete_job(lease, make_result("hooked"))
    plain = store.create_job(make_spec())
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(webhook_deliveries).order_by(webhook_deliveries.c.event_seq)
        ).all()
    assert [(r.job_id, r.event_type, r.status) for r in rows] == [
        (job.id, "started", "pending"),
        (job.id, "completed", "pending"),
    ]
    assert len({r.id for r in rows}) == 2 and plain.webhook is None
    assert store.get_job(job.id).webhook == subscription  # type: ignore[union-attr]


def test_list_pages_through_a_tenants_jobs_newest_first(store: JobStore) -> None:
    mine = [store.create_job(make_spec(), tenant="a").id for _ in range(7)]
    store.create_job(make_spec(), tenant="b")
    seen: list[str] = []
    after = None
    while True:
        page = store.list_jobs("a", limit=3, after=after)
        seen += [job.id for job in page.jobs]
        if not page.has_more:
            break
        after = page.jobs[-1].id
    assert seen == mine[::-1]
    store.request_cancel(mine[0])
    canceled = store.list_jobs("a", limit=10, status=[JobStatus.CANCELED])
    assert [job.id for job in canceled.jobs] == [mine[0]]
    assert store.list_jobs("a", limit=10, model="other/model").jobs == []
    assert store.list_jobs("b", limit=10, after=mine[3]).jobs == []  # not b's cursor


def test_delete_removes_the_job_and_leaves_one_event(store: JobStore) -> None:
    job = store.create_job(
        make_spec(), webhook=WebhookSubscription("https://h.example", ("canceled",))
    )
    store.request_cancel(job.id)
    deleted = store.delete_job(job.id)
    assert deleted is not None and deleted.id == job.id
    assert store.get_job(job.id) is None and store.delete_job(job.id) is None
    assert event_types(store, job.id) == ["deleted"]
    with store.engine.connect() as conn:
        assert conn.execute(select(webhook_deliveries)).all() == []


def test_expired_jobs_are_the_finished_ones_past_their_retention(store: JobStore) -> None:
    old = store.create_job(make_spec(), keep_for_s=-1)
    store.request_cancel(old.id)
    store.create_job(make_spec(), keep_for_s=-1)  # still queued: never swept
    store.create_job(make_spec(), keep_for_s=3600)
    kept = store.create_job(make_spec())  # no retention: kept until deleted
    store.request_cancel(kept.id)
    assert [job.id for job in store.expired_jobs()] == [old.id]


def test_queue_positions_from_a_snapshot_match_the_exact_count(store: JobStore) -> None:
    jobs = [store.create_job(make_spec(), priority=p) for p in (0, 0, 5, 0)]
    exact = QueuePositions(store, max_age_s=0, exact_below=0)
    assert [exact.position(j) for j in jobs] == [store.queue_position(j) for j in jobs]
    assert [exact.position(j) for j in jobs] == [1, 2, 0, 3]
    cached = QueuePositions(store, max_age_s=3600, exact_below=0)
    near_front = QueuePositions(store, max_age_s=3600, exact_below=10)
    assert near_front.position(jobs[3]) == 3
    assert cached.position(jobs[3]) == 3
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)  # takes the priority job
    assert lease is not None and lease.job.id == jobs[2].id
    # The cached snapshot still counts the claimed job ahead; a fresh read does not, nor does
    # the exact count answered near the front.
    assert cached.position(jobs[3]) == 3 and exact.position(jobs[3]) == 2
    assert near_front.position(jobs[3]) == 2
    assert exact.position(lease.job) is None


def test_an_event_seq_is_never_reused(store: JobStore) -> None:
    """A consumer that saw seq N must see every later event: a delete removes the job's
    events (the newest rows) and writes `deleted`, which must still come after N."""
    job = store.create_job(make_spec())
    store.request_cancel(job.id)
    seen = store.events_after(job.id)[-1].seq
    store.delete_job(job.id)
    assert [e.type.value for e in store.events_after(job.id, after_seq=seen)] == ["deleted"]
