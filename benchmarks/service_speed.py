"""Benchmark: the service path against its ceiling (service-speed issue).

For SQLite and (when reachable) PostgreSQL, with `--jobs` generations in the table (half
finished, half queued), it starts `reelforge serve` with no workers (only the API is
measured) and, beside it, a bare FastAPI app under the same uvicorn settings answering a
static JSON body of the same size as a poll (the ceiling). wrk (a second process on
loopback) then drives, in interleaved rounds:

- polls of a finished generation, polls of a queued one (deep in the queue), creates;
- the same request count against the ceiling,

and prints req/s, p50 and p99 latency, and the ratio to the ceiling of the same round. Then
the claim: the median time of `JobStore.claim_next_job` with 10,000 and 100,000 queued jobs.
Media time and worker memory have their own benchmarks (media_encode.py, media_memory.py).

    apt-get install wrk        # Debian's package; the load generator
    python benchmarks/service_speed.py [--jobs 10000] [--seconds 5] [--rounds 3]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reelforge.api.auth import LOCAL_TENANT
from reelforge.demo import free_port
from reelforge.jobs import JobStatus, open_store
from reelforge.jobs.schema import jobs as jobs_table
from reelforge.spec import GenerationSpec

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "tests" / "fixtures" / "testsrc.toml"
T2V = "klingai/v2-master-text-to-video"
CREATE_BODY = json.dumps({"model": T2V, "prompt": "a red circle moving left", "seed": 7})

CEILING_APP = textwrap.dedent(
    """
    import json, sys
    import uvicorn
    from fastapi import FastAPI, Response
    body = open(sys.argv[2], "rb").read()
    app = FastAPI()

    @app.get("/static")
    async def static() -> Response:
        return Response(body, media_type="application/json")

    @app.post("/static")
    async def static_post() -> Response:
        return Response(body, media_type="application/json")

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False, timeout_graceful_shutdown=5)
    """
)

# Each poll names one of the given jobs at random, as many clients polling their own jobs
# would: one job polled by every connection would let the server's caches (and PostgreSQL's
# batched reads, which share a read of the same job) answer what no real load asks.
WRK_POLLS = textwrap.dedent(
    """
    local ids = {%s}
    request = function()
      return wrk.format(nil, "%s" .. ids[math.random(#ids)])
    end
    """
)

WRK_POST = textwrap.dedent(
    """
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    wrk.body = [[%s]]
    """
)


def spec() -> GenerationSpec:
    return GenerationSpec(
        model=T2V,
        prompt="a red circle moving left",
        width=1280,
        height=720,
        num_frames=120,
        seed=7,
    )


def fill(
    database_url: str, count: int, tenants: int = 1, polled: int = 256
) -> tuple[list[str], list[str]]:
    """Insert `count` jobs, half succeeded then half queued, spread over `tenants` tenants;
    return the ids of the first `polled` finished ones and of the last `polled` queued
    ones (the deepest in the queue)."""
    store = open_store(database_url)
    now = time.time()
    spec_json = spec().model_dump_json()
    result = json.dumps(
        {
            "video": {
                "key": "jobs/x/video.mp4",
                "size": 500000,
                "content_type": "video/mp4",
                "width": 1280,
                "height": 720,
                "fps": 24,
                "frames": 120,
            },
            "preview": {"key": "jobs/x/preview.gif", "size": 90000, "content_type": "image/gif"},
            "thumbnail": {
                "key": "jobs/x/thumbnail.webp",
                "size": 9000,
                "content_type": "image/webp",
            },
            "engine": "testsrc",
            "meta": {},
            "timings": {"engine_s": 1, "encode_s": 1, "store_s": 0.1},
        }
    )
    rows: list[dict[str, Any]] = []
    for i in range(count):
        finished = i < count // 2
        rows.append(
            {
                "id": f"bench-{i:07d}-{secrets.token_hex(4)}",
                "model": T2V,
                "status": (JobStatus.SUCCEEDED if finished else JobStatus.QUEUED).value,
                "spec": spec_json,
                "tenant": LOCAL_TENANT if tenants == 1 else f"tenant-{i % tenants}",
                "max_attempts": 3,
                "result": result if finished else None,
                "progress": 1.0 if finished else 0.0,
                "created_at": now,
                "started_at": now if finished else None,
                "finished_at": now if finished else None,
                "updated_at": now,
            }
        )
    with store.engine.begin() as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(insert(jobs_table), rows[start : start + 5000])
    # A bulk insert leaves the planner's statistics stale until autovacuum (PostgreSQL)
    # or an ANALYZE (SQLite) catches up; a live queue grows slowly enough for that.
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    store.engine.dispose()
    half = count // 2
    return (
        [row["id"] for row in rows[: min(polled, half)]],
        [row["id"] for row in rows[max(half, count - polled) :]],
    )


@contextmanager
def process(args: list[str], env: dict[str, str], url: str) -> Iterator[None]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while not _answers(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"{args} did not start:\n{log.read().decode()[-3000:]}")
                time.sleep(0.1)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _ceiling_script(script: Path, poll: str, work: Path) -> Path:
    """`script`'s requests, sent to the ceiling's route."""
    path = work / f"ceiling-{script.name}"
    path.write_text(script.read_text().replace(f'"{poll}"', f'"/static?{poll.split("?")[1]}"'))
    return path


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


def wrk(url: str, seconds: float, connections: int, script: Path | None = None) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{round(seconds)}s", "--latency", url]
    if script is not None:
        command[1:1] = ["-s", str(script)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {
        p: _ms(re.search(rf"^\s+{p}%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
        for p in ("50", "99")
    }
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rate,
        "p50_ms": latency["50"],
        "p99_ms": latency["99"],
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def http_paths(name: str, database_url: str, args: argparse.Namespace, work: Path) -> None:
    finished, queued = fill(database_url, args.jobs)
    port, ceiling_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REELFORGE_DATA_DIR": str(work / f"data-{name}"),
        "REELFORGE_DATABASE_URL": database_url,
        "REELFORGE_PORT": str(port),
        "REELFORGE_WORKERS": "0",
        "REELFORGE_MODELS_FILE": str(REGISTRY),
        "REELFORGE_LOG_LEVEL": "WARNING",
    }
    poll = "/v2/video/generations?generation_id="
    with process([sys.executable, "-m", "reelforge", "serve"], env, base + "/healthz"):
        for job_id in (*finished, *queued):  # what wrk will ask must be answered, not 404
            httpx.get(base + poll + job_id).raise_for_status()
        body = httpx.get(base + poll + finished[0]).content
        (work / "body.json").write_bytes(body)
        scripts = {}
        for kind, ids in (("finished", finished), ("queued", queued)):
            scripts[kind] = work / f"poll-{kind}.lua"
            scripts[kind].write_text(WRK_POLLS % (",".join(f'"{i}"' for i in ids), poll))
        post = work / "post.lua"
        post.write_text(WRK_POST % CREATE_BODY)
        ceiling_url = f"http://127.0.0.1:{ceiling_port}/static"
        with process(
            [sys.executable, "-c", CEILING_APP, str(ceiling_port), str(work / "body.json")],
            os.environ.copy(),
            ceiling_url,
        ):
            # The ceiling is asked the same requests (its route ignores the query), through
            # the same scripts, so that wrk's own work per request is the same on both sides.
            cases = {
                f"poll, finished ({len(finished)} jobs)": (base, scripts["finished"], finished[0]),
                f"poll, queued ({len(queued)} deepest)": (base, scripts["queued"], queued[-1]),
                "create": (base + "/v2/video/generations", post, None),
            }
            results: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {
                case: [] for case in cases
            }
            for round_ in range(args.rounds):
                order = list(cases) if round_ % 2 == 0 else list(reversed(cases))
                for case in order:
                    url, script, first = cases[case]
                    creates = first is None
                    if first is not None:
                        # One request first, as steady traffic would have made: after the
                        # other cases' rounds the server's caches for these jobs (queue
                        # positions, ETA figures) have aged out, and wrk has no warm-up.
                        httpx.get(base + poll + first).raise_for_status()
                    ours = wrk(url, args.seconds, args.connections, script)
                    ceiling = wrk(
                        ceiling_url if creates else ceiling_url.removesuffix("/static"),
                        args.seconds,
                        args.connections,
                        script if creates else _ceiling_script(script, poll, work),
                    )
                    results[case].append((ours, ceiling))
    print(
        f"\n{name}, {args.jobs} jobs in the table, {args.connections} connections, "
        f"{args.rounds} rounds of {args.seconds:g} s (median of rounds)"
    )
    print(
        f"{'path':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'ceiling':>9} {'ratio':>7}"
        f" {'ceiling p99 ms':>15}"
    )
    for case, rounds in results.items():
        rps = statistics.median(r[0]["rps"] for r in rounds)
        ceiling = statistics.median(r[1]["rps"] for r in rounds)
        p50 = statistics.median(r[0]["p50_ms"] for r in rounds)
        p99 = statistics.median(r[0]["p99_ms"] for r in rounds)
        ceiling_p99 = statistics.median(r[1]["p99_ms"] for r in rounds)
        failed = sum(r[0]["non_2xx"] for r in rounds)
        note = f"  ({failed:.0f} non-2xx)" if failed else ""
        print(
            f"{case:34} {rps:8.0f} {p50:8.2f} {p99:8.2f} {ceiling:9.0f} {rps / ceiling:7.2f}x"
            f" {ceiling_p99:15.2f}{note}"
        )


def claim_times(name: str, database_url_for: Any, depths: list[int], tenants: int) -> None:
    print(f"\n{name}: claim_next_job, median of 50 claims, {tenants} tenant(s) waiting")
    for depth in depths:
        url = database_url_for()
        fill(url, depth * 2, tenants)  # half finished, half queued
        store = open_store(url)
        times = []
        for _ in range(50):
            started = time.perf_counter()
            lease = store.claim_next_job("bench", [T2V], lease_seconds=600)
            times.append(time.perf_counter() - started)
            assert lease is not None
        store.engine.dispose()
        print(f"  {depth:>7} queued: {statistics.median(times) * 1000:7.3f} ms")


def postgres_schema(admin_url: str) -> Iterator[str]:
    """Fresh private schemas in the PostgreSQL at `admin_url`, dropped at the end."""
    store = open_store(admin_url)  # the server is there and migrations run
    engine = store.engine
    made: list[str] = []
    try:
        while True:
            schema = f"bench_{secrets.token_hex(4)}"
            with engine.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            made.append(schema)
            separator = "&" if "?" in admin_url else "?"
            yield f"{admin_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            for schema in made:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--postgres",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/test",
        help="'' to skip PostgreSQL",
    )
    parser.add_argument("--claim-depths", default="10000,100000")
    parser.add_argument(
        "--claim-tenants", type=int, default=8, help="tenants waiting in the fair-share row"
    )
    parser.add_argument("--claims-only", action="store_true", help="skip the HTTP rows")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not args.claims_only:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    depths = [int(d) for d in args.claim_depths.split(",") if d]
    with tempfile.TemporaryDirectory(prefix="reelforge-bench-") as tmp:
        work = Path(tmp)
        if not args.claims_only:
            http_paths("SQLite", f"sqlite:///{work / 'http.db'}", args, work)
        counter = iter(range(10**6))
        for tenants in (1, args.claim_tenants):
            claim_times(
                "SQLite", lambda: f"sqlite:///{work / f'claim-{next(counter)}.db'}", depths, tenants
            )
        if args.postgres:
            try:
                schemas = postgres_schema(args.postgres)
                if not args.claims_only:
                    http_paths("PostgreSQL", next(schemas), args, work)
                for tenants in (1, args.claim_tenants):
                    claim_times("PostgreSQL", lambda: next(schemas), depths, tenants)
                schemas.close()
            except Exception as exc:  # the benchmark reports what it could measure
                print(f"\nPostgreSQL skipped: {str(exc).splitlines()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
