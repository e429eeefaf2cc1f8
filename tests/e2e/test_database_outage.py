"""A real server on PostgreSQL behind a fault proxy that refuses, black-holes and heals: the
API answers 503 with Retry-After in the AI/ML API error body, fast, and recovers by itself
(no restart) once the database is back; its worker does too."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.conftest import LiveServer, wait_for
from tests.faults import FaultProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

T2V = "klingai/v2-master-text-to-video"
DEADLINE_S = 2.0  # the API's database deadline (and the connect timeout) in this test


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(make_url(postgres_url).port or 5432) as proxy:
        yield proxy


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def assert_unavailable(answer: httpx.Response, elapsed_s: float, within_s: float) -> None:
    assert answer.status_code == 503, answer.text
    body: dict[str, Any] = answer.json()
    assert set(body) >= {"message", "path", "requestId", "statusCode", "timestamp"}
    assert body["statusCode"] == 503 and "database" in body["message"]
    assert int(answer.headers["retry-after"]) >= 1
    assert elapsed_s < within_s, f"answered after {elapsed_s:.2f} s"


def test_refused_and_black_holed_database_answers_503_then_recovers(
    server_factory: Callable[..., LiveServer], proxy: FaultProxy, postgres_url: str
) -> None:
    server = server_factory(
        database_url=proxy.url_for(postgres_url),
        database_timeout_s=str(DEADLINE_S),
        database_connect_timeout_s="2",
        database_statement_timeout_s="1",
    )
    base = server.base_url + "/v2/video/generations"
    body = {"model": T2V, "prompt": "a red circle moving left"}
    with httpx.Client(timeout=30) as client:
        job = client.post(base, json=body).json()

        def create() -> httpx.Response:
            return client.post(base, json=body)

        def poll() -> httpx.Response:
            return client.get(base, params={"generation_id": job["id"]})

        proxy.refuse()
        for call in (create, poll, create, poll):
            assert_unavailable(*timed(call), within_s=1.0)
        assert client.get(server.base_url + "/healthz").status_code == 503

        proxy.heal()
        wait_for(lambda: create().status_code == 200, 15, "creates to succeed after healing")

        proxy.blackhole()
        for call in (create, poll):
            assert_unavailable(*timed(call), within_s=DEADLINE_S + 1.0)

        proxy.heal()
        wait_for(lambda: poll().status_code == 200, 30, "polls to succeed after healing")
        after = create().json()
        done = wait_for(
            lambda: (
                (g := client.get(base, params={"generation_id": after["id"]}).json())["status"]
                == "completed"
                and g
            ),
            60,
            "a generation created after the outage to complete",
        )
        assert done["video"]["url"]
    assert "Traceback" not in server.log()
