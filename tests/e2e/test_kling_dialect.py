"""Kling's official API end to end: a real `reelforge serve` (testsrc engine), driven by a
client written from Kling's documented examples (requests + PyJWT), callbacks received by a
loopback receiver, an input image served from loopback."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from PIL import Image

from reelforge.media import probe_video
from tests.e2e.conftest import LiveServer, wait_for

pytestmark = pytest.mark.slow

AK, SK = "AK-e2e-kling", "SK-e2e-kling-0123456789abcdefghijklmnop"
TERMINAL = ("succeed", "failed")
TIMEOUT_S = 120.0


# --- the client, as Kling's documentation writes it ---------------------------------------


def encode_jwt_token(ak: str, sk: str) -> str:
    headers = {"alg": "HS256", "typ": "JWT"}
    payload = {
        "iss": ak,
        "exp": int(time.time()) + 1800,  # valid for 30 minutes
        "nbf": int(time.time()) - 5,  # valid from 5 seconds ago
    }
    return jwt.encode(payload, sk, headers=headers)


class KlingClient:
    def __init__(self, base_url: str, ak: str = AK, sk: str = SK) -> None:
        self.base_url, self.ak, self.sk = base_url, ak, sk

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {encode_jwt_token(self.ak, self.sk)}",
        }

    def create(self, kind: str, body: dict[str, Any]) -> requests.Response:
        url = f"{self.base_url}/v1/videos/{kind}"
        return requests.post(url, headers=self.headers(), data=json.dumps(body), timeout=30)

    def query(self, kind: str, task_id: str) -> dict[str, Any]:
        url = f"{self.base_url}/v1/videos/{kind}/{task_id}"
        answer = requests.get(url, headers=self.headers(), timeout=30)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        assert result["code"] == 0, result
        return result

    def run(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a task and poll it until it ends; its final task object."""
        answer = self.create(kind, body)
        assert answer.status_code == 200, answer.text
        created = answer.json()
        assert created["code"] == 0 and created["data"]["task_status"] == "submitted", created
        task_id = created["data"]["task_id"]

        def ended() -> dict[str, Any] | None:
            task: dict[str, Any] = self.query(kind, task_id)["data"]
            return task if task["task_status"] in TERMINAL else None

        task: dict[str, Any] = wait_for(ended, TIMEOUT_S, f"{kind} task {task_id}")
        return task


# --- loopback peers ----------------------------------------------------------------------


class Loopback:
    """A tiny HTTP server on loopback: serves `image` on GET, records POSTed callbacks."""

    def __init__(self, image: bytes) -> None:
        self.callbacks: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", str(len(image)))
                self.end_headers()
                self.wfile.write(image)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                peer.callbacks.append(json.loads(body))
                peer.headers.append(dict(self.headers.items()))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def png(width: int = 320, height: int = 320) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (230, 120, 20)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def peer() -> Iterator[Loopback]:
    loopback = Loopback(png())
    yield loopback
    loopback.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = {
        "REELFORGE_KLING_KEYS": f"{AK}:{SK}",
        "REELFORGE_ALLOW_PRIVATE_URLS": "1",  # the loopback image and callback receiver
        "REELFORGE_WEBHOOK_POLL_INTERVAL_S": "0.1",
    }
    live = LiveServer(tmp_path_factory.mktemp("kling") / "data", env)
    try:
        yield live.start()
    finally:
        live.stop()


@pytest.fixture
def kling(server: LiveServer) -> KlingClient:
    return KlingClient(server.base_url)


def download(task: dict[str, Any], to: Path) -> Path:
    assert task["task_status"] == "succeed", task
    (video,) = task["task_result"]["videos"]
    answer = requests.get(video["url"], timeout=30)
    assert answer.status_code == 200
    to.write_bytes(answer.content)
    return to


def test_text2video_runs_to_succeed_and_downloads(kling: KlingClient, tmp_path: Path) -> None:
    task = kling.run(
        "text2video",
        {
            "model_name": "kling-v2-master",
            "prompt": "A majestic eagle soaring over snow-capped mountains at sunrise",
            "mode": "std",
            "duration": "5",
            "aspect_ratio": "9:16",
        },
    )
    assert task["task_result"]["videos"][0]["duration"] == "5"
    info = probe_video(download(task, tmp_path / "t2v.mp4"))
    assert (info.width, info.height) == (720, 1280)
    assert info.num_frames == 120


def test_image2video_from_base64_and_from_a_url(
    kling: KlingClient, peer: Loopback, tmp_path: Path
) -> None:
    for n, image in enumerate([base64.b64encode(png()).decode(), peer.url("/start.png")]):
        task = kling.run(
            "image2video",
            {"model_name": "kling-v1-6", "image": image, "prompt": "it turns", "duration": "5"},
        )
        info = probe_video(download(task, tmp_path / f"i2v-{n}.mp4"))
        assert info.num_frames == 120


def test_callback_url_receives_every_status_change(kling: KlingClient, peer: Loopback) -> None:
    callback = peer.url("/kling/callback")
    task = kling.run("text2video", {"prompt": "waves", "callback_url": callback})
    mine = lambda: [c for c in peer.callbacks if c.get("task_id") == task["task_id"]]  # noqa: E731
    wait_for(lambda: len(mine()) == 2, 30, "both callbacks")
    processing, succeed = mine()
    # Kling's callback body: the task object itself, as the query returns it.
    assert processing["task_status"] == "processing"
    assert "task_result" not in processing
    assert succeed["task_status"] == "succeed"
    assert set(succeed) == set(task)
    assert succeed["task_result"]["videos"][0]["id"] == task["task_result"]["videos"][0]["id"]


def test_a_duplicate_external_task_id_is_refused_and_the_task_read_by_it(
    kling: KlingClient,
) -> None:
    body = {"prompt": "a lighthouse", "external_task_id": "order-2024-0001"}
    first = kling.create("text2video", body)
    assert first.status_code == 200, first.text
    again = kling.create("text2video", body)
    assert again.status_code == 400
    refusal = again.json()
    assert refusal["code"] == 1201 and "external_task_id" in refusal["message"]
    by_external = kling.query("text2video", "order-2024-0001")["data"]
    assert by_external["task_id"] == first.json()["data"]["task_id"]
    assert by_external["task_info"] == {"external_task_id": "order-2024-0001"}


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (lambda: jwt.encode({"iss": AK, "exp": int(time.time()) - 600}, SK), 1004),
        (lambda: encode_jwt_token(AK, "not-the-secret-key-0123456789abcdef"), 1000),
        (lambda: encode_jwt_token("AK-unknown", SK), 1000),
    ],
)
def test_a_bad_jwt_is_401_in_klings_envelope(server: LiveServer, token: Any, code: int) -> None:
    answer = requests.post(
        server.base_url + "/v1/videos/text2video",
        headers={"Authorization": f"Bearer {token()}", "Content-Type": "application/json"},
        data=json.dumps({"prompt": "p"}),
        timeout=30,
    )
    assert answer.status_code == 401
    body = answer.json()
    assert body["code"] == code and body["request_id"] == answer.headers["x-request-id"]


def test_bad_input_names_the_field(kling: KlingClient) -> None:
    answer = kling.create("text2video", {"prompt": "p", "duration": "15"})
    assert answer.status_code == 400
    assert answer.json()["code"] == 1201
    assert answer.json()["message"].startswith("duration:")


def test_the_list_pages_the_callers_tasks(kling: KlingClient, server: LiveServer) -> None:
    for n in range(2):
        assert kling.create("text2video", {"prompt": f"list {n}"}).status_code == 200
    url = server.base_url + "/v1/videos/text2video"
    page = requests.get(url, params={"pageNum": 1, "pageSize": 2}, headers=kling.headers())
    assert page.status_code == 200
    assert page.json()["code"] == 0 and len(page.json()["data"]) == 2
