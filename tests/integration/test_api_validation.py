"""Bad requests to the AI/ML API dialect: a 4xx in its error format naming the field, and no
job created. Runs the real app on a real SQLite store and local storage (no worker needed)."""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from reelforge.api.app import build_context, create_app
from reelforge.engines import Registry
from reelforge.jobs import JobStatus, JobStore, WorkerState, open_store
from reelforge.settings import Settings
from reelforge.storage import open_storage
from tests.conftest import make_spec
from tests.fixtures.peers import Answer, peer_pair

T2V = "klingai/v2-master-text-to-video"
I2V = "klingai/v2-master-image-to-video"
LOOPBACK = ("127.0.0.1", 40000)


def png_bytes(width: int = 32, height: int = 24) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


@pytest.fixture
def app_parts(tmp_path: Path) -> Iterator[tuple[Settings, JobStore]]:
    settings = Settings(data_dir=tmp_path, image_max_bytes=200_000, max_body_bytes=400_000)
    store = open_store(settings.resolved_database_url)
    yield settings, store
    store.engine.dispose()


def make_client(
    settings: Settings,
    store: JobStore,
    client: tuple[str, int] = LOOPBACK,
    registry: Registry | None = None,
) -> TestClient:
    ctx = build_context(
        settings, store, open_storage(settings.resolved_storage_url), registry or Registry.load()
    )
    return TestClient(create_app(ctx), client=client, base_url="http://127.0.0.1")


@pytest.fixture
def client(app_parts: tuple[Settings, JobStore]) -> TestClient:
    return make_client(*app_parts)


@pytest.fixture
def store(app_parts: tuple[Settings, JobStore]) -> JobStore:
    return app_parts[1]


def assert_rejected(response: Any, status: int, field: str, store: JobStore) -> dict[str, Any]:
    """The AI/ML API error body, naming `field`, and nothing queued."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) >= {"message", "path", "requestId", "statusCode", "timestamp"}
    assert body["statusCode"] == status
    assert body["path"] == "/v2/video/generations"
    assert body["requestId"] == response.headers["x-request-id"]
    assert field in body["message"]
    assert sum(store.count_by_status().values()) == 0
    return body


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"model": "acme/unknown"}, "model"),
        ({"prompt": None}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio"),
        ({"ratio": "21:9"}, "ratio"),
        ({"duration": 7}, "duration"),
        ({"duration": "7"}, "duration"),
        ({"duration": True}, "duration"),
        ({"cfg_scale": 1.5}, "cfg_scale"),
        ({"cfg_scale": "abc"}, "cfg_scale"),
        ({"camera_control": "barrel_roll"}, "camera_control"),
        (
            {"advanced_camera_control": {"movement_type": "zoom", "movement_value": 11}},
            "advanced_camera_control",
        ),
        (
            {"advanced_camera_control": {"movement_type": "dolly", "movement_value": 1}},
            "advanced_camera_control",
        ),
        ({"seed": -1}, "seed"),
        ({"negative_prompt": "x" * 2501}, "negative_prompt"),
        ({"image_url": data_uri(png_bytes())}, "image_url"),
    ],
)
def test_bad_text_to_video_field_is_named(
    client: TestClient, store: JobStore, changes: dict[str, Any], field: str
) -> None:
    body = {"model": T2V, "prompt": "a raccoon in a forest", **changes}
    body = {k: v for k, v in body.items() if v is not None}
    assert_rejected(client.post("/v2/video/generations", json=body), 400, field, store)


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
def test_text_over_2500_characters_is_named_and_2500_is_taken(
    client: TestClient, store: JobStore, field: str
) -> None:
    body = {"model": T2V, "prompt": "a raccoon", field: "x" * 2501}
    error = assert_rejected(client.post("/v2/video/generations", json=body), 400, field, store)
    assert error["message"].startswith(f"{field}: ") and "2500 characters" in error["message"]
    at_limit = client.post("/v2/video/generations", json={**body, field: "x" * 2500})
    assert at_limit.status_code == 200, at_limit.text


@pytest.mark.parametrize(
    ("image_url", "field_problem"),
    [
        (None, "required"),
        ("not base64 at all!", "base64"),
        (data_uri(b"this is plain text, not a picture"), "decodable image"),
        ("ftp://example.com/a.png", "scheme"),
        # A loopback refusal names the setting that allows it.
        ("http://127.0.0.1:9/cat.png", "REELFORGE_ALLOW_PRIVATE_URLS (or"),
        ("http://[::1]/cat.png", "non-public address"),
        ("http://169.254.169.254/latest/meta-data", "cloud metadata address"),
        ("http://10.0.0.8/cat.png", "non-public address"),
    ],
)
def test_bad_image_url_is_named(
    client: TestClient, store: JobStore, image_url: str | None, field_problem: str
) -> None:
    body: dict[str, Any] = {"model": I2V, "prompt": "make it move"}
    if image_url is not None:
        body["image_url"] = image_url
    error = assert_rejected(
        client.post("/v2/video/generations", json=body), 400, "image_url", store
    )
    assert field_problem in error["message"]


def test_oversized_inline_image_is_413(client: TestClient, store: JobStore) -> None:
    body = {"model": I2V, "image_url": data_uri(b"\x89PNG" + b"0" * 250_000)}
    error = assert_rejected(
        client.post("/v2/video/generations", json=body), 413, "image_url", store
    )
    assert "image_url: image too large (more than 200000 bytes)" in error["message"]
    assert error["errors"] == [
        {"field": "image_url", "message": "image too large (more than 200000 bytes)"}
    ]


def test_an_image_past_the_body_limit_is_too_large_not_a_body_error(
    client: TestClient, store: JobStore
) -> None:
    # 350 kB of image, 467 kB as a data URI: past the 400 kB body limit, before the image's.
    body = {"model": I2V, "prompt": "x", "image_url": data_uri(b"\x89PNG" + b"0" * 350_000)}
    error = assert_rejected(
        client.post("/v2/video/generations", json=body), 413, "image_url", store
    )
    assert error["message"].startswith("image_url: image too large (the request body is larger")
    # `errors` names the field once, as for any other field's problem.
    [named] = error["errors"]
    assert named["field"] == "image_url"
    assert named["message"].startswith("image too large (the request body is larger")


def test_image_over_pixel_limit_is_refused(app_parts: tuple[Settings, JobStore]) -> None:
    settings, store = app_parts
    client = make_client(settings.model_copy(update={"image_max_pixels": 100}), store)
    body = {"model": I2V, "image_url": data_uri(png_bytes(20, 20))}
    error = assert_rejected(
        client.post("/v2/video/generations", json=body), 400, "image_url", store
    )
    assert "pixels" in error["message"]


def test_malformed_json_names_body(client: TestClient, store: JobStore) -> None:
    response = client.post(
        "/v2/video/generations", content=b'{"model": ', headers={"content-type": "application/json"}
    )
    assert "malformed JSON" in assert_rejected(response, 400, "body", store)["message"]


def test_non_object_json_names_body(client: TestClient, store: JobStore) -> None:
    assert_rejected(client.post("/v2/video/generations", json=[1, 2]), 400, "body", store)


def test_oversized_body_is_413(client: TestClient, store: JobStore) -> None:
    body = {"model": T2V, "prompt": "x", "padding": "y" * 500_000}
    error = assert_rejected(client.post("/v2/video/generations", json=body), 413, "body", store)
    assert "the request body is larger than 400000 bytes" in error["message"]


def test_several_bad_fields_are_all_named(client: TestClient, store: JobStore) -> None:
    body = {"model": T2V, "prompt": "x", "aspect_ratio": "4:3", "duration": 7, "cfg_scale": 2}
    error = assert_rejected(client.post("/v2/video/generations", json=body), 400, "duration", store)
    assert {e["field"] for e in error["errors"]} == {"aspect_ratio", "duration", "cfg_scale"}


def test_empty_generation_id_is_named(client: TestClient) -> None:
    response = client.get("/v2/video/generations", params={"generation_id": ""})
    assert response.status_code == 400
    assert "generation_id" in response.json()["message"]


def test_unknown_generation_is_404(client: TestClient) -> None:
    response = client.get("/v2/video/generations", params={"generation_id": "nope"})
    assert response.status_code == 404
    assert response.json()["statusCode"] == 404


def test_cancel_of_an_unknown_generation_is_404(client: TestClient) -> None:
    response = client.post("/v2/video/generations/nope/cancel")
    assert response.status_code == 404
    assert response.json()["path"] == "/v2/video/generations/nope/cancel"
    assert "nope" in response.json()["message"]


def test_cancel_ends_a_queued_generation(client: TestClient, store: JobStore) -> None:
    created = client.post("/v2/video/generations", json={"model": T2V, "prompt": "x"}).json()
    response = client.post(f"/v2/generate/video/kling/generation/{created['id']}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "error" and body["cancel_requested"] is True
    assert body["error"] == {"name": "canceled", "message": "the generation was canceled"}
    assert store.count_by_status()[JobStatus.CANCELED] == 1


def test_valid_request_is_queued_with_exact_size(client: TestClient, store: JobStore) -> None:
    body = {"model": T2V, "prompt": "x", "aspect_ratio": "9:16", "duration": "10", "seed": 42}
    created = client.post("/v2/video/generations", json=body)
    assert created.status_code == 200, created.text
    generation = created.json()
    assert generation["status"] == "queued"
    assert generation["seed"] == 42
    assert generation["queue_position"] == 0
    assert (generation["meta"]["width"], generation["meta"]["height"]) == (720, 1280)
    assert generation["meta"]["usage"]["frames"] == 240
    polled = client.get("/v2/video/generations", params={"generation_id": generation["id"]})
    assert polled.json()["id"] == generation["id"]
    assert store.count_by_status()["queued"] == 1  # type: ignore[index]


def test_fields_the_model_does_not_honour_are_reported_in_meta(
    app_parts: tuple[Settings, JobStore], tmp_path: Path
) -> None:
    models = tmp_path / "models.toml"
    models.write_text('[models."acme/plain"]\nengine = "testsrc"\n')
    client = make_client(*app_parts, registry=Registry.load(models))
    body = {
        "model": "acme/plain",
        "prompt": "x",
        "negative_prompt": "blur",
        "camera_control": "down_back",
        "enhance_prompt": True,
        "tail_image_url": "https://example.com/last.png",
    }
    created = client.post("/v2/video/generations", json=body)
    assert created.status_code == 200, created.text
    expected = ["enhance_prompt", "tail_image_url", "negative_prompt", "camera_control"]
    assert created.json()["meta"]["ignored"] == expected
    # Kept with the job: every poll reports it.
    polled = client.get("/v2/video/generations", params={"generation_id": created.json()["id"]})
    assert polled.json()["meta"]["ignored"] == expected
    plain = client.post("/v2/video/generations", json={"model": "acme/plain", "prompt": "x"})
    assert plain.json()["meta"]["ignored"] == []


def test_seed_is_chosen_and_reported_when_absent(client: TestClient) -> None:
    seeds = {
        client.post("/v2/video/generations", json={"model": T2V, "prompt": "x"}).json()["seed"]
        for _ in range(3)
    }
    assert all(isinstance(seed, int) for seed in seeds)
    assert len(seeds) > 1


def test_legacy_path_creates_and_polls(client: TestClient) -> None:
    created = client.post("/v2/generate/video/kling/generation", json={"model": T2V, "prompt": "x"})
    assert created.status_code == 200
    polled = client.get(
        "/v2/generate/video/kling/generation", params={"generation_id": created.json()["id"]}
    )
    assert polled.json()["status"] == "queued"


class _ImageHandler(BaseHTTPRequestHandler):
    """A loopback HTTP server for image_url downloads: /ok.png, /big.png, /text, /missing."""

    def do_GET(self) -> None:
        routes = {
            "/ok.png": (200, png_bytes(), "image/png"),
            "/big.png": (200, b"\x89PNG" + b"\x00" * 300_000, "image/png"),
            "/text": (200, b"hello, not an image", "text/plain"),
        }
        status, data, kind = routes.get(self.path, (404, b"missing", "text/plain"))
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ImageHandler)
    # shutdown() waits for the loop's next poll: 0.5 s by default, at every teardown.
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def private_ok_client(app_parts: tuple[Settings, JobStore]) -> TestClient:
    settings, store = app_parts
    return make_client(settings.model_copy(update={"allow_private_urls": True}), store)


@pytest.mark.parametrize(
    ("path", "status", "problem"),
    [
        ("/missing", 400, "answered 404"),
        ("/text", 400, "decodable image"),
        ("/big.png", 413, "image too large"),
    ],
)
def test_downloaded_image_is_checked(
    private_ok_client: TestClient,
    store: JobStore,
    image_server: str,
    path: str,
    status: int,
    problem: str,
) -> None:
    body = {"model": I2V, "image_url": image_server + path}
    error = assert_rejected(
        private_ok_client.post("/v2/video/generations", json=body), status, "image_url", store
    )
    assert problem in error["message"]


def test_unreachable_image_host_is_named(private_ok_client: TestClient, store: JobStore) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    body = {"model": I2V, "image_url": "http://127.0.0.1:9/cat.png"}
    error = assert_rejected(
        private_ok_client.post("/v2/video/generations", json=body), 400, "image_url", store
    )
    assert "could not be downloaded" in error["message"]


def test_downloaded_image_is_stored_as_input(
    private_ok_client: TestClient, store: JobStore, image_server: str, tmp_path: Path
) -> None:
    body = {"model": I2V, "image_url": image_server + "/ok.png"}
    created = private_ok_client.post("/v2/video/generations", json=body)
    assert created.status_code == 200, created.text
    job = store.get_job(created.json()["id"])
    assert job is not None and job.spec.image_key == f"inputs/{job.id}/image.png"
    stored = tmp_path / "artifacts" / job.spec.image_key
    assert Image.open(stored).size == (32, 24)


@pytest.mark.parametrize("hop", ["redirect", "localhost"])
def test_image_url_reaching_a_forbidden_address_is_refused_unsent(
    app_parts: tuple[Settings, JobStore], hop: str
) -> None:
    """Only 127.0.0.2 is open: a redirect from it to 127.0.0.1, or the name `localhost`
    (127.0.0.1), is a 400 naming image_url, and 127.0.0.1 never gets a connection."""
    settings, store = app_parts
    opened = settings.model_copy(update={"outbound_allow_networks": ["127.0.0.2/32"]})
    client = make_client(opened, store)
    with peer_pair() as (allowed, forbidden):
        forbidden.answers["/cat.png"] = Answer(body=png_bytes())
        allowed.answers["/cat.png"] = Answer(302, headers={"location": forbidden.url("/cat.png")})
        named = forbidden.url("/cat.png", host="localhost")
        url = allowed.url("/cat.png") if hop == "redirect" else named
        body = {"model": I2V, "image_url": url}
        error = assert_rejected(
            client.post("/v2/video/generations", json=body), 400, "image_url", store
        )
        assert forbidden.connections == 0
    assert "non-public address (" in error["message"]


def test_remote_client_without_keys_is_forbidden(app_parts: tuple[Settings, JobStore]) -> None:
    client = make_client(*app_parts, client=("203.0.113.5", 40000))
    response = client.post("/v2/video/generations", json={"model": T2V, "prompt": "x"})
    assert response.status_code == 403
    assert "REELFORGE_API_KEYS" in response.json()["message"]


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic c2VjcmV0", "Bearer "])
def test_missing_or_wrong_key_is_401(
    app_parts: tuple[Settings, JobStore], header: str | None
) -> None:
    settings, store = app_parts
    client = make_client(settings.model_copy(update={"api_keys": ["secret"]}), store)
    headers = {"authorization": header} if header else {}
    response = client.post(
        "/v2/video/generations", json={"model": T2V, "prompt": "x"}, headers=headers
    )
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401
    assert sum(store.count_by_status().values()) == 0


def test_right_key_is_accepted_and_jobs_are_per_tenant(
    app_parts: tuple[Settings, JobStore],
) -> None:
    settings, store = app_parts
    client = make_client(settings.model_copy(update={"api_keys": ["key-a", "key-b"]}), store)
    created = client.post(
        "/v2/video/generations",
        json={"model": T2V, "prompt": "x"},
        headers={"authorization": "Bearer key-a"},
    )
    assert created.status_code == 200
    params = {"generation_id": created.json()["id"]}
    own = client.get(
        "/v2/video/generations", params=params, headers={"authorization": "Bearer key-a"}
    )
    other = client.get(
        "/v2/video/generations", params=params, headers={"authorization": "Bearer key-b"}
    )
    assert own.status_code == 200
    assert other.status_code == 404
    # Nor can another tenant cancel it; its owner can.
    path = f"/v2/video/generations/{created.json()['id']}/cancel"
    assert client.post(path, headers={"authorization": "Bearer key-b"}).status_code == 404
    mine = client.post(path, headers={"authorization": "Bearer key-a"})
    assert mine.status_code == 200 and mine.json()["status"] == "error"


def test_health_is_503_without_workers(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["workers"] == 0
    assert response.json()["live_workers"] == []


def test_health_lists_each_live_worker(client: TestClient, store: JobStore) -> None:
    store.register_worker("gpu-1", ["reelforge/micro"], host="box", pid=7, device="cuda:1")
    store.register_worker("cpu-1", ["reelforge/micro"], host="box", pid=8, device="cpu")
    job = store.create_job(make_spec(model="reelforge/micro"))
    store.set_worker_state("gpu-1", WorkerState.RUNNING, job.id)
    store.set_worker_state("cpu-1", WorkerState.DRAINING, None)
    store.touch_worker("gpu-1", gpu_memory_bytes=2**30)  # its heartbeat
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["workers"] == 2
    assert sorted(body["live_workers"], key=lambda w: w["id"]) == [
        {
            "id": "cpu-1",
            "host": "box",
            "pid": 8,
            "models": ["reelforge/micro"],
            "device": "cpu",
            "state": "draining",
            "current_job": None,
            "gpu_memory_bytes": None,
        },
        {
            "id": "gpu-1",
            "host": "box",
            "pid": 7,
            "models": ["reelforge/micro"],
            "device": "cuda:1",
            "state": "running",
            "current_job": job.id,
            "gpu_memory_bytes": 2**30,
        },
    ]


def test_models_lists_ids_and_engines(client: TestClient) -> None:
    data = client.get("/v1/models").json()["data"]
    assert {(m["id"], m["engine"], m["task"], m["catalog"]) for m in data} == {
        ("reelforge/micro", "micro", "text-to-video", None),
        (T2V, "micro", "text-to-video", None),
        (I2V, "micro", "image-to-video", None),
    }
    capabilities = {m["id"]: m["capabilities"] for m in data}
    assert capabilities[I2V] == {
        "tasks": ["i2v"],
        "max_seconds": None,
        "camera_moves": False,  # the micro model's world has no camera
        "negative_prompt": True,
    }
    assert capabilities["reelforge/micro"]["tasks"] == ["t2v", "i2v"]


def test_unknown_route_uses_error_format(client: TestClient) -> None:
    response = client.get("/v2/nothing-here")
    assert response.status_code == 404
    assert response.json()["path"] == "/v2/nothing-here"
