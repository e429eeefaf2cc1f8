"""An idle worker's claim loop writes nothing, on real SQLite and real PostgreSQL: a claim on
a queue with nothing for it, and a lease-recovery pass with no lease expired, are reads. (A
write per poll would keep every idle worker's database busy: SQLite's one write lock, WAL and
vacuum on PostgreSQL.) The statements are counted as benchmarks/claim_wakeup.py counts them."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from reelforge.jobs import JobStore
from reelforge.worker.runner import wait_for_work
from tests.conftest import make_spec

MODEL = "klingai/v2-master-text-to-video"
OTHER_MODEL = "klingai/v2-master-image-to-video"
CLAIMS = 20


def count_writes(engine: Engine) -> Counter[str]:
    """Counts the INSERT / UPDATE / DELETE statements `engine` sends from now on, by verb."""
    counts: Counter[str] = Counter()

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        verb = statement.lstrip().split(" ", 1)[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE"):
            counts[verb] += 1

    return counts


def idle_loop(store: JobStore, worker_id: str) -> None:
    """What the worker loop does between jobs, `CLAIMS` times: claim, find nothing, wait (no
    time here), and the periodic requeue of expired leases."""
    stop = threading.Event()
    for _ in range(CLAIMS):
        assert store.claim_next_job(worker_id, [MODEL], lease_seconds=30) is None
        assert store.requeue_expired() == 0
        wait_for_work(None, stop, 0)


def test_claims_on_an_empty_queue_write_nothing(store: JobStore) -> None:
    writes = count_writes(store.engine)
    idle_loop(store, "w1")
    assert writes == Counter()


def test_claims_with_nothing_for_this_worker_write_nothing(store: JobStore) -> None:
    """Jobs of another model wait, and another worker runs one under a live lease."""
    store.create_job(make_spec(model=OTHER_MODEL), tenant="a")
    store.create_job(make_spec(), tenant="b")
    running = store.claim_next_job("w2", [MODEL], lease_seconds=300)
    assert running is not None
    writes = count_writes(store.engine)
    idle_loop(store, "w1")
    assert writes == Counter()


def test_the_count_sees_a_claim_that_finds_a_job(store: JobStore) -> None:
    """The control: the same count on a claim that takes a job sees its writes."""
    store.create_job(make_spec())
    writes = count_writes(store.engine)
    assert store.claim_next_job("w1", [MODEL], lease_seconds=30) is not None
    assert writes["UPDATE"] >= 1 and writes["INSERT"] >= 1, writes
