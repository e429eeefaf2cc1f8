"""Benchmark: what one `/metrics` read of the job database costs (`jobs.stats.JobStats`).

Fills a fresh SQLite database (and PostgreSQL with `--postgres URL`, in a private schema)
with `--jobs` jobs, half succeeded with stage timings and half queued, over two models, and
prints the median seconds of `JobStats.snapshot` over `--rounds` reads. The API reuses one
snapshot for `REELFORGE_METRICS_MAX_AGE_S` (5 s), so this is the cost per interval, not per
scrape.

    python benchmarks/metrics_snapshot.py [--jobs 10000] [--rounds 7]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Engine, insert, text

from reelforge.api.metrics import STAGE_BUCKETS_S
from reelforge.jobs import open_engine
from reelforge.jobs.schema import jobs, migrate
from reelforge.jobs.stats import JobStats

MODELS = ("klingai/v2-master-text-to-video", "klingai/v2-master-image-to-video")


def fill(engine: Engine, count: int) -> None:
    now = time.time()
    timings = {"engine_s": 42.0, "encode_s": 1.5, "store_s": 0.05}
    rows = []
    for n in range(count):
        done = n % 2 == 0
        rows.append(
            {
                "id": f"job-{n}",
                "model": MODELS[n % 4 // 2],
                "status": "succeeded" if done else "queued",
                "spec": "{}",
                "tenant": "t",
                "max_attempts": 3,
                "created_at": now - 100,
                "started_at": now - 90 if done else None,
                "finished_at": now - 40 if done else None,
                "updated_at": now,
                "result": json.dumps({"timings": timings}) if done else None,
            }
        )
    with engine.begin() as conn:
        conn.execute(insert(jobs), rows)


def measure(url: str, count: int, rounds: int) -> float:
    engine = open_engine(url)
    try:
        migrate(engine)
        fill(engine, count)
        stats = JobStats(engine, STAGE_BUCKETS_S)
        stats.snapshot(60)  # warm the cache of pages and plans
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            stats.snapshot(60)
            times.append(time.perf_counter() - started)
        return statistics.median(times)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        seconds = measure(f"sqlite:///{Path(tmp) / 'jobs.db'}", args.jobs, args.rounds)
        print(f"sqlite      {args.jobs} jobs: {seconds * 1000:.1f} ms per snapshot")
    if args.postgres:
        schema = f"bench_{secrets.token_hex(4)}"
        admin = open_engine(args.postgres)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            separator = "&" if "?" in args.postgres else "?"
            url = f"{args.postgres}{separator}options={quote(f'-csearch_path={schema}')}"
            seconds = measure(url, args.jobs, args.rounds)
            print(f"postgresql  {args.jobs} jobs: {seconds * 1000:.1f} ms per snapshot")
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
