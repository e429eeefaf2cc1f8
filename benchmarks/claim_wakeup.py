"""Benchmark: how fast an idle worker hears of a new job, and what idle workers write
(scale-out issue, point 2), on PostgreSQL.

In a database of its own (created and dropped here, so `pg_stat_database` counts only this
run), with worker-like claimers in other processes (claim, complete at once, wait: the
worker loop without an engine), it prints:

- the time from create (the insert's commit) to claim, p50 / p99 over `--jobs` jobs created
  one at a time at random moments, for a claimer woken by NOTIFY and for one that only
  polls, at the same poll interval (`--poll-interval`, 1 s so that the difference shows);
- what `--idle-workers` idle claimers write per minute each, over `--idle-seconds`, at the
  default poll interval: "before", a claimer that runs the expired-lease UPDATE and a claim
  at every poll (as the worker loop did); "after", the worker loop now (a claim per poll,
  NOTIFY, the expired-lease recovery every lease / 4), both with the worker's heartbeat.
  Counted three ways: UPDATE / INSERT / DELETE statements the claimers sent, committed
  transactions (`xact_commit`, autocommit reads included) and rows written (`n_tup_ins +
  n_tup_upd + n_tup_del`).

    python benchmarks/claim_wakeup.py [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
        [--jobs 20] [--poll-interval 1.0] [--idle-workers 4] [--idle-seconds 20]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import secrets
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, and_, event, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reelforge.jobs import JobStatus, JobStore, open_engine
from reelforge.jobs.db import db_now
from reelforge.jobs.notify import JobNotifications
from reelforge.jobs.recovery import LeaseRecovery
from reelforge.jobs.result import Artifact, JobResult, StageTimings, VideoArtifact
from reelforge.jobs.schema import jobs, migrate
from reelforge.settings import Settings
from reelforge.spec import GenerationSpec
from reelforge.worker.heartbeat import Heartbeat
from reelforge.worker.runner import wait_for_work

MODEL = "klingai/v2-master-text-to-video"
SPEC = GenerationSpec(model=MODEL, prompt="a red circle", width=64, height=36, num_frames=8, seed=7)
RESULT = JobResult(
    video=VideoArtifact(
        key="jobs/x/video.mp4",
        size=1,
        content_type="video/mp4",
        width=64,
        height=36,
        fps=24,
        frames=8,
    ),
    preview=Artifact(key="jobs/x/preview.gif", size=1, content_type="image/gif"),
    thumbnail=Artifact(key="jobs/x/thumbnail.webp", size=1, content_type="image/webp"),
    engine="none",
    timings=StageTimings(engine_s=0, encode_s=0, store_s=0),
)
LEASE_SECONDS = Settings().lease_seconds


def count_writes(engine: Engine) -> dict[str, int]:
    """Counts the UPDATE / INSERT / DELETE statements `engine` sends, into the dict returned."""
    counts = {"writes": 0}

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().split(" ", 1)[0].upper() in ("UPDATE", "INSERT", "DELETE"):
            counts["writes"] += 1

    return counts


def requeue_expired_as_it_was(store: JobStore) -> None:
    """What `requeue_expired` cost an idle database before it read first: an UPDATE of the
    expired leases, in a transaction of its own, that matched nothing."""
    expired = and_(
        jobs.c.status == JobStatus.RUNNING.value, jobs.c.lease_expires_at < db_now(store.engine)
    )
    with store.engine.begin() as conn:
        conn.execute(jobs.update().where(expired).values(updated_at=db_now(store.engine)))


def claimer(
    url: str, mode: str, worker_id: str, poll_s: float, stop: Any, ready: Any, sent: Any
) -> None:
    """A worker-like loop in a process of its own. mode: "poll" (claim, then wait a poll),
    "notify" (the same, woken by NOTIFY and running the periodic recovery: the worker loop
    now), "before" (`requeue_expired` and a claim at every poll, as the loop was)."""
    engine = open_engine(url, pool_size=4)
    counts = count_writes(engine)
    store = JobStore(engine)
    local_stop = threading.Event()
    heartbeat = Heartbeat(store, worker_id, LEASE_SECONDS, LEASE_SECONDS / 3)
    wake, notifications, recovery = None, None, None
    if mode == "notify":
        notifications = JobNotifications(engine, [MODEL])
        notifications.start()
        wake = notifications.wake
        recovery = LeaseRecovery(store, LEASE_SECONDS / 4)
        recovery.start_thread()
    heartbeat.start()
    threading.Thread(target=lambda: (stop.wait(), local_stop.set()), daemon=True).start()
    ready.put(worker_id)
    while not local_stop.is_set():
        if mode == "before":
            requeue_expired_as_it_was(store)
        lease = store.claim_next_job(worker_id, [MODEL], LEASE_SECONDS)
        if lease is not None:
            store.complete_job(lease, RESULT)
            continue
        wait_for_work(wake, local_stop, poll_s)
    if notifications is not None:
        notifications.stop()
    if recovery is not None:
        recovery.stop_thread()
    heartbeat.stop()
    sent.put(counts["writes"])
    engine.dispose()  # the backends exit, flushing their statistics


@contextmanager
def registered(url: str, ids: list[str]) -> Iterator[None]:
    """Worker rows for `ids`, written and removed here, so that the claimers' own writes to
    `workers` are only their heartbeats."""
    engine = open_engine(url)
    store = JobStore(engine)
    for worker_id in ids:
        store.register_worker(worker_id, [MODEL], "bench", 0)
    engine.dispose()  # its backend exits and reports these writes now, not in the window
    try:
        yield
    finally:
        for worker_id in ids:
            store.remove_worker(worker_id)
        engine.dispose()


@contextmanager
def claimers(url: str, mode: str, ids: list[str], poll_s: float) -> Iterator[list[int]]:
    """A claimer process per id, all in their loops for the block; the processes have
    exited after it, and the list holds the write statements each sent."""
    context = multiprocessing.get_context("spawn")
    stop, ready, sent = context.Event(), context.Queue(), context.Queue()
    processes = [
        context.Process(target=claimer, args=(url, mode, worker_id, poll_s, stop, ready, sent))
        for worker_id in ids
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    writes: list[int] = []
    try:
        yield writes
    finally:
        stop.set()
        writes.extend(sent.get(timeout=60) for _ in processes)
        for process in processes:
            process.join(timeout=30)


def wait_until_started(store: JobStore, job_id: str, timeout_s: float = 30) -> float:
    """Seconds from the job's creation to its claim, by the database's clock."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = store.get_job(job_id)
        if job is not None and job.status is not JobStatus.QUEUED and job.started_at:
            return job.started_at - job.created_at
        time.sleep(0.002)
    raise RuntimeError(f"job {job_id} was not claimed within {timeout_s:g} s")


def create_to_claim(url: str, mode: str, jobs: int, poll_s: float) -> list[float]:
    engine = open_engine(url)
    store = JobStore(engine)
    rng = random.Random(7)
    latencies = []
    ids = [f"bench-{mode}"]
    with registered(url, ids), claimers(url, mode, ids, poll_s):
        for _ in range(jobs):
            time.sleep(rng.uniform(0, poll_s))  # at a random moment of the claimer's wait
            latencies.append(wait_until_started(store, store.create_job(SPEC).id))
    engine.dispose()
    return latencies


def commits(admin: Engine, database: str) -> int:
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        query = text("SELECT xact_commit FROM pg_stat_database WHERE datname = :d")
        return int(conn.execute(query, {"d": database}).scalar_one())


def rows_written(admin: Engine, url: str) -> int:
    """Rows inserted, updated and deleted in the benchmark's database (its own tables)."""
    engine = open_engine(url)
    query = "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        rows = int(conn.execute(text(query)).scalar_one())
    engine.dispose()
    return rows


def idle_writes(
    url: str, admin: Engine, database: str, mode: str, workers: int, seconds: float, poll_s: float
) -> dict[str, float]:
    ids = [f"bench-{mode}-{n}" for n in range(workers)]
    with registered(url, ids):
        with claimers(url, mode, ids, poll_s) as writes:
            started = time.monotonic()
            rows_before, commits_before = rows_written(admin, url), commits(admin, database)
            time.sleep(seconds)
            elapsed = time.monotonic() - started
        time.sleep(1.5)  # exited backends' statistics reach pg_stat_* within a second
        rows_after, commits_after = rows_written(admin, url), commits(admin, database)
    per_minute = 60 / elapsed / workers
    return {
        "statements": sum(writes) * per_minute,
        "commits": (commits_after - commits_before) * per_minute,
        "rows": (rows_after - rows_before) * per_minute,
    }


def describe(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[max(0, round(len(ordered) * 0.99) - 1)]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms"


@contextmanager
def scratch_database(base_url: str) -> Iterator[tuple[str, Engine, str]]:
    """A database of its own for the run: (its URL, an admin engine, its name)."""
    name = f"reelforge_bench_{secrets.token_hex(4)}"
    admin = open_engine(base_url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url, admin, name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    parser.add_argument("--jobs", type=int, default=20, help="jobs per wake-up mode")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="for the wake-up")
    parser.add_argument("--idle-workers", type=int, default=4)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument(
        "--idle-poll-interval", type=float, default=Settings().poll_interval_s, help="idle"
    )
    args = parser.parse_args()

    with scratch_database(args.database_url) as (url, admin, name):
        engine = open_engine(url)
        migrate(engine)
        engine.dispose()
        print(f"PostgreSQL, database {name}; claimers in their own processes")
        print(f"\ncreate -> claim, {args.jobs} jobs, poll interval {args.poll_interval:g} s:")
        polled = create_to_claim(url, "poll", args.jobs, args.poll_interval)
        print(f"  polling only   {describe(polled)}")
        woken = create_to_claim(url, "notify", args.jobs, args.poll_interval)
        print(f"  NOTIFY         {describe(woken)}")
        ratio = statistics.median(polled) / statistics.median(woken)
        print(f"  ratio (polling / NOTIFY), p50: x{ratio:.0f}")

        print(
            f"\nidle workers: {args.idle_workers} for {args.idle_seconds:g} s, poll interval "
            f"{args.idle_poll_interval:g} s, lease {LEASE_SECONDS:g} s; per worker per minute:"
        )
        print(f"  {'':28}{'write statements':>18}{'commits':>10}{'rows written':>14}")
        figures = {}
        for mode, label in (("before", "before (recovery per poll)"), ("notify", "after")):
            figures[mode] = idle_writes(
                url,
                admin,
                name,
                mode,
                args.idle_workers,
                args.idle_seconds,
                args.idle_poll_interval,
            )
            f = figures[mode]
            print(f"  {label:28}{f['statements']:18.1f}{f['commits']:10.1f}{f['rows']:14.1f}")
        ratio = figures["before"]["statements"] / max(figures["notify"]["statements"], 1e-9)
        print(f"  write statements, before / after: x{ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
