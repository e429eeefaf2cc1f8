"""Managed API keys: hashed at rest, scoped, revoked and rotated without a restart; quotas
and rate limits; tenant isolation; the admin API and the audit log. Each test runs on real
SQLite and real PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import MetaData, select

from reelforge.api.app import create_app
from reelforge.api.kling.openapi import KlingErrorBody
from reelforge.api.openai.schema import OpenAIErrorBody
from reelforge.api.openapi import ErrorBody
from reelforge.jobs import open_store
from reelforge.jobs.schema import rate_windows
from reelforge.tenancy.keys import KeyLimits, Scope, key_id_of
from reelforge.tenancy.limits import RateLimiter
from tests.conftest import make_result
from tests.integration.keyed_api import (
    LOOPBACK,
    REMOTE,
    T2V,
    Parts,
    app_for,
    bearer,
    create,
    job_count,
)


def test_a_secret_is_shown_once_and_stored_nowhere(
    parts: Parts,
) -> None:
    settings, store, keys = parts
    key, secret = keys.create("web-app", limits=KeyLimits(max_queued=3))
    assert secret.startswith(key.prefix) and key_id_of(secret) == key.id
    assert key.limits.max_queued == 3 and key.scopes == {Scope.READ, Scope.GENERATE}
    _ctx, client = app_for(settings, store)
    assert create(client, secret).status_code == 200
    listed = client.get("/v2/video/generations", headers=bearer(secret)).json()
    assert secret not in str(listed)
    # Every value of every table: the hash is there, the secret is not.
    tables = MetaData()
    tables.reflect(store.engine)
    with store.engine.connect() as conn:
        everything = " ".join(
            str(row) for table in tables.sorted_tables for row in conn.execute(select(table))
        )
    assert key.secret_hash in everything
    assert secret not in everything and secret.rsplit("_", 1)[1] not in everything


def test_scopes_are_enforced_in_each_dialects_error_body(
    parts: Parts,
) -> None:
    settings, store, keys = parts
    _reader, read_only = keys.create("dashboard", scopes=[Scope.READ])
    _ctx, client = app_for(settings, store)
    assert client.get("/v2/video/generations", headers=bearer(read_only)).status_code == 200
    refused = create(client, read_only)
    assert refused.status_code == 403
    assert "'generate' scope" in refused.json()["message"]
    openai = client.post("/v1/videos", json={"prompt": "x"}, headers=bearer(read_only))
    assert openai.status_code == 403 and "'generate' scope" in openai.json()["error"]["message"]
    admin = client.get("/v1/admin/keys", headers=bearer(read_only))
    assert admin.status_code == 403 and "'admin' scope" in admin.json()["message"]


def test_revoked_and_rotated_keys_stop_working_without_a_restart(
    parts: Parts,
) -> None:
    settings, store, keys = parts
    key, secret = keys.create("app")
    ctx, client = app_for(settings, store)
    job_id = create(client, secret).json()["id"]
    rotated = keys.rotate(key.id)
    assert rotated is not None
    _, new_secret = rotated
    assert ctx.auth.ring is not None and ctx.auth.ring.refresh()  # the loop's round
    assert client.get("/v2/video/generations", headers=bearer(secret)).status_code == 401
    poll = client.get(
        "/v2/video/generations", params={"generation_id": job_id}, headers=bearer(new_secret)
    )
    assert poll.status_code == 200  # the same tenant: its jobs stay visible
    keys.revoke(key.id)
    ctx.auth.ring.refresh()
    assert client.get("/v2/video/generations", headers=bearer(new_secret)).status_code == 401


def test_tenants_see_only_their_own_jobs(parts: Parts) -> None:
    settings, store, keys = parts
    _a, secret_a = keys.create("a")
    _b, secret_b = keys.create("b")
    _ctx, client = app_for(settings, store)
    job_id = create(client, secret_a).json()["id"]
    other = client.get(
        "/v2/video/generations", params={"generation_id": job_id}, headers=bearer(secret_b)
    )
    assert other.status_code == 404
    listed = client.get("/v2/video/generations", headers=bearer(secret_b)).json()
    assert job_id not in str(listed)


def test_the_admin_api_manages_keys_and_every_call_is_audited(
    parts: Parts,
) -> None:
    settings, store, keys = parts
    admin_key, admin_secret = keys.create("ops", scopes=list(Scope))
    _ctx, client = app_for(settings, store)
    made = client.post(
        "/v1/admin/keys",
        json={"name": "batch", "scopes": ["read"], "limits": {"max_concurrent": 2}},
        headers=bearer(admin_secret),
    )
    assert made.status_code == 201, made.text
    created = made.json()
    assert created["secret"].startswith(created["prefix"]) and created["scopes"] == ["read"]
    listed = client.get("/v1/admin/keys", headers=bearer(admin_secret)).json()["data"]
    assert {k["name"] for k in listed} == {"ops", "batch"}
    assert "secret" not in str(listed) and created["secret"] not in str(listed)
    changed = client.patch(
        f"/v1/admin/keys/{created['id']}",
        json={"limits": {"max_queued": 5}},
        headers=bearer(admin_secret),
    )
    assert changed.json()["limits"]["max_queued"] == 5
    assert changed.json()["limits"]["max_concurrent"] is None
    bad = client.post("/v1/admin/keys", json={"name": ""}, headers=bearer(admin_secret))
    assert bad.status_code == 400 and "name" in bad.json()["message"]
    gone = client.delete("/v1/admin/keys/000000000000", headers=bearer(admin_secret))
    assert gone.status_code == 404
    revoked = client.delete(f"/v1/admin/keys/{created['id']}", headers=bearer(admin_secret))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    entries = client.get("/v1/admin/audit", headers=bearer(admin_secret)).json()["data"]
    actions = [(e["actor"], e["action"]) for e in entries]
    assert ("cli", "key.create") in actions  # the ops key itself
    assert (admin_key.id, "key.create") in actions
    assert (admin_key.id, "key.limits") in actions
    assert (admin_key.id, "key.revoke") in actions
    assert (admin_key.id, "admin.keys.list") in actions
    assert all(e["source"] in ("cli", REMOTE[0]) for e in entries)
    assert created["secret"] not in str(entries)


@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/v1/admin/keys"), ("PATCH", "/v1/admin/keys/{key_id}")]
)
def test_admin_bodies_are_read_under_the_api_s_body_limits(
    parts: Parts, method: str, path: str
) -> None:
    settings, store, keys = parts
    admin_key, admin_secret = keys.create("ops", scopes=list(Scope))
    _ctx, client = app_for(settings.model_copy(update={"max_body_bytes": 4096}), store)
    url = path.format(key_id=admin_key.id)
    headers = bearer(admin_secret)
    name = '"name": "n", ' if method == "POST" else ""  # a new key's; a change has none

    def send(raw: str, content_type: str = "application/json") -> Any:
        return client.request(
            method, url, content=raw, headers={**headers, "content-type": content_type}
        )

    oversized = send("{" + name + '"limits": {}, "x": "' + "x" * 5000 + '"}')
    assert oversized.status_code == 413, oversized.text
    assert "larger than 4096 bytes" in oversized.json()["message"]
    deep = send("{" + name + '"limits": ' + "[" * 40 + "]" * 40 + "}")
    assert deep.status_code == 400, deep.text
    assert "nested more than 32 levels deep" in deep.json()["message"]
    twice = send("{" + name + '"limits": {}, "limits": {}}')
    assert twice.status_code == 400 and "more than once" in twice.json()["message"]
    not_json = send("name=n", content_type="application/x-www-form-urlencoded")
    assert not_json.status_code == 415, not_json.text
    invalid = send("{" + name + '"limits": {"max_queued": 0}}')
    assert invalid.status_code == 400, invalid.text
    assert [e["field"] for e in invalid.json()["errors"]] == ["limits.max_queued"]
    # Nothing was made or changed.
    assert [key.name for key in keys.list_keys()] == ["ops"]
    assert keys.get(admin_key.id) == admin_key


def test_a_key_made_while_a_keyless_server_runs_closes_every_dialect_to_keyless_callers(
    parts: Parts,
) -> None:
    settings, store, keys = parts
    ctx, _remote = app_for(settings, store)
    local = TestClient(create_app(ctx), client=LOOPBACK, base_url="http://127.0.0.1")
    kling_create = ("POST", "/v1/videos/text2video", {"prompt": "a fox"})
    kling_list = ("GET", "/v1/videos/text2video", None)
    aimlapi_list = ("GET", "/v2/video/generations", None)
    # Keyless: loopback callers need no key, in every dialect; the document says so.
    for method, path, body in (kling_create, kling_list, aimlapi_list):
        assert local.request(method, path, json=body).status_code == 200, path
    create = local.get("/openapi.json").json()["paths"]["/v2/video/generations"]["post"]
    assert {} in create["security"]
    assert ctx.auth.open_to_loopback_only

    key, secret = keys.create("first")
    assert ctx.auth.ring is not None and ctx.auth.ring.refresh()  # the ring loop's round
    assert not ctx.auth.open_to_loopback_only
    before = job_count(store)
    assert local.get("/v2/video/generations").status_code == 401
    for method, path, body in (kling_create, kling_list):
        refused = local.request(method, path, json=body)
        assert refused.status_code == 401, (path, refused.text)
        assert refused.json()["code"] == 1001 and "Authorization" in refused.json()["message"]
    assert job_count(store) == before
    # The same app takes the key in each dialect, from any address and under any host name
    # (the keyless mode's browser guard stepped aside), and documents it as required.
    keyed = TestClient(local.app, client=REMOTE, base_url="http://videos.example.com")
    made = keyed.post("/v1/videos/text2video", json={"prompt": "a fox"}, headers=bearer(secret))
    assert made.status_code == 200, made.text
    job = store.get_job(made.json()["data"]["task_id"])
    assert job is not None and job.tenant == key.tenant
    assert keyed.get("/v2/video/generations", headers=bearer(secret)).status_code == 200
    document = keyed.get("/openapi.json", headers=bearer(secret)).json()
    assert document["paths"]["/v2/video/generations"]["post"]["security"] == [{"HTTPBearer": []}]


@dataclass(frozen=True)
class Dialect:
    """How a dialect creates a job and what its 429 body says."""

    path: str
    body: dict[str, Any]
    seconds: float  # of video the body asks for
    error_body: type[BaseModel]

    def message(self, answer: Any) -> str:
        body = answer.json()
        return str(body["error"]["message"] if "error" in body else body["message"])


DIALECTS = {
    "aimlapi": Dialect(
        "/v2/video/generations", {"model": T2V, "prompt": "a red circle"}, 5, ErrorBody
    ),
    "openai": Dialect("/v1/videos", {"prompt": "a red circle", "seconds": "4"}, 4, OpenAIErrorBody),
    "kling": Dialect(
        "/v1/videos/text2video", {"prompt": "a red circle", "duration": "5"}, 5, KlingErrorBody
    ),
}
# Each limit, set so that one create fits and the next does not.
LIMITS = {
    "max_concurrent": KeyLimits(max_concurrent=1),
    "max_queued": KeyLimits(max_queued=1),
    "daily_video_seconds": KeyLimits(daily_video_seconds=6),
    "rate_per_minute": KeyLimits(rate_per_minute=1),
}


@pytest.mark.parametrize("limit", list(LIMITS))
@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_each_limit_refuses_a_create_in_each_dialect_with_429_and_creates_nothing(
    parts: Parts, dialect: str, limit: str
) -> None:
    settings, store, keys = parts
    _key, secret = keys.create(f"{dialect}-{limit}", limits=LIMITS[limit])
    _ctx, client = app_for(settings, store)
    speaks = DIALECTS[dialect]

    def create_one() -> Any:
        return client.post(speaks.path, json=speaks.body, headers=bearer(secret))

    first = create_one()
    assert first.status_code == 200, first.text
    before = job_count(store)
    over = create_one()
    if limit == "rate_per_minute" and over.status_code == 200:
        # The minute turned between the two: that create was the new minute's one.
        before, over = job_count(store), create_one()
    assert over.status_code == 429, over.text
    retry_after = int(over.headers["retry-after"])
    assert 1 <= retry_after <= (60 if limit == "rate_per_minute" else 86400)
    speaks.error_body.model_validate(over.json())  # the dialect's documented error body
    assert speaks.message(over).startswith(f"{limit}:"), over.text
    quota = limit != "rate_per_minute"
    if dialect == "aimlapi":
        assert over.json()["statusCode"] == 429
    elif dialect == "openai":
        error = over.json()["error"]
        assert error["type"] == ("insufficient_quota" if quota else "requests")
        assert error["code"] == ("quota_exceeded" if quota else "rate_limited")
    else:
        assert over.json()["code"] == (1303 if quota else 1302)
    assert job_count(store) == before


def test_max_concurrent_counts_jobs_in_flight_and_max_queued_those_not_started(
    parts: Parts,
) -> None:
    settings, store, keys = parts
    _key, secret = keys.create("c", limits=KeyLimits(max_concurrent=3, max_queued=1))
    _ctx, client = app_for(settings, store)

    def start() -> None:
        assert store.claim_next_job("w1", [T2V], lease_seconds=30) is not None

    assert create(client, secret).status_code == 200
    start()  # 1 running
    assert create(client, secret).status_code == 200  # 1 running, 1 queued
    waiting = create(client, secret)
    assert waiting.status_code == 429 and waiting.json()["message"].startswith("max_queued:")
    start()  # 2 running: the queue is free again
    assert create(client, secret).status_code == 200
    start()  # 3 running, none queued
    in_flight = create(client, secret)
    assert in_flight.status_code == 429, in_flight.text
    assert in_flight.json()["message"].startswith("max_concurrent:")
    assert "queued or running" in in_flight.json()["message"]
    assert job_count(store) == 3


def test_two_replicas_creating_at_once_admit_no_job_past_a_quota(
    parts: Parts,
) -> None:
    settings, store, keys = parts
    _key, secret = keys.create("burst", limits=KeyLimits(max_queued=3))
    # Two API processes' apps, each with its own engine (its own connections) on one database.
    other_store = open_store(settings.resolved_database_url)
    apps = [app_for(settings, store)[1].app, app_for(settings, other_store)[1].app]
    creates = 8
    start = threading.Barrier(creates)

    def create_at_once(client: TestClient) -> int:
        start.wait(timeout=30)  # every create sent at once, half through each replica
        return int(create(client, secret).status_code)

    try:
        with (
            TestClient(apps[0], client=REMOTE) as one,
            TestClient(apps[1], client=REMOTE) as two,
            ThreadPoolExecutor(creates) as pool,
        ):
            statuses = list(pool.map(create_at_once, [one, two] * (creates // 2)))
    finally:
        other_store.engine.dispose()
    assert sorted(statuses) == [200] * 3 + [429] * (creates - 3)
    assert job_count(store) == 3


def test_every_route_a_key_s_limits_can_refuse_documents_its_429(
    parts: Parts,
) -> None:
    # The rate limit counts every request a key authenticates, so every route that takes a
    # key can answer 429: the fuzzer (tests/e2e/test_fuzz.py) would count an undocumented one.
    settings, store, keys = parts
    _admin, admin_secret = keys.create("ops", scopes=list(Scope))
    _ctx, client = app_for(settings, store)
    document = client.get("/openapi.json", headers=bearer(admin_secret)).json()
    keyed = [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("security")
    ]
    assert len(keyed) > 30  # every dialect's routes, the admin API, usage, models, metrics
    for method, path, operation in keyed:
        answer = operation["responses"].get("429")
        assert answer is not None, (method, path)
        assert "Retry-After" in answer["headers"], (method, path)
        # In the dialect's own error body, as its 401 is.
        assert answer["content"] == operation["responses"]["401"]["content"], (method, path)
    creates = [("post", "/v2/video/generations"), ("post", "/v1/videos")]
    creates += [("post", "/v1/videos/text2video"), ("post", "/v1/videos/image2video")]
    for method, path in creates:
        assert "quotas" in document["paths"][path][method]["responses"]["429"]["description"]
    openai_error = document["components"]["schemas"]["OpenAIError"]["properties"]["type"]
    assert {"requests", "insufficient_quota"} <= set(openai_error["enum"])


def test_a_key_at_its_concurrent_limit_gets_its_next_job_in_once_one_finishes(
    parts: Parts,
) -> None:
    settings, store, keys = parts
    _key, secret = keys.create("c", limits=KeyLimits(max_concurrent=1))
    _ctx, client = app_for(settings, store)
    assert create(client, secret).status_code == 200
    refused = create(client, secret)
    assert refused.status_code == 429 and refused.json()["message"].startswith("max_concurrent:")
    lease = store.claim_next_job("w1", [T2V], lease_seconds=30)
    assert lease is not None and store.complete_job(lease, make_result(lease.job_id))
    assert create(client, secret).status_code == 200


def test_the_rate_limit_counts_requests_per_minute_and_changes_without_a_restart(
    parts: Parts,
) -> None:
    settings, store, keys = parts
    key, secret = keys.create("r", limits=KeyLimits(rate_per_minute=3))
    ctx, client = app_for(settings, store)
    assert ctx.auth.ring is not None

    def poll() -> Any:
        return client.get("/v2/video/generations", headers=bearer(secret))

    answers = [poll() for _ in range(4)]
    if [a.status_code for a in answers] != [200, 200, 200, 429]:
        # The minute turned during the round, and the count started again part-way (the
        # same key's next round could then start over its limit): a new key's round, which
        # cannot meet a second turn.
        key, secret = keys.create("r2", limits=KeyLimits(rate_per_minute=3))
        ctx.auth.ring.refresh()  # the new key known at once, not at the ring's next round
        answers = [poll() for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
    assert answers[-1].json()["message"].startswith("rate_per_minute:")
    keys.set_limits(key.id, KeyLimits(rate_per_minute=1000))
    assert ctx.auth.ring.refresh()
    assert poll().status_code == 200


def test_old_rate_windows_are_pruned(parts: Parts) -> None:
    _settings, store, _keys = parts
    limiter = RateLimiter(store.engine)
    limiter.hit("t", per_minute=10)
    with store.engine.begin() as conn:
        conn.execute(rate_windows.insert().values(tenant="t", minute=1, requests=5))
    assert limiter.prune() == 1
    with store.engine.connect() as conn:
        assert [row.requests for row in conn.execute(select(rate_windows))] == [1]


def test_usage_counts_each_tenants_own_jobs_and_admins_see_all(
    parts: Parts,
) -> None:
    settings, store, keys = parts
    key_a, secret_a = keys.create("a")
    key_b, secret_b = keys.create("b")
    _admin, admin_secret = keys.create("ops", scopes=list(Scope))
    _ctx, client = app_for(settings, store)
    for _ in range(2):
        assert create(client, secret_a).status_code == 200
    assert create(client, secret_b).status_code == 200
    lease = store.claim_next_job("w1", [T2V], lease_seconds=30)
    assert lease is not None and lease.job.tenant == key_a.tenant
    assert store.complete_job(lease, make_result(lease.job_id))  # engine_s 0.1

    mine = client.get("/v1/usage", headers=bearer(secret_a)).json()
    assert mine["tenant"] == key_a.tenant
    assert mine["totals"] == {
        "jobs": {"queued": 1, "succeeded": 1},
        "video_seconds": 10.0,
        "engine_seconds": 0.1,
    }
    assert [row["model"] for row in mine["data"]] == [T2V]
    refused = client.get("/v1/usage", params={"tenant": key_b.tenant}, headers=bearer(secret_a))
    assert refused.status_code == 404 and "tenant" in refused.json()["message"]
    everyone = client.get("/v1/usage", params={"tenant": "all"}, headers=bearer(admin_secret))
    assert everyone.json()["totals"]["jobs"] == {"queued": 2, "succeeded": 1}
    assert {row["tenant"] for row in everyone.json()["data"]} == {key_a.tenant, key_b.tenant}
    bad = client.get("/v1/usage", params={"days": "0"}, headers=bearer(secret_a))
    assert bad.status_code == 400 and "days" in bad.json()["message"]
    audited = [(e.action, e.target) for e in keys.audit_entries()]
    assert ("admin.usage", "all") in audited


def test_kling_routes_take_managed_keys_with_their_scopes_and_quotas(
    parts: Parts,
) -> None:
    settings, store, keys = parts
    key, secret = keys.create("kling-client", limits=KeyLimits(max_queued=1))
    _reader, read_only = keys.create("dashboard", scopes=[Scope.READ])
    _ctx, client = app_for(settings, store)
    made = client.post("/v1/videos/text2video", json={"prompt": "a fox"}, headers=bearer(secret))
    assert made.status_code == 200, made.text
    task_id = made.json()["data"]["task_id"]
    job = store.get_job(task_id)
    assert job is not None and job.tenant == key.tenant
    over = client.post("/v1/videos/text2video", json={"prompt": "again"}, headers=bearer(secret))
    assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
    assert over.json()["code"] == 1303 and "max_queued" in over.json()["message"]
    refused = client.post("/v1/videos/text2video", json={"prompt": "x"}, headers=bearer(read_only))
    assert refused.status_code == 403 and "'generate' scope" in refused.json()["message"]
    mine = client.get(f"/v1/videos/text2video/{task_id}", headers=bearer(secret))
    assert mine.status_code == 200
    theirs = client.get(f"/v1/videos/text2video/{task_id}", headers=bearer(read_only))
    assert theirs.status_code == 404 and theirs.json()["code"] == 1203
