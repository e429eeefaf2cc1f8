"""Tenants apart: each key sees only its own jobs, on every route of every dialect (another
tenant's ids answer 404, not 403); file links are signed capabilities bound to their job;
the admin scope reads every tenant's. Real app, real SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from reelforge.jobs.schema import jobs
from reelforge.tenancy.keys import Scope
from tests.integration.keyed_api import Parts, app_for, bearer, create, finish_all
from tests.integration.test_kling_api import png_base64

AIMLAPI_PATHS = ("/v2/video/generations", "/v2/generate/video/kling/generation")
KLING_T2V, KLING_I2V = "/v1/videos/text2video", "/v1/videos/image2video"
BOOTSTRAP = "bootstrap-key-of-the-operator"


def _made(answer: Any) -> Any:
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_another_tenants_jobs_are_404_on_every_route_of_every_dialect(parts: Parts) -> None:
    settings, store, keys = parts
    key_a, secret_a = keys.create("a")
    _b, secret_b = keys.create("b")
    ctx, client = app_for(settings, store)
    a, b = bearer(secret_a), bearer(secret_b)
    aimlapi_id = _made(create(client, secret_a))["id"]
    openai_id = _made(client.post("/v1/videos", json={"prompt": "mine"}, headers=a))["id"]
    kling_t2v = _made(
        client.post(KLING_T2V, json={"prompt": "p", "external_task_id": "order-a"}, headers=a)
    )["data"]["task_id"]
    kling_i2v = _made(
        client.post(
            KLING_I2V, json={"image": png_base64(), "external_task_id": "still-a"}, headers=a
        )
    )["data"]["task_id"]
    every_id = [aimlapi_id, openai_id, kling_t2v, kling_i2v]
    # Finished, so that A's content and file links exist: B's 404s below are not the 404 of
    # a video not made yet.
    assert sorted(finish_all(ctx)) == sorted(every_id)
    poll = _made(client.get(f"{AIMLAPI_PATHS[0]}/{aimlapi_id}", headers=a))
    assert poll["status"] == "completed"
    assert client.get(f"/v1/videos/{openai_id}/content", headers=a).status_code == 200
    assert _made(client.get(f"{KLING_T2V}/order-a", headers=a))["data"]["task_id"] == kling_t2v
    assert _made(client.get(f"{KLING_I2V}/{kling_i2v}", headers=a))["data"]["task_status"] == (
        "succeed"
    )

    routes: list[tuple[str, str, dict[str, Any] | None]] = []
    for path in AIMLAPI_PATHS:
        for job_id in every_id:  # every dialect reads every dialect's jobs
            routes += [
                ("GET", path, {"generation_id": job_id}),
                ("GET", f"{path}/{job_id}", None),
                ("POST", f"{path}/{job_id}/cancel", None),  # A's would be 409: done
                ("GET", f"{path}/{job_id}/webhooks", None),
                ("GET", f"{path}/{job_id}/events", None),
                ("DELETE", f"{path}/{job_id}", None),
            ]
    for job_id in every_id:
        routes += [
            ("GET", f"/v1/videos/{job_id}", None),
            ("GET", f"/v1/videos/{job_id}/content", None),
            ("GET", f"/v1/videos/{job_id}/content", {"variant": "thumbnail"}),
            ("DELETE", f"/v1/videos/{job_id}", None),
        ]
    routes += [
        ("GET", f"{KLING_T2V}/{kling_t2v}", None),
        ("GET", f"{KLING_T2V}/order-a", None),  # A's external_task_id
        ("GET", f"{KLING_I2V}/{kling_i2v}", None),
        ("GET", f"{KLING_I2V}/still-a", None),
    ]
    for method, path, params in routes:
        answer = client.request(method, path, params=params, headers=b)
        assert answer.status_code == 404, (method, path, params, answer.status_code, answer.text)
    for job_id in every_id:
        remix = client.post(f"/v1/videos/{job_id}/remix", json={"prompt": "x"}, headers=b)
        assert remix.status_code == 404, remix.text
    for listing in (*AIMLAPI_PATHS, "/v1/videos", KLING_T2V, KLING_I2V):
        listed = client.get(listing, headers=b)
        assert listed.status_code == 200, listed.text
        assert listed.json()["data"] == [], listing
    assert _made(client.get("/v1/usage", headers=b))["totals"]["jobs"] == {}
    theirs = client.get("/v1/usage", params={"tenant": key_a.tenant}, headers=b)
    assert theirs.status_code == 404 and theirs.json()["errors"][0]["field"] == "tenant"
    everyone = client.get("/v1/usage", params={"tenant": "all"}, headers=b)
    assert everyone.status_code == 403 and "admin" in everyone.json()["message"]

    # Tenant A still has every job, finished, untouched by B's cancels and deletes.
    mine = _made(client.get(AIMLAPI_PATHS[0], headers=a))["data"]
    assert sorted(job["id"] for job in mine) == sorted(every_id)
    assert {job["status"] for job in mine} == {"completed"}
    assert all(store.get_job(job_id) is not None for job_id in every_id)


def test_a_file_link_is_a_capability_that_dies_with_its_job(parts: Parts) -> None:
    settings, store, keys = parts
    _a, secret_a = keys.create("a")
    _b, secret_b = keys.create("b")
    ctx, client = app_for(settings, store)
    kept_id = _made(create(client, secret_a))["id"]
    deleted_id = _made(create(client, secret_a))["id"]
    expired_id = _made(create(client, secret_a))["id"]
    finish_all(ctx)

    def links(job_id: str) -> list[str]:
        poll = _made(client.get(f"{AIMLAPI_PATHS[0]}/{job_id}", headers=bearer(secret_a)))
        return [poll[name]["url"] for name in ("video", "preview", "thumbnail")]

    kept, deleted, expired = links(kept_id), links(deleted_id), links(expired_id)
    # A signed link alone is enough, as the hosted API's CDN links are: whoever A hands it
    # to fetches it, with another tenant's key or with none.
    anyone = TestClient(client.app, client=("198.51.100.7", 4000), base_url="http://127.0.0.1")
    for url in kept:
        assert anyone.get(url).status_code == 200
        assert client.get(url, headers=bearer(secret_b)).status_code == 200
    # But it names one file: its signature does not open the job's other files.
    video_url, _preview, thumbnail_url = kept
    forged = thumbnail_url.split("?")[0] + "?" + video_url.split("?")[1]
    assert anyone.get(forged).status_code == 403
    # A deleted job's links die with it; so do those of a job whose retention ran out.
    assert client.delete(f"{AIMLAPI_PATHS[0]}/{deleted_id}", headers=bearer(secret_a)).json() == {
        "id": deleted_id,
        "deleted": True,
    }
    with store.engine.begin() as conn:  # its retention over, as the clock would make it
        conn.execute(jobs.update().where(jobs.c.id == expired_id).values(expires_at=0))
    assert ctx.generations.sweep_expired() == 1
    for url in deleted + expired:
        gone = anyone.get(url)
        assert gone.status_code == 404, gone.text
    assert all(anyone.get(url).status_code == 200 for url in kept)


def test_a_bootstrap_key_is_an_admin(parts: Parts) -> None:
    settings, store, keys = parts
    keys.create("app", scopes=[Scope.READ])
    settings = settings.model_copy(update={"api_keys": [BOOTSTRAP]})
    _ctx, client = app_for(settings, store)
    listed = client.get("/v1/admin/keys", headers=bearer(BOOTSTRAP))
    assert listed.status_code == 200, listed.text
    assert [key["name"] for key in listed.json()["data"]] == ["app"]
    made = client.post("/v1/admin/keys", json={"name": "by-bootstrap"}, headers=bearer(BOOTSTRAP))
    assert made.status_code == 201, made.text
    assert ("bootstrap", "key.create") in [(e.actor, e.action) for e in keys.audit_entries()]
    assert client.get("/v1/admin/keys", headers=bearer("not-the-key")).status_code == 401


def test_an_admin_key_reads_every_tenants_jobs_when_it_asks_and_on_the_record(
    parts: Parts,
) -> None:
    settings, store, keys = parts
    key_a, secret_a = keys.create("a")
    key_b, secret_b = keys.create("b")
    admin_key, admin_secret = keys.create("ops", scopes=list(Scope))
    _ctx, client = app_for(settings, store)
    a_jobs = [_made(create(client, secret_a))["id"] for _ in range(2)]
    b_job = _made(client.post("/v1/videos", json={"prompt": "b's"}, headers=bearer(secret_b)))["id"]
    admin = bearer(admin_secret)

    def ids(path: str, **params: str) -> list[str]:
        return [job["id"] for job in _made(client.get(path, params=params, headers=admin))["data"]]

    for listing in (AIMLAPI_PATHS[0], "/v1/videos"):
        assert ids(listing) == []  # unasked, an admin key lists its own, as any key does
        assert ids(listing, tenant=key_a.tenant) == a_jobs[::-1]
        assert ids(listing, tenant=key_b.tenant) == [b_job]
        assert ids(listing, tenant="all") == [b_job, *a_jobs[::-1]]
    # Every tenant's, a page at a time.
    first = _made(
        client.get(AIMLAPI_PATHS[0], params={"tenant": "all", "limit": "2"}, headers=admin)
    )
    assert first["has_more"] and [job["id"] for job in first["data"]] == [b_job, a_jobs[1]]
    assert ids(AIMLAPI_PATHS[0], tenant="all", after=first["last_id"]) == [a_jobs[0]]

    polls = [
        (AIMLAPI_PATHS[0], {"generation_id": b_job}),
        (f"{AIMLAPI_PATHS[1]}/{b_job}", {}),
        (f"/v1/videos/{b_job}", {}),
    ]
    for path, params in polls:
        unasked = client.get(path, params=params, headers=admin)
        assert unasked.status_code == 404, path  # its own only, unless it asks
        for tenant in ("all", key_b.tenant):
            asked = client.get(path, params={**params, "tenant": tenant}, headers=admin)
            assert asked.status_code == 200 and asked.json()["id"] == b_job, (path, tenant)
        elsewhere = client.get(path, params={**params, "tenant": key_a.tenant}, headers=admin)
        assert elsewhere.status_code == 404, path

    # A key without the admin scope: another tenant's is a 404, every tenant's a 403, and its
    # own tenant named is its own.
    a = bearer(secret_a)
    for path, params in [(AIMLAPI_PATHS[0], {}), ("/v1/videos", {}), *polls]:
        theirs = client.get(path, params={**params, "tenant": key_b.tenant}, headers=a)
        assert theirs.status_code == 404, (path, theirs.text)
        everyone = client.get(path, params={**params, "tenant": "all"}, headers=a)
        assert everyone.status_code == 403 and "admin" in everyone.text, path
    own = client.get(AIMLAPI_PATHS[0], params={"tenant": key_a.tenant}, headers=a)
    assert [job["id"] for job in own.json()["data"]] == a_jobs[::-1]

    audited = {(e.actor, e.action, e.target) for e in keys.audit_entries(limit=1000)}
    assert (admin_key.id, "admin.jobs", "all") in audited
    assert (admin_key.id, "admin.jobs", key_b.tenant) in audited
    assert not any(actor == key_a.id for actor, _action, _target in audited)
    document = client.get("/openapi.json", headers=admin).json()
    for path, method in [(AIMLAPI_PATHS[0], "get"), ("/v1/videos", "get")]:
        parameters = document["paths"][path][method]["parameters"]
        assert "tenant" in [parameter["name"] for parameter in parameters], path
