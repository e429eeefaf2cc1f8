"""The plain poll route (`api.aimlapi.poll.PollRoute`), which answers
`GET /v2/video/generations?generation_id=…` ahead of FastAPI's routing: the same answers,
checks and errors as the declared FastAPI route, which still serves everything else on that
path (a list, an admin's `tenant=` read). The real app on real SQLite."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelforge.api.aimlapi.poll import PollRoute
from reelforge.api.app import build_context, create_app
from reelforge.engines import Registry
from reelforge.jobs import JobStore, open_store
from reelforge.settings import Settings
from reelforge.storage import open_storage
from reelforge.tenancy.keys import Scope
from tests.conftest import stored_result
from tests.integration.test_api_validation import LOOPBACK, T2V

POLL = "/v2/video/generations"
LEGACY = "/v2/generate/video/kling/generation"
BOOTSTRAP = "rf-bootstrap-key-for-poll-tests"


@pytest.fixture
def keyed(tmp_path: Path) -> Iterator[tuple[TestClient, JobStore]]:
    settings = Settings(data_dir=tmp_path, api_keys=[BOOTSTRAP], access_log=True)
    store = open_store(settings.resolved_database_url)
    storage = open_storage(settings.resolved_storage_url)
    ctx = build_context(settings, store, storage, Registry.load())
    app = create_app(ctx)
    with TestClient(app, client=LOOPBACK, raise_server_exceptions=False) as client:
        client.app_state = ctx  # type: ignore[attr-defined]
        yield client, store
    store.engine.dispose()


def same_but_expiry(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same generation object, but for the links' signed expiry (two requests a minute
    boundary apart sign for different minutes)."""

    def unsigned(body: dict[str, Any]) -> dict[str, Any]:
        files = {
            name: {**body[name], "url": body[name]["url"].split("?")[0]}
            for name in ("video", "preview", "thumbnail")
            if body.get(name)
        }
        return {**body, **files}

    return unsigned(a) == unsigned(b)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_the_plain_poll_is_the_first_route_and_matches_only_a_plain_poll() -> None:
    route = PollRoute(None, POLL)  # type: ignore[arg-type]
    legacy = PollRoute(None, "/legacy")  # type: ignore[arg-type]

    def scope(method: str, path: str, query: bytes) -> dict[str, object]:
        return {"type": "http", "method": method, "path": path, "query_string": query}

    matched = [
        route.matches(scope("GET", POLL, b"generation_id=abc"))[0].name,
        legacy.matches(scope("GET", "/legacy", b"generation_id="))[0].name,
        route.matches(scope("GET", POLL, b"x=1&generation_id=abc"))[0].name,
    ]
    assert matched == ["FULL"] * 3
    refused = [
        scope("GET", POLL, b""),  # a list
        scope("GET", POLL, b"limit=5"),
        scope("GET", POLL, b"generation_id=abc&tenant=all"),  # an admin read: FastAPI's
        scope("GET", POLL, b"not_generation_id=abc"),
        scope("POST", POLL, b"generation_id=abc"),
        scope("GET", POLL + "/abc", b"generation_id=abc"),
        scope("GET", "/legacy", b"generation_id=abc"),  # another route's path
        {"type": "websocket", "path": POLL, "query_string": b"generation_id=abc"},
    ]
    assert [route.matches(s)[0].name for s in refused] == ["NONE"] * len(refused)


def test_it_answers_as_the_path_form_does_with_the_same_checks_and_errors(
    keyed: tuple[TestClient, JobStore], caplog: pytest.LogCaptureFixture
) -> None:
    client, store = keyed
    first = client.app.router.routes[:2]  # type: ignore[attr-defined]
    assert [(type(r), r.path) for r in first] == [(PollRoute, POLL), (PollRoute, LEGACY)]
    created = client.post(
        POLL, json={"model": T2V, "prompt": "a red circle"}, headers=bearer(BOOTSTRAP)
    )
    assert created.status_code == 200, created.text
    job_id = created.json()["id"]
    lease = store.claim_next_job("w1", [T2V], lease_seconds=60)
    assert lease is not None and lease.job_id == job_id
    ctx = client.app_state  # type: ignore[attr-defined]
    assert store.complete_job(lease, stored_result(ctx.storage, job_id))  # links in the body
    with caplog.at_level(logging.INFO, logger="reelforge.access"):
        plain = client.get(POLL, params={"generation_id": job_id}, headers=bearer(BOOTSTRAP))
    path_form = client.get(f"{POLL}/{job_id}", headers=bearer(BOOTSTRAP))
    assert plain.status_code == 200 and path_form.status_code == 200
    assert plain.json()["status"] == "completed" and plain.json()["video"]["url"]
    assert same_but_expiry(plain.json(), path_form.json())
    assert plain.headers["x-request-id"]
    # Links are for the address the client used, whichever it was (kept per Host).
    for host in ("reelforge.example:8443", "127.0.0.1:9", "reelforge.example:8443"):
        elsewhere = client.get(
            POLL, params={"generation_id": job_id}, headers={**bearer(BOOTSTRAP), "host": host}
        )
        assert elsewhere.json()["video"]["url"].startswith(f"http://{host}/files/")
    legacy = client.get(LEGACY, params={"generation_id": job_id}, headers=bearer(BOOTSTRAP))
    assert legacy.status_code == 200 and same_but_expiry(legacy.json(), plain.json())
    # The access log names the route template, as for every route.
    assert [r.route for r in caplog.records if r.name == "reelforge.access"] == [POLL]  # type: ignore[attr-defined]
    with caplog.at_level(logging.INFO, logger="reelforge.access"):
        caplog.clear()
        client.get(LEGACY, params={"generation_id": job_id}, headers=bearer(BOOTSTRAP))
    assert [r.route for r in caplog.records if r.name == "reelforge.access"] == [LEGACY]  # type: ignore[attr-defined]

    missing = client.get(POLL, params={"generation_id": job_id})
    assert missing.status_code == 401 and missing.json()["path"] == POLL
    wrong = client.get(POLL, params={"generation_id": job_id}, headers=bearer("rf-wrong"))
    assert wrong.status_code == 401
    empty = client.get(POLL, params={"generation_id": ""}, headers=bearer(BOOTSTRAP))
    assert empty.status_code == 400
    assert empty.json()["errors"] == [{"field": "generation_id", "message": "must not be empty"}]
    unknown = client.get(POLL, params={"generation_id": "no-such-job"}, headers=bearer(BOOTSTRAP))
    assert unknown.status_code == 404 and unknown.json()["statusCode"] == 404


def test_scopes_tenants_and_admin_reads_hold_as_on_every_route(
    keyed: tuple[TestClient, JobStore],
) -> None:
    client, _store = keyed
    ctx = client.app_state  # type: ignore[attr-defined]
    reader_key, reader = ctx.keys.create("reader", scopes=[Scope.READ, Scope.GENERATE])
    _writer, writer_only = ctx.keys.create("writer", scopes=[Scope.GENERATE])
    _other, other = ctx.keys.create("other", scopes=[Scope.READ, Scope.GENERATE])
    ctx.auth.ring.refresh()
    created = client.post(
        POLL, json={"model": T2V, "prompt": "a red circle"}, headers=bearer(reader)
    )
    assert created.status_code == 200, created.text
    job_id = created.json()["id"]
    poll = {"generation_id": job_id}
    assert client.get(POLL, params=poll, headers=bearer(reader)).status_code == 200
    lacking = client.get(POLL, params=poll, headers=bearer(writer_only))
    assert lacking.status_code == 403 and "'read' scope" in lacking.json()["message"]
    # Another tenant's job is not found, as through every route.
    assert client.get(POLL, params=poll, headers=bearer(other)).status_code == 404
    # An admin's read of another tenant goes through the FastAPI route, on the record.
    admin = client.get(
        POLL, params={**poll, "tenant": reader_key.tenant}, headers=bearer(BOOTSTRAP)
    )
    assert admin.status_code == 200 and admin.json()["id"] == job_id
    refused = client.get(POLL, params={**poll, "tenant": reader_key.tenant}, headers=bearer(other))
    assert refused.status_code == 404 and refused.json()["errors"][0]["field"] == "tenant"
