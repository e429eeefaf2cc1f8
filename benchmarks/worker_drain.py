"""Benchmark: how fast a worker stops on SIGTERM, and how soon its job runs elsewhere.

Real `reelforge worker` processes on one database (SQLite in a temporary folder, or
`--database-url`), serving the gate fixture engine (steps every 20 ms until released), as the
fault tests do. For each of `--rounds` rounds it prints, in seconds:

- idle: SIGTERM to an idle worker -> its exit;
- drain 0: SIGTERM to a worker mid-job with REELFORGE_DRAIN_SECONDS=0 -> its exit, and
  -> the job claimed again by a second, idle worker (polling every 50 ms);
- finishing: SIGTERM to a worker mid-job (drain 60 s) whose job is released at the same
  moment -> its exit (the last step, encoding and storing a small clip, deregistering).

    python benchmarks/worker_drain.py
    python benchmarks/worker_drain.py --rounds 5 --database-url postgresql+psycopg://postgres@127.0.0.1/test
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reelforge.jobs import JobStatus
from tests.conftest import make_spec
from tests.worker_processes import WorkerPool, wait_until


def _pool(root: Path, database_url: str | None) -> WorkerPool:
    return WorkerPool(root, database_url or f"sqlite:///{root / 'jobs.db'}")


def _succeeded(pool: WorkerPool, job_id: str) -> bool:
    job = pool.store.get_job(job_id)
    return job is not None and job.status is JobStatus.SUCCEEDED


def idle_exit(root: Path, database_url: str | None) -> float:
    pool = _pool(root, database_url)
    try:
        worker = pool.start()
        sent = time.monotonic()
        worker.signal(signal.SIGTERM)
        assert worker.wait_exit(60) == 0
        return time.monotonic() - sent
    finally:
        pool.close()


def drain_zero(root: Path, database_url: str | None) -> tuple[float, float]:
    pool = _pool(root, database_url)
    try:
        first = pool.start(drain_seconds="0")
        job = pool.store.create_job(make_spec())
        pool.wait_started(first)
        second = pool.start()
        second_id = pool.info(second).id  # type: ignore[union-attr]
        sent = time.monotonic()
        first.signal(signal.SIGTERM)
        exited_s = claimed_s = None
        deadline = sent + 60
        while (exited_s is None or claimed_s is None) and time.monotonic() < deadline:
            now = time.monotonic() - sent
            if exited_s is None and first.process.poll() is not None:
                assert first.process.returncode == 0
                exited_s = now
            again = pool.store.get_job(job.id)
            if claimed_s is None and again is not None and again.worker_id == second_id:
                claimed_s = now
            time.sleep(0.005)
        assert exited_s is not None and claimed_s is not None, "timed out"
        # Leave the database as found (a shared one serves the next rounds): the job ends.
        pool.release()
        wait_until(lambda: _succeeded(pool, job.id), 60, "the job to succeed")
        return exited_s, claimed_s
    finally:
        pool.close()


def finishing(root: Path, database_url: str | None) -> float:
    pool = _pool(root, database_url)
    try:
        worker = pool.start(drain_seconds="60")
        job = pool.store.create_job(make_spec())
        pool.wait_started(worker)
        sent = time.monotonic()
        worker.signal(signal.SIGTERM)
        pool.release()
        assert worker.wait_exit(60) == 0
        exit_s = time.monotonic() - sent
        assert _succeeded(pool, job.id)
        return exit_s
    finally:
        pool.close()


def _line(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} median {statistics.median(values):6.3f}  max {max(values):6.3f}  "
        f"({', '.join(f'{v:.3f}' for v in values)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="default: SQLite in a temporary folder")
    args = parser.parse_args()
    idle, zero_exit, zero_claim, finish = [], [], [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="reelforge-drain-") as tmp:
            root = Path(tmp)
            idle.append(idle_exit(root / "idle", args.database_url))
            exit_s, claim_s = drain_zero(root / "zero", args.database_url)
            zero_exit.append(exit_s)
            zero_claim.append(claim_s)
            finish.append(finishing(root / "finish", args.database_url))
    print(f"database: {args.database_url or 'SQLite'}; seconds after SIGTERM, {args.rounds} rounds")
    print(_line("idle worker: exit", idle))
    print(_line("drain 0, mid-job: exit", zero_exit))
    print(_line("drain 0, mid-job: claimed again", zero_claim))
    print(_line("finishing job (released): exit", finish))


if __name__ == "__main__":
    main()
