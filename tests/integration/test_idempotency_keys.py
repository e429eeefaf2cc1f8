"""Idempotency-key reservations on real SQLite and PostgreSQL."""

from __future__ import annotations

import threading

from sqlalchemy import update

from reelforge.jobs import JobStore, open_engine
from reelforge.jobs.idempotency import IdempotencyKeys
from reelforge.jobs.schema import idempotency_keys, migrate
from tests.conftest import make_spec


def keys_for(store: JobStore, stale_after_s: float = 60) -> IdempotencyKeys:
    return IdempotencyKeys(store.engine, ttl_s=3600, stale_after_s=stale_after_s)


def test_the_first_reservation_wins_and_the_rest_find_it(store: JobStore) -> None:
    keys = keys_for(store)
    first = keys.reserve("a", "k", "hash-1", "job-1")
    assert first.mine and not first.job_exists
    again = keys.reserve("a", "k", "hash-1", "job-2")
    assert not again.mine and again.job_id == "job-1" and again.request_hash == "hash-1"
    store.create_job(make_spec(), tenant="a", job_id="job-1")
    assert keys.reserve("a", "k", "hash-1", "job-3").job_exists
    # Another tenant's key of the same name is its own.
    assert keys.reserve("b", "k", "hash-9", "job-4").mine


def test_a_released_or_stale_reservation_is_taken_over(store: JobStore) -> None:
    keys = keys_for(store, stale_after_s=30)
    assert keys.reserve("a", "k", "h", "job-1").mine
    keys.release("a", "k", "job-2")  # not the holder: nothing happens
    assert not keys.reserve("a", "k", "h", "job-3").mine
    keys.release("a", "k", "job-1")
    assert keys.reserve("a", "k", "h", "job-4").mine
    # The holder's server died before inserting its job: once stale, the key moves on.
    with store.engine.begin() as conn:
        conn.execute(update(idempotency_keys).values(created_at=idempotency_keys.c.created_at - 31))
    taken = keys.reserve("a", "k", "h", "job-5")
    assert taken.mine and taken.job_id == "job-5"


def test_an_expired_key_is_free_again(store: JobStore) -> None:
    keys = IdempotencyKeys(store.engine, ttl_s=-1, stale_after_s=60)
    assert keys.reserve("a", "k", "h1", "job-1").mine
    assert keys.reserve("a", "k", "h2", "job-2").mine
    assert keys.sweep() == 1


def test_racing_reservations_have_one_winner(database_url: str) -> None:
    engines = [open_engine(database_url) for _ in range(4)]
    migrate(engines[0])
    winners: list[str] = []
    start = threading.Barrier(len(engines))

    def race(i: int) -> None:
        keys = IdempotencyKeys(engines[i], ttl_s=3600, stale_after_s=60)
        start.wait()
        held = keys.reserve("a", "raced", "h", f"job-{i}")
        if held.mine:
            winners.append(held.job_id)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for engine in engines:
        engine.dispose()
    assert len(winners) == 1
