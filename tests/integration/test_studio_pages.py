"""The pages of `api/pages.py` (the studio's files, the offline docs) and what the studio
reads from the API: each model's create limits, each generation's parameters, and an
OpenAPI document in which every route has its schemas. The browser tests are in
tests/e2e/test_studio.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reelforge.api.app import build_context, create_app
from reelforge.api.pages import DOCS_ASSETS, STUDIO_FILES
from reelforge.engines import Registry
from reelforge.engines.capabilities import Capabilities
from reelforge.engines.registry import ModelEntry
from reelforge.jobs import JobStore, open_store
from reelforge.settings import Settings
from reelforge.storage import open_storage
from tests.integration.test_api_validation import LOOPBACK, T2V

CREATE = "/v2/video/generations"
SHORT = "short/model"
BODYLESS_WRITES = ("/cancel", "/rotate")


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


@pytest.fixture
def store(app_settings: Settings) -> JobStore:
    return open_store(app_settings.resolved_database_url)


def client_for(settings: Settings, store: JobStore, registry: Registry | None = None) -> TestClient:
    storage = open_storage(settings.resolved_storage_url)
    app = create_app(build_context(settings, store, storage, registry or Registry.load()))
    return TestClient(app, client=LOOPBACK, base_url="http://127.0.0.1:8000")


@pytest.fixture
def client(app_settings: Settings, store: JobStore) -> TestClient:
    return client_for(app_settings, store)


def test_the_studio_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    # Every file the page names is one the server has, and none comes from elsewhere.
    named = set(re.findall(r'(?:src|href)="([^"#]+)"', page.text))
    assert {"/studio/studio.js", "/studio/studio.css", "/studio/favicon.svg"} <= named
    for path in named:
        assert path.startswith("/"), path
        assert client.get(path).status_code == 200, path
    for name, media_type in STUDIO_FILES.items():
        answer = client.get(f"/studio/{name}")
        assert answer.headers["content-type"] == media_type
        assert answer.headers["cache-control"] == "no-cache"


def test_files_outside_the_lists_are_404_in_the_error_body(client: TestClient) -> None:
    for path in ("/studio/__init__.py", "/studio/..%2Fpages.py", "/docs/assets/core.py"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert answer.json()["statusCode"] == 404


def test_docs_load_only_the_packaged_swagger_ui(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", page.text)
    assert urls and all(url.startswith("/") for url in urls), urls
    for name, media_type in DOCS_ASSETS.items():
        asset = client.get(f"/docs/assets/{name}")
        assert asset.status_code == 200
        assert asset.headers["content-type"] == media_type
        assert len(asset.content) > 100_000  # the real bundle, not a stub
    assert client.get("/redoc").status_code == 404


def test_a_keyed_server_serves_the_page_without_a_key_and_says_keys_are_needed(
    app_settings: Settings, store: JobStore
) -> None:
    keyed = client_for(app_settings.model_copy(update={"api_keys": ["k1"]}), store)
    assert keyed.get("/").status_code == 200
    assert keyed.get("/docs").status_code == 200
    assert keyed.get("/studio/config.json").json() == {"key_required": True}
    assert keyed.get("/v1/models").status_code == 401


def test_a_keyless_server_says_no_key_is_needed_and_keeps_other_sites_out(
    client: TestClient,
) -> None:
    assert client.get("/studio/config.json").json() == {"key_required": False}
    # The browser guard still stands in front of the API the page calls.
    refused = client.post(
        CREATE,
        json={"model": T2V, "prompt": "x"},
        headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
    )
    assert refused.status_code == 403
    typed = client.get("/", headers={"sec-fetch-site": "none"})
    assert typed.status_code == 200


def test_models_answer_the_create_limits_of_each_model(
    app_settings: Settings, store: JobStore
) -> None:
    registry = Registry(
        [
            ModelEntry(T2V, "testsrc", capabilities=Capabilities(tasks=frozenset({"t2v"}))),
            ModelEntry(
                SHORT,
                "testsrc",
                capabilities=Capabilities(tasks=frozenset({"i2v"}), max_seconds=6),
            ),
        ]
    )
    cards = {
        c["id"]: c
        for c in client_for(app_settings, store, registry).get("/v1/models").json()["data"]
    }
    t2v, short = cards[T2V]["parameters"], cards[SHORT]["parameters"]
    assert t2v["duration"] == {"choices": [5, 10], "default": 5}
    assert short["duration"] == {"choices": [5], "default": 5}  # max_seconds 6
    assert t2v["aspect_ratio"] == {"choices": ["16:9", "9:16", "1:1"], "default": "16:9"}
    assert t2v["cfg_scale"] == {"minimum": 0, "maximum": 1, "default": 0.5}
    assert t2v["seed"] == {"minimum": 0, "maximum": 2**32 - 1}
    assert "down_back" in t2v["camera_control"]["choices"]
    assert t2v["prompt"] == {"max_length": 2500, "required": True}
    assert short["prompt"]["required"] is False  # an image alone will do
    assert short["image_url"] == {"required": True, "accepted": True}
    assert t2v["image_url"] == {"required": False, "accepted": False}
    assert cards[T2V]["capabilities"]["tasks"] == ["t2v"]  # the earlier fields stay


def test_a_generation_answers_the_parameters_it_was_made_with(client: TestClient) -> None:
    body = {
        "model": T2V,
        "prompt": " a red fox ",
        "negative_prompt": "blur",
        "aspect_ratio": "9:16",
        "duration": "10",
        "cfg_scale": 0.7,
        "camera_control": "forward_up",
        "seed": 42,
    }
    created = client.post(CREATE, json=body).json()
    polled = client.get(CREATE, params={"generation_id": created["id"]}).json()
    assert polled["seed"] == 42
    assert polled["parameters"] == {
        "prompt": "a red fox",
        "negative_prompt": "blur",
        "aspect_ratio": "9:16",
        "duration": 10,
        "cfg_scale": 0.7,
        "camera": "the camera moves forward and tilts up",
        "camera_control": "forward_up",
        "image_to_video": False,
    }
    still = client.post(CREATE, json={"model": T2V, "prompt": "x"}).json()["parameters"]
    assert still["camera"] is None and still["camera_control"] is None


def test_every_route_is_documented_with_its_schemas(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    pages = {"/", "/docs", "/studio/{name}", "/studio/config.json", "/docs/assets/{name}"}
    assert not pages & set(document["paths"])  # pages are not API routes
    for path, item in document["paths"].items():
        for method, operation in item.items():
            answers = [a for status, a in operation["responses"].items() if status[0] == "2"]
            assert answers and all(a.get("content") for a in answers), (method, path)
            for media in (a["content"].values() for a in answers):
                assert all("schema" in m for m in media), (method, path)
            # Every write takes a JSON body except the two that act on a path alone.
            if method in ("post", "patch") and not path.endswith(BODYLESS_WRITES):
                body = operation["requestBody"]["content"]["application/json"]["schema"]
                assert body["$ref"].startswith("#/components/schemas/"), (method, path)
            assert "422" not in operation["responses"], (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize(
    ("docs", "without_key", "with_key", "page", "models"),
    [
        ("keyed", 401, 200, 200, 401),
        ("public", 200, 200, 200, 200),
        ("off", 404, 404, 404, 401),
    ],
)
def test_the_openapi_document_follows_the_docs_setting(
    app_settings: Settings,
    store: JobStore,
    docs: str,
    without_key: int,
    with_key: int,
    page: int,
    models: int,
) -> None:
    keyed = client_for(app_settings.model_copy(update={"api_keys": ["k1"], "docs": docs}), store)
    assert keyed.get("/openapi.json").status_code == without_key
    # The model list, keyless, goes with the document (never closed: the studio needs it).
    assert keyed.get("/v1/models").status_code == models
    assert keyed.get("/v1/models", headers={"Authorization": "Bearer k1"}).status_code == 200
    answer = keyed.get("/openapi.json", headers={"Authorization": "Bearer k1"})
    assert answer.status_code == with_key
    assert keyed.get("/docs").status_code == page  # the page holds nothing secret
    if page == 200:
        assert "/studio/docs.js" in keyed.get("/docs").text
        assert keyed.get("/studio/docs.js").status_code == 200
