"""Webhooks end to end: a real `reelforge serve` process, a real receiver on loopback that
checks every request with the `standardwebhooks` library, retries, and a server killed with
SIGKILL before the delivery succeeded."""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from reelforge.webhooks.signing import SECRET_FILE
from tests.e2e.conftest import LiveServer, wait_for
from tests.e2e.test_service import T2V, poll, wait_terminal

pytestmark = pytest.mark.slow

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
KEY_A, KEY_B = "webhooks-key-a", "webhooks-key-b"
TIMEOUT_S = 1.0
STALL = "stall"
STALL_S = 10.0  # well past the timeout; released when the receiver closes


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    answer: int | str
    at: float


class Receiver:
    """A webhook receiver on loopback; `script(n)` is its answer to the n-th request: a
    status code, or STALL (no answer until after the sender's timeout)."""

    def __init__(self, script: Callable[[int], int | str]) -> None:
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    answer = script(len(receiver.requests) + 1)
                    receiver.requests.append(
                        Received(dict(self.headers.items()), body, answer, time.time())
                    )
                if answer == STALL:
                    receiver._release.wait(STALL_S)
                    answer = 200
                try:
                    self.send_response(int(answer))
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up on a stalled answer

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/reelforge"

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every request's payload, each checked as a receiver would check it."""
        return [Webhook(secret).verify(r.body, r.headers) for r in list(self.requests)]

    def got(self, answer: int) -> bool:
        return any(r.answer == answer for r in list(self.requests))


def server_env(**extra: str) -> dict[str, str]:
    return {
        "REELFORGE_ALLOW_PRIVATE_URLS": "1",
        "REELFORGE_WEBHOOK_TIMEOUT_S": str(TIMEOUT_S),
        "REELFORGE_WEBHOOK_POLL_INTERVAL_S": "0.1",
        **extra,
    }


@pytest.fixture(scope="module")
def hook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    env = server_env(
        REELFORGE_WEBHOOK_SECRET=SECRET,
        REELFORGE_WEBHOOK_RETRY_SCHEDULE_S="0.2,0.2,0.2,0.2",
        REELFORGE_API_KEYS=f"{KEY_A},{KEY_B}",
    )
    server = LiveServer(tmp_path_factory.mktemp("webhooks") / "data", env)
    try:
        yield server.start()
    finally:
        server.stop()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def create(server: LiveServer, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    headers = bearer(key) if key else {}
    answer = httpx.post(server.base_url + "/v2/video/generations", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    generation: dict[str, Any] = answer.json()
    return generation


def deliveries(server: LiveServer, generation_id: str, key: str | None = None) -> Any:
    path = f"/v2/video/generations/{generation_id}/webhooks"
    answer = httpx.get(server.base_url + path, headers=bearer(key) if key else {})
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def without_link_signatures(generation: dict[str, Any]) -> dict[str, Any]:
    """A generation object with its file links cut to their path: links are signed with an
    expiry counted from when they were rendered."""
    copy = dict(generation)
    for name in ("video", "preview", "thumbnail"):
        if copy.get(name):
            copy[name] = {**copy[name], "url": urlsplit(copy[name]["url"]).path}
    return copy


def test_retries_through_errors_and_a_timeout_until_delivered(hook_server: LiveServer) -> None:
    answers: list[int | str] = [500, 500, STALL, 200]
    receiver = Receiver(lambda n: answers[min(n, len(answers)) - 1])
    try:
        generation = create(
            hook_server, {"model": T2V, "prompt": "a fox", "webhook_url": receiver.url}, KEY_A
        )
        headers = bearer(KEY_A)
        wait_for(lambda: receiver.got(200), 60, "the webhook to be delivered")
        final = httpx.get(
            hook_server.base_url + "/v2/video/generations/" + generation["id"], headers=headers
        ).json()
        assert final["status"] == "completed"
        payloads = receiver.verified(SECRET)
        assert [r.answer for r in receiver.requests] == answers
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        assert len({r.body for r in receiver.requests}) == 1
        payload = payloads[-1]
        assert payload["type"] == "completed"
        assert without_link_signatures(payload["data"]) == without_link_signatures(final)
        # The body's links work (signed for this server's own address).
        assert httpx.get(payload["data"]["video"]["url"]).status_code == 200

        def listed_delivered() -> Any:
            [listed] = deliveries(hook_server, generation["id"], KEY_A)
            return listed if listed["status"] == "delivered" else None

        listed = wait_for(listed_delivered, 10, "the delivery to show as delivered")
        assert listed["id"] == receiver.requests[0].headers["webhook-id"]
        assert listed["event"] == "completed"
        outcomes = [(a["attempt"], a["status_code"], a["error"]) for a in listed["attempts"]]
        assert outcomes == [
            (1, 500, None),
            (2, 500, None),
            (3, None, f"timed out after {TIMEOUT_S:g} s"),
            (4, 200, None),
        ]
        # Another tenant does not see it.
        other = httpx.get(
            f"{hook_server.base_url}/v2/video/generations/{generation['id']}/webhooks",
            headers=bearer(KEY_B),
        )
        assert other.status_code == 404
        report_timings(final, receiver)
    finally:
        receiver.close()


def test_only_the_events_asked_for_arrive_in_order(hook_server: LiveServer) -> None:
    receiver = Receiver(lambda n: 200)
    try:
        body = {
            "model": T2V,
            "prompt": "a fox",
            "callback_url": receiver.url,
            "webhook_events": ["started", "completed"],
        }
        generation = create(hook_server, body, KEY_A)
        wait_for(lambda: len(receiver.requests) >= 2, 60, "two webhooks")
        payloads = receiver.verified(SECRET)
        assert [(p["type"], p["data"]["status"]) for p in payloads] == [
            ("started", "generating"),
            ("completed", "completed"),
        ]
        assert all(p["data"]["id"] == generation["id"] for p in payloads)
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 2
    finally:
        receiver.close()


def test_a_delivery_survives_the_server_being_killed(tmp_path: Path) -> None:
    killed = threading.Event()
    receiver = Receiver(lambda n: 200 if killed.is_set() else 500)
    # Many short retries: the delivery must still be open when the server comes back. No
    # secret configured: the one kept in the data dir must survive the restart too.
    env = server_env(REELFORGE_WEBHOOK_RETRY_SCHEDULE_S=",".join(["0.5"] * 60))
    first = LiveServer(tmp_path / "data", env).start()
    second: LiveServer | None = None
    try:
        generation = create(first, {"model": T2V, "prompt": "a fox", "webhook_url": receiver.url})
        assert wait_terminal(first, generation["id"])["status"] == "completed"
        wait_for(lambda: len(receiver.requests) >= 2, 30, "failed attempts before the kill")
        assert first.process is not None
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(30)
        killed.set()
        before_restart = len(receiver.requests)

        second = LiveServer(tmp_path / "data", env).start()
        ready_at = time.time()
        wait_for(lambda: receiver.got(200), 60, "the webhook after the restart")
        print(f"\ndelivered {receiver.requests[-1].at - ready_at:.2f} s after the restart")
        secret = (tmp_path / "data" / SECRET_FILE).read_text().strip()
        payloads = receiver.verified(secret)
        assert not any(r.answer == 200 for r in receiver.requests[:before_restart])
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        assert payloads[-1]["type"] == "completed"
        assert payloads[-1]["data"]["id"] == generation["id"]
        assert poll(second, generation["id"])["status"] == "completed"
        [listed] = deliveries(second, generation["id"])
        assert listed["status"] == "delivered"
        assert listed["attempts"][-1]["status_code"] == 200
    finally:
        receiver.close()
        if second is not None:
            second.stop()
        first.stop()


def report_timings(final: dict[str, Any], receiver: Receiver) -> None:
    """Printed with `pytest -s`: how soon the first attempt followed completion, and the
    gaps between attempts."""
    completed = datetime.fromisoformat(final["completed_at"].replace("Z", "+00:00")).timestamp()
    times = [r.at for r in receiver.requests]
    gaps = ", ".join(f"{b - a:.2f}" for a, b in itertools.pairwise(times))
    print(f"\nfirst attempt {times[0] - completed:.2f} s after completion; gaps (s): {gaps}")
