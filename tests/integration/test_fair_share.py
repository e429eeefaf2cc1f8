"""Fair share between tenants: the claim's order, and the queue positions and ETAs that
follow it."""

from __future__ import annotations

from sqlalchemy import update

from reelforge.jobs.queue import QueuePositions
from reelforge.jobs.schema import jobs
from reelforge.jobs.store import Job, JobStore
from reelforge.service.eta import EtaEstimator
from tests.conftest import make_result, make_spec

MODEL = "klingai/v2-master-text-to-video"
OTHER_MODEL = "klingai/v2-master-image-to-video"


def _run_one(store: JobStore, worker: str = "w1") -> Job:
    """Claim the next job, finish it, and return it (a worker doing one job at a time)."""
    lease = store.claim_next_job(worker, [MODEL], lease_seconds=30)
    assert lease is not None
    assert store.complete_job(lease, make_result(lease.job.id))
    return lease.job


def test_a_burst_does_not_starve_another_tenant_with_one_worker(store: JobStore) -> None:
    burst = [store.create_job(make_spec(), tenant="a") for _ in range(10)]
    single = store.create_job(make_spec(), tenant="b")
    order = [_run_one(store).id for _ in range(11)]
    assert order.index(single.id) == 1
    assert [job_id for job_id in order if job_id != single.id] == [job.id for job in burst]


def test_the_tenant_with_fewer_running_jobs_goes_first(store: JobStore) -> None:
    for _ in range(3):
        store.create_job(make_spec(), tenant="a")
    b_jobs = [store.create_job(make_spec(), tenant="b") for _ in range(2)]
    first = store.claim_next_job("w1", [MODEL], lease_seconds=30)  # a's, the oldest
    second = store.claim_next_job("w2", [MODEL], lease_seconds=30)
    third = store.claim_next_job("w3", [MODEL], lease_seconds=30)
    assert first is not None and first.job.tenant == "a"
    assert second is not None and second.job.id == b_jobs[0].id
    # Both tenants run one job; a was served longest ago.
    assert third is not None and third.job.tenant == "a"


def test_priority_orders_tenants_with_as_many_running_jobs(store: JobStore) -> None:
    store.create_job(make_spec(), tenant="a")
    urgent = store.create_job(make_spec(), tenant="b", priority=5)
    assert _run_one(store).id == urgent.id


def test_a_tenant_waiting_only_for_other_models_is_passed_over(store: JobStore) -> None:
    store.create_job(make_spec(model=OTHER_MODEL), tenant="a")
    mine = store.create_job(make_spec(), tenant="b")
    assert _run_one(store).id == mine.id
    assert store.claim_next_job("w1", [MODEL], lease_seconds=30) is None


def test_queue_positions_predict_the_claim_order(store: JobStore) -> None:
    created = [store.create_job(make_spec(), tenant="a") for _ in range(6)]
    created += [store.create_job(make_spec(), tenant="b")]
    created += [store.create_job(make_spec(), tenant="c", priority=p) for p in (0, 0, 3)]
    snapshot = QueuePositions(store, max_age_s=3600, exact_below=0)
    predicted: dict[str, int] = {}
    for job in created:
        position = store.queue_position(job)
        assert position is not None
        predicted[job.id] = position
    assert {job.id: snapshot.position(job) for job in created} == predicted
    order = [_run_one(store).id for _ in created]
    assert sorted(predicted, key=predicted.__getitem__) == order
    assert sorted(predicted.values()) == list(range(len(created)))  # no two share a place


def test_one_tenant_keeps_priority_then_age(store: JobStore) -> None:
    jobs = [store.create_job(make_spec(), priority=p) for p in (0, 2, 0, 2)]
    assert [store.queue_position(job) for job in jobs] == [2, 0, 3, 1]
    assert [_run_one(store).id for _ in jobs] == [jobs[i].id for i in (1, 3, 0, 2)]


RUN_S = 12.0


def _history(store: JobStore, run_s: float) -> None:
    """One earlier job of the model that took `run_s` from its claim to its end (another
    tenant's, so the burst's fair share is its own)."""
    store.create_job(make_spec(), tenant="earlier")
    done = _run_one(store)
    with store.engine.begin() as conn:
        conn.execute(
            update(jobs).where(jobs.c.id == done.id).values(started_at=jobs.c.finished_at - run_s)
        )


def test_the_eta_of_a_tenant_behind_a_burst_follows_its_fair_share_place(
    store: JobStore,
) -> None:
    _history(store, RUN_S)
    store.register_worker("w1", [MODEL], "host", 1, "cpu")
    burst = [store.create_job(make_spec(), tenant="a") for _ in range(10)]
    single = store.create_job(make_spec(), tenant="b")
    estimator = EtaEstimator(store, live_within_s=60)

    position = store.queue_position(single)
    assert position == 1  # behind a's first job only, not its whole burst
    # It and the one job ahead, each of the mean run time, on the one worker.
    assert estimator.estimate(single, position) == 2 * RUN_S
    last = store.queue_position(burst[-1])
    assert last == 10 and estimator.estimate(burst[-1], last) == 11 * RUN_S
    store.register_worker("w2", [MODEL], "host", 2, "cpu")
    fresh = EtaEstimator(store, live_within_s=60)
    assert fresh.estimate(single, position) == RUN_S  # two workers share the two jobs
