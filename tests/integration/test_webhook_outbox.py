"""The webhook outbox on real SQLite and PostgreSQL: what is due, claims, ordering per
generation, retries, expired claims and the fence on a stale sender's outcome."""

from __future__ import annotations

import threading

from reelforge.jobs import Job, JobStore
from reelforge.jobs.store import Lease, WebhookSubscription
from reelforge.jobs.webhooks import Delivery, DeliveryStatus, WebhookOutbox
from tests.conftest import make_spec
from tests.integration.test_job_store import MODEL, make_result

EVERY_EVENT = ("started", "progress", "completed", "failed", "canceled")
CLAIM_S = 60.0


def subscribed_job(store: JobStore, events: tuple[str, ...] = EVERY_EVENT) -> Job:
    return store.create_job(
        make_spec(), webhook=WebhookSubscription("http://127.0.0.1:9/hook", events)
    )


def run_to_completion(store: JobStore) -> Lease:
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None
    assert store.complete_job(lease, make_result(lease.job_id))
    return lease


def fail(outbox: WebhookOutbox, delivery: Delivery, retry_in_s: float | None = 0.0) -> bool:
    return outbox.record_attempt(
        delivery,
        status_code=500,
        error=None,
        duration_s=0.01,
        delivered=False,
        retry_in_s=retry_in_s,
    )


def deliver(outbox: WebhookOutbox, delivery: Delivery) -> bool:
    return outbox.record_attempt(
        delivery, status_code=200, error=None, duration_s=0.01, delivered=True, retry_in_s=None
    )


def test_only_the_oldest_open_delivery_of_a_job_is_due(store: JobStore) -> None:
    outbox = WebhookOutbox(store.engine)
    job = subscribed_job(store)
    run_to_completion(store)
    started = outbox.claim_due(10, CLAIM_S)
    assert [(d.job_id, d.event_type, d.attempts) for d in started] == [(job.id, "started", 1)]
    # `completed` waits behind `started`, however often the dispatcher looks.
    assert outbox.claim_due(10, CLAIM_S) == []
    assert fail(outbox, started[0])
    retried = outbox.claim_due(10, CLAIM_S)
    assert [(d.id, d.attempts) for d in retried] == [(started[0].id, 2)]
    assert deliver(outbox, retried[0])
    [completed] = outbox.claim_due(10, CLAIM_S)
    assert (completed.event_type, completed.attempts) == ("completed", 1)


def test_a_delivery_given_up_on_lets_the_next_one_go(store: JobStore) -> None:
    outbox = WebhookOutbox(store.engine)
    subscribed_job(store)
    run_to_completion(store)
    [started] = outbox.claim_due(10, CLAIM_S)
    assert fail(outbox, started, retry_in_s=None)
    [completed] = outbox.claim_due(10, CLAIM_S)
    assert completed.event_type == "completed"
    [(first, _), (second, _)] = outbox.deliveries_of(started.job_id)
    assert (first.status, second.status) == (DeliveryStatus.FAILED, DeliveryStatus.SENDING)


def test_a_retry_waits_for_its_time(store: JobStore) -> None:
    outbox = WebhookOutbox(store.engine)
    subscribed_job(store, ("started",))
    store.claim_next_job("w1", [MODEL], lease_seconds=30)
    [started] = outbox.claim_due(10, CLAIM_S)
    assert fail(outbox, started, retry_in_s=3600)
    assert outbox.claim_due(10, CLAIM_S) == []
    [(delivery, attempts)] = outbox.deliveries_of(started.job_id)
    assert delivery.status is DeliveryStatus.PENDING
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 500)]


def test_a_failing_receiver_of_one_job_holds_up_no_other(store: JobStore) -> None:
    outbox = WebhookOutbox(store.engine)
    first, second = subscribed_job(store), subscribed_job(store)
    store.claim_next_job("w1", [MODEL], lease_seconds=30)
    second_lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert second_lease is not None and second_lease.job_id == second.id
    store.complete_job(second_lease, make_result(second.id))
    claimed = {d.job_id: d for d in outbox.claim_due(10, CLAIM_S)}
    assert sorted(claimed) == sorted([first.id, second.id])
    assert fail(outbox, claimed[first.id], retry_in_s=3600)
    assert deliver(outbox, claimed[second.id])
    [following] = outbox.claim_due(10, CLAIM_S)
    assert (following.job_id, following.event_type) == (second.id, "completed")


def test_an_expired_claim_is_due_again_with_the_interrupted_attempt_shown(
    store: JobStore,
) -> None:
    outbox = WebhookOutbox(store.engine)
    job = subscribed_job(store, ("completed",))
    run_to_completion(store)
    [lost] = outbox.claim_due(10, claim_s=0)  # its sender "dies": the claim lapses at once
    [again] = outbox.claim_due(10, CLAIM_S)
    assert (again.id, again.attempts) == (lost.id, 2)
    # The dead sender's outcome, arriving late, changes nothing; the live one's counts.
    assert not deliver(outbox, lost)
    assert fail(outbox, again, retry_in_s=3600)
    [(delivery, attempts)] = outbox.deliveries_of(job.id)
    assert delivery.status is DeliveryStatus.PENDING
    # The lapsed attempt, the dead sender's late outcome of it, then the retry.
    assert [a.attempt for a in attempts] == [1, 1, 2]
    assert attempts[0].error is not None and "no outcome" in attempts[0].error


def test_concurrent_claims_never_take_the_same_delivery(store: JobStore) -> None:
    outbox = WebhookOutbox(store.engine)
    for _ in range(12):
        subscribed_job(store, ("started",))
        store.claim_next_job("w1", [MODEL], lease_seconds=30)
    taken: list[str] = []
    lock = threading.Lock()

    def claim() -> None:
        for _ in range(6):
            got = outbox.claim_due(2, CLAIM_S)
            with lock:
                taken.extend(d.id for d in got)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == len(set(taken)) == 12


def test_the_first_body_stays_fixed(store: JobStore) -> None:
    outbox = WebhookOutbox(store.engine)
    subscribed_job(store, ("started",))
    store.claim_next_job("w1", [MODEL], lease_seconds=30)
    [delivery] = outbox.claim_due(10, CLAIM_S)
    assert outbox.fix_body(delivery.id, '{"a":1}') == '{"a":1}'
    assert outbox.fix_body(delivery.id, '{"a":2}') == '{"a":1}'
    assert fail(outbox, delivery)
    [again] = outbox.claim_due(10, CLAIM_S)
    assert again.body == '{"a":1}'


def test_deleting_a_job_removes_its_deliveries(store: JobStore) -> None:
    outbox = WebhookOutbox(store.engine)
    job = subscribed_job(store)
    run_to_completion(store)
    store.delete_job(job.id)
    assert outbox.claim_due(10, CLAIM_S) == []
    assert outbox.deliveries_of(job.id) == []
