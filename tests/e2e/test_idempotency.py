"""Idempotency-Key on a real server: the AI/ML API SDK retrying a create that is slow, and
concurrent creates with one key from two tenants."""

from __future__ import annotations

import io
import json
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import LiveServer
from tests.e2e.test_service import HERE, I2V, SDK_PYTHON, T2V

pytestmark = pytest.mark.slow

TENANT_KEYS = ("idem-tenant-a", "idem-tenant-b")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(
        tmp_path_factory.mktemp("idempotency"),
        {
            "REELFORGE_API_KEYS": ",".join(TENANT_KEYS),
            # The slow image below is served on loopback.
            "REELFORGE_ALLOW_PRIVATE_URLS": "1",
        },
    )
    live.start()
    yield live
    live.stop()


class SlowImage:
    """A loopback server that answers each GET with a PNG after `delay_s`, counting them: the
    slow part of a create that makes a client with a short timeout retry it."""

    def __init__(self, delay_s: float) -> None:
        png = io.BytesIO()
        Image.new("RGB", (64, 36), (20, 120, 200)).save(png, format="PNG")
        body = png.getvalue()
        self.requests = 0
        self.answered = threading.Event()
        # A gate, not a sleep: released after `delay_s` unless the test releases it first.
        release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                release.wait(delay_s)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                outer.answered.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.release = release
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/slow.png"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def headers(tenant: int, idempotency_key: str | None = None) -> dict[str, str]:
    sent = {"authorization": f"Bearer {TENANT_KEYS[tenant]}"}
    if idempotency_key is not None:
        sent["idempotency-key"] = idempotency_key
    return sent


def listed_ids(server: LiveServer, tenant: int) -> set[str]:
    """Every generation the tenant sees, through the list route."""
    found: set[str] = set()
    after = None
    while True:
        params = {"limit": "100", **({"after": after} if after else {})}
        page = httpx.get(
            server.base_url + "/v2/video/generations", params=params, headers=headers(tenant)
        ).json()
        found |= {g["id"] for g in page["data"]}
        if not page["has_more"]:
            return found
        after = page["last_id"]


def job_count(server: LiveServer) -> int:
    store = server.store()
    try:
        return sum(store.count_by_status().values())
    finally:
        store.engine.dispose()


def test_sdk_retries_of_a_slow_create_make_one_job(server: LiveServer, tmp_path: Path) -> None:
    image = SlowImage(delay_s=2.5)  # the SDK below gives up on each try after 1 s
    before = job_count(server)
    try:
        run = subprocess.run(
            [
                str(SDK_PYTHON),
                str(HERE / "aimlapi_sdk_script.py"),
                "--base-url",
                server.base_url,
                "--api-key",
                TENANT_KEYS[0],
                "--model",
                I2V,
                "--prompt",
                "a blue square",
                "--image-url",
                image.url,
                "--out",
                str(tmp_path / "video.mp4"),
                "--request-timeout",
                "1",
                "--max-retries",
                "4",
                "--idempotency-key",
                "sdk-retry-key",
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        image.close()
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["ok"], (summary, run.stderr[-3000:])
    # The SDK timed out at least once and sent the create again, with the same key ...
    assert summary["retries"] >= 1, run.stderr[-3000:]
    # ... yet the image was fetched once and one job was made: the retries found the first.
    assert image.requests == 1
    assert job_count(server) == before + 1
    assert summary["final_status"] == "completed" and summary["bytes"] > 0


def test_concurrent_creates_with_one_key_make_one_job_per_tenant(server: LiveServer) -> None:
    body = {"model": T2V, "prompt": "a red circle moving left", "seed": 11}
    before = job_count(server)

    def create(tenant: int) -> tuple[int, str]:
        response = httpx.post(
            server.base_url + "/v2/video/generations",
            json=body,
            headers=headers(tenant, "one-key-for-twenty"),
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return tenant, response.json()["id"]

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(create, [i % 2 for i in range(20)]))
    ids = {tenant: {gid for t, gid in results if t == tenant} for tenant in (0, 1)}
    assert len(ids[0]) == 1 and len(ids[1]) == 1, ids
    assert ids[0] != ids[1]  # keys are scoped per tenant
    assert job_count(server) == before + 2
    # Each tenant sees its own job, and not the other's.
    for tenant, other in ((0, 1), (1, 0)):
        (mine,) = ids[tenant]
        (theirs,) = ids[other]
        listed = listed_ids(server, tenant)
        assert mine in listed and theirs not in listed


def test_the_same_key_with_another_body_is_a_conflict(server: LiveServer) -> None:
    url = server.base_url + "/v2/video/generations"
    first = httpx.post(
        url, json={"model": T2V, "prompt": "a green box"}, headers=headers(0, "reused-key")
    )
    assert first.status_code == 200, first.text
    again = httpx.post(
        url,
        json={"prompt": "a green box", "model": T2V},  # the same body, keys reordered
        headers=headers(0, "reused-key"),
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    other = httpx.post(
        url, json={"model": T2V, "prompt": "a yellow box"}, headers=headers(0, "reused-key")
    )
    assert other.status_code == 409, other.text
    error = other.json()
    assert error["statusCode"] == 409 and "Idempotency-Key" in error["message"]
    assert error["errors"][0]["field"] == "Idempotency-Key"


def test_a_failed_create_frees_its_key(server: LiveServer) -> None:
    url = server.base_url + "/v2/video/generations"
    refused = httpx.post(
        url,
        json={"model": I2V, "image_url": "data:image/png;base64,bm90IGFuIGltYWdl"},
        headers=headers(1, "freed-key"),
    )
    assert refused.status_code == 400, refused.text
    # Nothing holds the key now: a corrected request with it is a new create.
    fixed = httpx.post(
        url, json={"model": T2V, "prompt": "a purple disc"}, headers=headers(1, "freed-key")
    )
    assert fixed.status_code == 200, fixed.text


def test_a_bad_key_is_named(server: LiveServer) -> None:
    response = httpx.post(
        server.base_url + "/v2/video/generations",
        json={"model": T2V, "prompt": "a box"},
        headers=headers(0, "x" * 300),
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
