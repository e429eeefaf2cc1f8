"""Inputs that used to raise (500) or were wrongly accepted, and the keyless mode's guard
against web pages: each answered with a 4xx in the AI/ML API error body, nothing queued, and
the server still serving. The real app on real SQLite (and PostgreSQL where it matters)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from reelforge.api.app import build_context, create_app
from reelforge.engines import Registry
from reelforge.jobs import JobStore, open_store
from reelforge.settings import Settings
from reelforge.storage import open_storage
from tests.integration.test_api_validation import I2V, LOOPBACK, T2V, assert_rejected

CREATE = "/v2/video/generations"


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, max_body_bytes=2_000_000)


@pytest.fixture
def store(app_settings: Settings) -> Iterator[JobStore]:
    opened = open_store(app_settings.resolved_database_url)
    yield opened
    opened.engine.dispose()


def client_for(
    settings: Settings, store: JobStore, base_url: str = "http://127.0.0.1:8000"
) -> TestClient:
    storage = open_storage(settings.resolved_storage_url)
    app = create_app(build_context(settings, store, storage, Registry.load()))
    # raise_server_exceptions off: a 500 must show up as a 500 here, as a client would see it.
    return TestClient(app, client=LOOPBACK, base_url=base_url, raise_server_exceptions=False)


@pytest.fixture
def client(app_settings: Settings, store: JobStore) -> TestClient:
    return client_for(app_settings, store)


def post_raw(client: TestClient, raw: bytes | str, content_type: str = "application/json") -> Any:
    return client.post(CREATE, content=raw, headers={"content-type": content_type})


def assert_still_serving(client: TestClient) -> None:
    answer = client.post(CREATE, json={"model": T2V, "prompt": "a red circle moving left"})
    assert answer.status_code == 200, answer.text


# --- bodies that are not strict JSON ---------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (f'{{"model": "{T2V}", "prompt": "x", "seed": {"7" * 5000}}}', "more than 40 digits"),
        ("[" * 100_000 + "]" * 100_000, "nested more than"),
        ('{"a":' * 40 + "1" + "}" * 40, "nested more than"),
        (f'{{"model": "{T2V}", "prompt": "\\ud800 a lone surrogate"}}', "unpaired surrogate"),
        (f'{{"model": "{T2V}", "prompt": "x", "cfg_scale": NaN}}', "NaN is not a JSON number"),
        (f'{{"model": "{T2V}", "prompt": "x", "cfg_scale": -Infinity}}', "not a JSON number"),
        (b'{"model": "\xff"}', "not UTF-8"),
    ],
)
def test_body_that_used_to_raise_is_400(
    client: TestClient, store: JobStore, raw: str | bytes, problem: str
) -> None:
    error = assert_rejected(post_raw(client, raw), 400, "body", store)
    assert problem in error["message"]
    assert_still_serving(client)


def test_duplicate_key_is_refused_naming_it(client: TestClient, store: JobStore) -> None:
    raw = f'{{"model": "{T2V}", "prompt": "a cat", "prompt": "a dog"}}'
    error = assert_rejected(post_raw(client, raw), 400, "prompt", store)
    assert "more than once" in error["message"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
def test_body_not_declared_as_json_is_415(
    client: TestClient, store: JobStore, content_type: str
) -> None:
    raw = json.dumps({"model": T2V, "prompt": "a red circle"})
    headers = {"content-type": content_type} if content_type else {}
    answer = client.post(CREATE, content=raw, headers=headers)
    error = assert_rejected(answer, 415, "body", store)
    assert "application/json" in error["message"]


def test_json_with_charset_is_accepted(client: TestClient) -> None:
    raw = json.dumps({"model": T2V, "prompt": "a red circle"})
    answer = post_raw(client, raw, "application/json; charset=utf-8")
    assert answer.status_code == 200, answer.text


# --- values that lax parsing used to accept --------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"seed": True}, "seed"),
        ({"seed": 7.0}, "seed"),
        ({"seed": "7"}, "seed"),
        ({"enhance_prompt": "yes"}, "enhance_prompt"),
        ({"advanced_camera_control": {"movement_type": "pan", "movement_value": True}}, "movement"),
    ],
)
def test_non_numbers_are_not_read_as_numbers(
    client: TestClient, store: JobStore, changes: dict[str, Any], field: str
) -> None:
    body = {"model": T2V, "prompt": "a red circle", **changes}
    assert_rejected(client.post(CREATE, json=body), 400, field, store)


def test_boolean_camera_axis_is_refused(client: TestClient, store: JobStore) -> None:
    body = {
        "model": I2V,
        "image_url": "data:image/png;base64,AAAA",
        "camera_control": {"type": "simple", "config": {"pan": True}},
    }
    assert_rejected(client.post(CREATE, json=body), 400, "camera_control", store)


# --- URLs that used to raise inside the parser -----------------------------------------


@pytest.mark.parametrize(
    "image_url",
    [
        "http://[::1",
        "http://a:abc/x.png",
        "http://example.com:99999/x.png",
        "http://xn--a/x.png",
        "http://exa\x00mple.com/x.png",
        "http://ex ample.com/x.png",
        "http:///x.png",
        "http://" + "a" * 64 + ".com/x.png",
        "http://\u2603.net/x.png",
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
def test_malformed_image_url_is_400(
    app_settings: Settings, store: JobStore, image_url: str, allow_private: bool
) -> None:
    settings = app_settings.model_copy(update={"allow_private_urls": allow_private})
    client = client_for(settings, store)
    body = {"model": I2V, "prompt": "make it move", "image_url": image_url}
    assert_rejected(client.post(CREATE, json=body), 400, "image_url", store)
    assert_still_serving(client)


# --- ids and signatures ----------------------------------------------------------------


def test_file_signature_with_non_ascii_is_403(client: TestClient) -> None:
    answer = client.get("/files/x?expires=1&signature=%C3%A9")
    assert answer.status_code == 403, answer.text
    assert answer.json()["statusCode"] == 403


@pytest.mark.parametrize("generation_id", ["a\x00b", "x" * 65, "\u00e9\u2603"])
def test_odd_generation_id_is_404(client: TestClient, generation_id: str) -> None:
    answer = client.get(CREATE, params={"generation_id": generation_id})
    assert answer.status_code == 404, answer.text
    cancel = client.post(f"{CREATE}/{generation_id.replace(chr(0), '%00')}/cancel")
    assert cancel.status_code == 404, cancel.text


@pytest.mark.postgres
def test_nul_generation_id_is_404_on_postgres(app_settings: Settings, postgres_url: str) -> None:
    store = open_store(postgres_url)
    try:
        client = client_for(app_settings.model_copy(update={"database_url": postgres_url}), store)
        answer = client.get(CREATE, params={"generation_id": "a\x00b"})
        assert answer.status_code == 404, answer.text
    finally:
        store.engine.dispose()


# --- answers that dropped what HTTP requires -------------------------------------------


def test_405_says_which_methods_are_allowed(client: TestClient) -> None:
    answer = client.put(CREATE, json={})
    assert answer.status_code == 405
    assert set(answer.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}
    assert answer.json()["statusCode"] == 405


# --- the keyless loopback mode and web pages -------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"host": "evil.example"},
        {"host": "evil.example:8000"},
        {"host": "127.0.0.1.nip.io:8000"},
        {"origin": "http://evil.example"},
        {"origin": "http://localhost:3000"},
        {"origin": "null"},
        {"sec-fetch-site": "cross-site"},
        {"sec-fetch-site": "same-site"},
    ],
)
def test_keyless_mode_refuses_web_pages_and_foreign_hosts(
    client: TestClient, store: JobStore, headers: dict[str, str]
) -> None:
    # A "simple" cross-site request: no preflight, so only the server can stop it.
    body = json.dumps({"model": T2V, "prompt": "a red circle"})
    answer = client.post(
        CREATE, content=body, headers={"content-type": "application/json", **headers}
    )
    assert answer.status_code == 403, answer.text
    assert answer.json()["statusCode"] == 403
    assert "REELFORGE_API_KEYS" in answer.json()["message"]
    assert sum(store.count_by_status().values()) == 0
    poll = client.get(CREATE, params={"generation_id": "x"}, headers=headers)
    assert poll.status_code == 403


@pytest.mark.parametrize(
    ("base_url", "headers"),
    [
        ("http://127.0.0.1:8000", {}),
        ("http://localhost:8000", {"origin": "http://localhost:8000"}),
        ("http://[::1]:8000", {"sec-fetch-site": "same-origin"}),
        ("http://127.0.0.1:8000", {"sec-fetch-site": "none"}),
    ],
)
def test_keyless_mode_serves_loopback_names_and_same_origin(
    app_settings: Settings, store: JobStore, base_url: str, headers: dict[str, str]
) -> None:
    client = client_for(app_settings, store, base_url=base_url)
    answer = client.post(CREATE, json={"model": T2V, "prompt": "a red circle"}, headers=headers)
    assert answer.status_code == 200, answer.text


def test_keyed_server_serves_any_host(app_settings: Settings, store: JobStore) -> None:
    settings = app_settings.model_copy(update={"api_keys": ["k1"]})
    client = client_for(settings, store, base_url="http://videos.example.com")
    answer = client.post(
        CREATE,
        json={"model": T2V, "prompt": "a red circle"},
        headers={"authorization": "Bearer k1", "origin": "https://app.example.com"},
    )
    assert answer.status_code == 200, answer.text


# --- the OpenAPI document (tests/e2e/test_fuzz.py fuzzes a live server against it) --------


def test_openapi_document_declares_bodies_keys_and_real_error_answers(
    app_settings: Settings, store: JobStore
) -> None:
    keyed = client_for(app_settings.model_copy(update={"api_keys": ["k1"]}), store)
    assert keyed.get("/openapi.json").status_code == 401  # the API's access rule
    document = keyed.get("/openapi.json", headers={"Authorization": "Bearer k1"}).json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # the server answers 400, never 422
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert "422" not in operation["responses"], (method, path)
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")) and (path, status) != ("/healthz", "503"):
                    schema = answer["content"]["application/json"]["schema"]
                    # Each dialect documents its own error body: Kling's under its two
                    # endpoints, OpenAI's under the rest of /v1/videos.
                    body = (
                        "KlingErrorBody"
                        if path.startswith(("/v1/videos/text2video", "/v1/videos/image2video"))
                        else "OpenAIErrorBody"
                        if path.startswith("/v1/videos")
                        else "ErrorBody"
                    )
                    assert schema == {"$ref": f"#/components/schemas/{body}"}, (path, status)
    create = document["paths"][CREATE]["post"]
    assert create["requestBody"]["required"] is True
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/CreateVideoRequest"}
    assert schemas["CreateVideoRequest"]["properties"]["model"]["enum"] == Registry.load().ids
    assert "$defs" not in json.dumps(document)  # every sub-schema under components
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert create["security"] == [{"HTTPBearer": []}]
    health = document["paths"]["/healthz"]["get"]
    assert "security" not in health
    unhealthy = health["responses"]["503"]["content"]["application/json"]["schema"]["anyOf"]
    assert {"$ref": "#/components/schemas/HealthDatabaseDown"} in unhealthy


def test_keyless_server_documents_the_key_as_optional(client: TestClient) -> None:
    create = client.get("/openapi.json").json()["paths"][CREATE]["post"]
    assert create["security"] == [{"HTTPBearer": []}, {}]


# --- a full job database -----------------------------------------------------------------


def test_full_sqlite_database_answers_507_and_keeps_serving(
    app_settings: Settings, store: JobStore
) -> None:
    with store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    store.engine.dispose()

    @event.listens_for(store.engine, "connect")
    def _full(dbapi_connection: Any, _record: Any) -> None:
        # A real SQLITE_FULL ("database or disk is full") without filling a disk.
        dbapi_connection.execute(f"PRAGMA max_page_count={pages}")

    client = client_for(app_settings, store)
    body = {"model": T2V, "prompt": "x" * 2000}
    answers = [client.post(CREATE, json=body) for _ in range(40)]
    full = [a for a in answers if a.status_code != 200]
    assert full, "the database never filled up"
    for answer in full:
        assert answer.status_code == 507, answer.text
        assert "full" in answer.json()["message"]
    created = [a.json()["id"] for a in answers if a.status_code == 200]
    for job_id in created:  # what was accepted is still there and readable
        assert client.get(CREATE, params={"generation_id": job_id}).status_code == 200


# --- the switch that opens private networks --------------------------------------------


@pytest.mark.parametrize(
    "image_url", ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/x.png"]
)
def test_allowing_private_urls_keeps_cloud_metadata_closed(
    app_settings: Settings, store: JobStore, image_url: str
) -> None:
    # Refused before any connection is attempted: the guard checks the literal address.
    settings = app_settings.model_copy(update={"allow_private_urls": True})
    body = {"model": I2V, "prompt": "move", "image_url": image_url}
    error = assert_rejected(
        client_for(settings, store).post(CREATE, json=body), 400, "image_url", store
    )
    assert "metadata" in error["message"]
