"""Webhook subscriptions through the AI/ML API routes (the real app on a real SQLite store,
no worker): the guard at submit time, and `GET …/{generation_id}/webhooks`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelforge.jobs import JobStore, open_store
from reelforge.jobs.webhooks import WebhookOutbox
from reelforge.settings import Settings
from tests.integration.test_api_validation import T2V, make_client
from tests.integration.test_job_store import make_result

KEY_A, KEY_B = "key-of-tenant-a", "key-of-tenant-b"
HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Settings, JobStore]]:
    settings = Settings(data_dir=tmp_path, api_keys=[KEY_A, KEY_B], allow_private_urls=True)
    store = open_store(settings.resolved_database_url)
    yield settings, store
    store.engine.dispose()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def create(client: TestClient, key: str, **fields: Any) -> Any:
    return client.post(
        "/v2/video/generations",
        json={"model": T2V, "prompt": "a fox", **fields},
        headers=bearer(key),
    )


@pytest.mark.parametrize("field", ["webhook_url", "callback_url"])
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/hook", "http://10.1.2.3/hook", "http://169.254.169.254/"]
)
def test_a_private_webhook_url_is_refused_at_submit(tmp_path: Path, field: str, url: str) -> None:
    settings = Settings(data_dir=tmp_path)  # REELFORGE_ALLOW_PRIVATE_URLS off
    store = open_store(settings.resolved_database_url)
    try:
        answer = make_client(settings, store).post(
            "/v2/video/generations", json={"model": T2V, "prompt": "a fox", field: url}
        )
        assert answer.status_code == 400, answer.text
        message = answer.json()["message"]
        assert field in message
        # Loopback and private networks: the setting that opens them is named.
        assert "REELFORGE_ALLOW_PRIVATE_URLS" in message or "metadata" in message
        assert sum(store.count_by_status().values()) == 0
    finally:
        store.engine.dispose()


def test_an_unknown_event_is_refused(parts: tuple[Settings, JobStore]) -> None:
    answer = create(make_client(*parts), KEY_A, webhook_url=HOOK, webhook_events=["finished"])
    assert answer.status_code == 400, answer.text
    assert "webhook_events" in answer.json()["message"]


def test_deliveries_are_listed_to_their_owner_only(parts: tuple[Settings, JobStore]) -> None:
    settings, store = parts
    client = make_client(settings, store)
    generation = create(client, KEY_A, callback_url=HOOK).json()
    lease = store.claim_next_job("w1", [T2V], lease_seconds=30)
    assert lease is not None
    store.complete_job(lease, make_result(generation["id"]))
    outbox = WebhookOutbox(store.engine)
    [delivery] = outbox.claim_due(10, 60)
    outbox.record_attempt(
        delivery, status_code=500, error=None, duration_s=0.25, delivered=False, retry_in_s=60
    )
    for prefix in ("/v2/video/generations", "/v2/generate/video/kling/generation"):
        path = f"{prefix}/{generation['id']}/webhooks"
        answer = client.get(path, headers=bearer(KEY_A))
        assert answer.status_code == 200, answer.text
        [listed] = answer.json()["data"]
        assert listed["id"] == delivery.id and listed["id"].startswith("msg_")
        assert (listed["event"], listed["status"], listed["url"]) == ("completed", "pending", HOOK)
        assert listed["next_attempt_at"] is not None and listed["delivered_at"] is None
        [attempt] = listed["attempts"]
        assert attempt["attempt"] == 1 and attempt["status_code"] == 500
        assert attempt["error"] is None and attempt["duration_s"] == 0.25
        assert client.get(path, headers=bearer(KEY_B)).status_code == 404
    unknown = client.get("/v2/video/generations/nope/webhooks", headers=bearer(KEY_A))
    assert unknown.status_code == 404


def test_a_generation_without_webhook_lists_none(parts: tuple[Settings, JobStore]) -> None:
    client = make_client(*parts)
    generation = create(client, KEY_A).json()
    answer = client.get(f"/v2/video/generations/{generation['id']}/webhooks", headers=bearer(KEY_A))
    assert answer.status_code == 200 and answer.json() == {"data": []}
