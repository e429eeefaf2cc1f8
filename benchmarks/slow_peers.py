"""Benchmark: what slow and heavy image inputs cost the rest of the API (robustness issue).

Starts `reelforge serve` (no worker: only the API is measured) on a free loopback port, then
prints, each against a baseline measured in the same run:

- poll latency (p50 / p99) at rest, and while 60 creates wait on an image host that trickles
  one byte a second (target: p99 under 100 ms), with how long those creates took to be
  refused against the configured total fetch deadline (target: deadline + 1 s);
- the API process's peak memory at rest, and after 4 concurrent creates of a 116 KB PNG that
  decodes to 36 Mpx (the size that used to take it from 128 MB to 1.2 GB).

    python benchmarks/slow_peers.py [--deadline 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reelforge.demo import free_port
from tests.fixtures.slow_http import TricklingServer

T2V = "klingai/v2-master-text-to-video"
I2V = "klingai/v2-master-image-to-video"
REGISTRY = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "testsrc.toml"


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def poll_latencies(base: str, job_id: str, stop: threading.Event, limit: int) -> list[float]:
    latencies: list[float] = []
    with httpx.Client(timeout=30) as client:
        while len(latencies) < limit and not (stop.is_set() and len(latencies) >= 50):
            started = time.monotonic()
            client.get(base, params={"generation_id": job_id}).raise_for_status()
            latencies.append(time.monotonic() - started)
    return latencies


def describe(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return f"p50 {statistics.median(ordered) * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms"


async def create_many(base: str, bodies: list[dict[str, str]]) -> list[tuple[int, float]]:
    async def one(client: httpx.AsyncClient, body: dict[str, str]) -> tuple[int, float]:
        started = time.monotonic()
        answer = await client.post(base, json=body)
        return answer.status_code, time.monotonic() - started

    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        return await asyncio.gather(*(one(client, body) for body in bodies))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deadline", type=float, default=3.0)
    args = parser.parse_args()

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="reelforge-bench-") as data_dir:
        env = {
            **os.environ,
            "REELFORGE_DATA_DIR": data_dir,
            "REELFORGE_PORT": str(port),
            "REELFORGE_WORKERS": "0",
            "REELFORGE_MODELS_FILE": str(REGISTRY),
            "REELFORGE_ALLOW_PRIVATE_URLS": "true",
            "REELFORGE_IMAGE_FETCH_TIMEOUT_S": str(args.deadline),
        }
        log = open(Path(data_dir) / "server.log", "wb")  # noqa: SIM115
        server = subprocess.Popen([sys.executable, "-m", "reelforge", "serve"], env=env, stderr=log)
        trickling = TricklingServer(interval_s=1.0).start()
        try:
            base = f"http://127.0.0.1:{port}/v2/video/generations"
            for _ in range(600):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            job_id = httpx.post(base, json={"model": T2V, "prompt": "a red circle"}).json()["id"]

            stop = threading.Event()
            stop.set()
            rest = poll_latencies(base, job_id, stop, 300)
            print(f"polls at rest:                     {describe(rest)}")

            stop.clear()
            loaded: list[float] = []
            poller = threading.Thread(
                target=lambda: loaded.extend(poll_latencies(base, job_id, stop, 5000))
            )
            poller.start()
            body = {"model": I2V, "prompt": "move", "image_url": trickling.url}
            outcomes = asyncio.run(create_many(base, [body] * 60))
            stop.set()
            poller.join()
            print(f"polls during 60 trickling creates: {describe(loaded)}")
            times = sorted(seconds for _, seconds in outcomes)
            statuses = sorted({status for status, _ in outcomes})
            print(
                f"those creates: status {statuses}, refused after {times[0]:.2f}-{times[-1]:.2f} s "
                f"(deadline {args.deadline:g} s, target under {args.deadline + 1:g} s)"
            )

            at_rest = peak_rss_mib(server.pid)
            big = io.BytesIO()
            Image.new("RGB", (6000, 6000), (40, 90, 200)).save(big, format="PNG")
            uri = "data:image/png;base64," + base64.b64encode(big.getvalue()).decode()
            bodies = [{"model": I2V, "prompt": "move", "image_url": uri}] * 4
            decoded = asyncio.run(create_many(base, bodies))
            print(
                f"API peak memory: {at_rest:.0f} MiB at rest, {peak_rss_mib(server.pid):.0f} MiB "
                f"after 4 concurrent {len(big.getvalue()) // 1024} KB PNGs of 36 Mpx "
                f"(status {sorted({s for s, _ in decoded})}, "
                f"{max(t for _, t in decoded):.1f} s for the slowest)"
            )
        finally:
            trickling.close()
            server.terminate()
            server.wait(30)
            log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
