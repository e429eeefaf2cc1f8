"""Benchmark: a 5 s 1280x720 request to `reelforge/micro`, end to end through a real server.

Starts `reelforge serve` on the embedded defaults (SQLite, local files) on a free loopback
port, waits for its worker, then times create -> completed -> mp4 downloaded, for the micro
model and, as the baseline measured in the same run, for the `testsrc` test pattern (the
service's own cost: queueing, encoding, storage, polling). Target (issue 4): under 20 s on
2 CPU cores.

    python benchmarks/micro_service.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reelforge.client import ReelforgeClient
from reelforge.demo import free_port

PROMPT = "a purple circle moving left on a gray background"
REGISTRY = """
[models."reelforge/micro"]
engine = "micro"

[models."testsrc"]
engine = "testsrc"
"""


def time_request(client: ReelforgeClient, model: str, out: Path) -> tuple[float, float]:
    """(seconds from create to the mp4 on disk, seconds the job spent running)."""
    started = time.monotonic()
    generation = client.generate(
        PROMPT, model=model, duration=5, aspect_ratio="16:9", poll_interval_s=0.1, timeout_s=300
    )
    assert generation.video is not None
    client.download(generation.video.url, out)
    total = time.monotonic() - started
    if generation.started_at is None or generation.completed_at is None:
        return total, float("nan")
    return total, (generation.completed_at - generation.started_at).total_seconds()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    port = free_port()
    with tempfile.TemporaryDirectory(prefix="reelforge-bench-") as data_dir:
        registry = Path(data_dir) / "models.toml"
        registry.write_text(REGISTRY)
        env = {
            **os.environ,
            "REELFORGE_DATA_DIR": data_dir,
            "REELFORGE_PORT": str(port),
            "REELFORGE_MODELS_FILE": str(registry),
            "REELFORGE_POLL_INTERVAL_S": "0.1",
        }
        log = open(Path(data_dir) / "server.log", "wb")  # noqa: SIM115 - closed below
        server = subprocess.Popen(
            [sys.executable, "-m", "reelforge", "serve"], env=env, stdout=log, stderr=log
        )
        try:
            with ReelforgeClient(f"http://127.0.0.1:{port}") as client:
                deadline = time.monotonic() + 180
                while not _healthy(client):
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the server did not become ready")
                    time.sleep(0.2)
                results = {}
                for model in ("testsrc", "reelforge/micro"):
                    time_request(client, model, Path(data_dir) / "warm.mp4")  # warm-up
                    runs = [
                        time_request(client, model, Path(data_dir) / f"{n}.mp4")
                        for n in range(args.repeat)
                    ]
                    results[model] = runs
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()

    print(f"5 s 1280x720 request, create -> mp4 downloaded, median of {args.repeat}, {PROMPT!r}")
    for model, runs in results.items():
        total = statistics.median(r[0] for r in runs)
        running = statistics.median(r[1] for r in runs)
        print(f"  {model:<16} end to end {total:6.2f} s   job running {running:6.2f} s")
    micro = statistics.median(r[0] for r in results["reelforge/micro"])  # seconds
    base = statistics.median(r[0] for r in results["testsrc"])
    print(
        f"  micro model cost over the service baseline: {micro - base:.2f} s ({micro / base:.1f}x)"
    )
    print(f"  target: under 20 s end to end -> {'met' if micro < 20 else 'NOT met'}")
    return 0


def _healthy(client: ReelforgeClient) -> bool:
    try:
        return client.health()
    except Exception:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
