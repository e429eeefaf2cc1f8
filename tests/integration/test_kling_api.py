"""Kling's dialect on the real app, a real SQLite store and local storage (no worker): bad
input answered in Kling's envelope naming the field with no job queued, 401s per JWT fault,
external_task_id unique per tenant and readable, paging, and the keyless loopback mode."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from reelforge.api.app import build_context, create_app
from reelforge.engines import Registry
from reelforge.jobs import JobStore, open_store
from reelforge.settings import Settings
from reelforge.storage import open_storage

ACCESS, SECRET = "AK-integration", "k" * 40
OTHER_ACCESS, OTHER_SECRET = "AK-second", "q" * 40
T2V, I2V = "/v1/videos/text2video", "/v1/videos/image2video"
LOOPBACK = ("127.0.0.1", 40000)


def token(access: str = ACCESS, secret: str = SECRET, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": access, "exp": now + 1800, "nbf": now - 5, **claims}
    return jwt.encode(payload, secret, headers={"alg": "HS256", "typ": "JWT"})


def signed(access: str = ACCESS, secret: str = SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(access, secret)}"}


def png_base64(width: int = 32, height: int = 24) -> str:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (20, 90, 200)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    store = open_store(f"sqlite:///{tmp_path / 'reelforge.db'}")
    yield store
    store.engine.dispose()


def make_client(tmp_path: Path, store: JobStore, **settings: Any) -> TestClient:
    config = Settings(data_dir=tmp_path, **settings)
    ctx = build_context(config, store, open_storage(config.resolved_storage_url), Registry.load())
    return TestClient(create_app(ctx), client=LOOPBACK, base_url="http://127.0.0.1")


@pytest.fixture
def client(tmp_path: Path, store: JobStore) -> TestClient:
    keys = f"{ACCESS}:{SECRET},{OTHER_ACCESS}:{OTHER_SECRET}"
    return make_client(tmp_path, store, kling_keys=keys, api_keys="plain-key")


def queued(store: JobStore) -> int:
    return sum(store.count_by_status().values())


def assert_kling_error(response: Any, status: int, code: int, words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "request_id"}
    assert body["code"] == code, body
    assert body["request_id"] == response.headers["x-request-id"]
    assert words in body["message"], body
    return body


def test_create_answers_a_submitted_task_in_klings_envelope(
    client: TestClient, store: JobStore
) -> None:
    answer = client.post(T2V, json={"prompt": "a red fox", "duration": "10"}, headers=signed())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["code"], body["message"]) == (0, "SUCCEED")
    task = body["data"]
    assert task["task_status"] == "submitted"
    assert task["task_info"] == {"external_task_id": None}
    assert isinstance(task["created_at"], int) and task["created_at"] > 1e12
    assert "task_result" not in task
    job = store.get_job(task["task_id"])
    assert job is not None and job.dialect == "kling"
    assert job.spec.seconds == 10 and job.spec.model == "klingai/v2-master-text-to-video"


@pytest.mark.parametrize(
    ("path", "body", "field", "words"),
    [
        (T2V, {}, "prompt", "prompt: is required"),
        (T2V, {"prompt": "   "}, "prompt", "prompt: is required"),
        (T2V, {"prompt": 5}, "prompt", "prompt: Input should be a valid string"),
        (T2V, {"prompt": "x" * 2501}, "prompt", "prompt: String should have at most"),
        (T2V, {"prompt": "p", "duration": 5}, "duration", 'duration: must be the string "5"'),
        (T2V, {"prompt": "p", "duration": "7"}, "duration", 'duration: must be the string "5"'),
        (T2V, {"prompt": "p", "model_name": "kling-v9"}, "model_name", "model_name: unknown"),
        (T2V, {"prompt": "p", "model_name": "kling-v1-5"}, "model_name", "unknown model"),
        (T2V, {"prompt": "p", "mode": "ultra"}, "mode", "mode: Input should be 'std' or 'pro'"),
        (T2V, {"prompt": "p", "aspect_ratio": "4:3"}, "aspect_ratio", "aspect_ratio: "),
        (T2V, {"prompt": "p", "cfg_scale": 2}, "cfg_scale", "cfg_scale: "),
        (T2V, {"prompt": "p", "cfg_scale": "0.5"}, "cfg_scale", "cfg_scale: "),
        (T2V, {"prompt": "p", "cfg_scale": True}, "cfg_scale", "cfg_scale: "),
        (T2V, {"prompt": "p", "camera_control": {"type": "spin"}}, "camera_control", "type"),
        (
            T2V,
            {"prompt": "p", "camera_control": {"type": "simple", "config": {"zoom": 11}}},
            "camera_control.config.zoom",
            "camera_control.config.zoom: ",
        ),
        (T2V, {"prompt": "p", "external_task_id": ""}, "external_task_id", "external_task_id"),
        (T2V, {"prompt": "p", "callback_url": 3}, "callback_url", "callback_url: "),
        (
            T2V,
            {"prompt": "p", "callback_url": "http://169.254.169.254/latest"},
            "callback_url",
            "callback_url: ",
        ),
        (I2V, {"prompt": "p"}, "image", "image: is required"),
        (I2V, {"image": "not an image !"}, "image", "image: "),
        (I2V, {"image": png_base64(), "image_tail": png_base64()}, "image_tail", "image_tail"),
    ],
)
def test_bad_input_is_1201_naming_the_field_and_queues_nothing(
    client: TestClient, store: JobStore, path: str, body: Any, field: str, words: str
) -> None:
    answer = client.post(path, json=body, headers=signed())
    assert_kling_error(answer, 400, 1201, words)
    assert answer.json()["message"].startswith(field)
    assert queued(store) == 0


@pytest.mark.parametrize("raw", [b"[1, 2]", b"{not json", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_1200(
    client: TestClient, store: JobStore, raw: bytes
) -> None:
    headers = {**signed(), "content-type": "application/json"}
    assert_kling_error(client.post(T2V, content=raw, headers=headers), 400, 1200, "body")
    assert queued(store) == 0


@pytest.mark.parametrize(
    ("credentials", "code"),
    # Made when the test runs, not when it is collected: times are relative to now.
    [
        (lambda: {}, 1001),
        (lambda: {"Authorization": "Bearer plain-key"}, 1002),
        (lambda: {"Authorization": f"Bearer {token(secret='w' * 40)}"}, 1000),
        (lambda: {"Authorization": f"Bearer {token(access='AK-unknown')}"}, 1000),
        (lambda: {"Authorization": f"Bearer {token(exp=int(time.time()) - 600)}"}, 1004),
        (lambda: {"Authorization": f"Bearer {token(nbf=int(time.time()) + 600)}"}, 1003),
    ],
)
def test_bad_credentials_are_401_in_klings_envelope(
    client: TestClient, store: JobStore, credentials: Callable[[], dict[str, str]], code: int
) -> None:
    headers = credentials()
    answer = client.post(T2V, json={"prompt": "p"}, headers=headers)
    assert_kling_error(answer, 401, code, "")
    assert client.get(T2V, headers=headers).json()["code"] == code
    assert queued(store) == 0


def test_plain_api_keys_keep_working_for_the_ai_ml_api(client: TestClient) -> None:
    generation = {"model": "klingai/v2-master-text-to-video", "prompt": "p"}
    plain = {"Authorization": "Bearer plain-key"}
    assert client.post("/v2/video/generations", json=generation, headers=plain).status_code == 200
    refused = client.post("/v2/video/generations", json=generation, headers=signed())
    assert refused.status_code == 401
    assert refused.json()["statusCode"] == 401  # the AI/ML API's own error body


def test_a_duplicate_external_task_id_is_refused_and_another_tenant_may_use_it(
    client: TestClient, store: JobStore
) -> None:
    body = {"prompt": "p", "external_task_id": "order-17"}
    first = client.post(T2V, json=body, headers=signed()).json()["data"]
    assert first["task_info"] == {"external_task_id": "order-17"}
    again = client.post(I2V, json={**body, "image": png_base64()}, headers=signed())
    assert_kling_error(again, 400, 1201, "external_task_id: 'order-17' already names")
    assert queued(store) == 1
    other = signed(OTHER_ACCESS, OTHER_SECRET)
    assert client.post(T2V, json=body, headers=other).status_code == 200
    assert queued(store) == 2


def test_a_task_is_read_by_its_id_or_its_external_task_id(client: TestClient) -> None:
    body = {"prompt": "p", "external_task_id": "mine-1"}
    task = client.post(T2V, json=body, headers=signed()).json()["data"]
    by_id = client.get(f"{T2V}/{task['task_id']}", headers=signed()).json()["data"]
    by_external = client.get(f"{T2V}/mine-1", headers=signed()).json()["data"]
    assert by_id["task_id"] == by_external["task_id"] == task["task_id"]
    # Not another tenant's, and not under the other endpoint.
    other = client.get(f"{T2V}/mine-1", headers=signed(OTHER_ACCESS, OTHER_SECRET))
    assert_kling_error(other, 404, 1203, "not found")
    assert_kling_error(client.get(f"{I2V}/mine-1", headers=signed()), 404, 1203, "not found")


def test_image_to_video_takes_a_bare_base64_image(client: TestClient, store: JobStore) -> None:
    answer = client.post(I2V, json={"image": png_base64()}, headers=signed())
    assert answer.status_code == 200, answer.text
    job = store.get_job(answer.json()["data"]["task_id"])
    assert job is not None and job.spec.image_key is not None
    assert job.spec.model == "klingai/v2-master-image-to-video"


def test_lists_page_by_page_number_per_endpoint(client: TestClient) -> None:
    ids = [
        client.post(T2V, json={"prompt": f"p{n}"}, headers=signed()).json()["data"]["task_id"]
        for n in range(5)
    ]
    client.post(I2V, json={"image": png_base64()}, headers=signed())
    pages = [
        client.get(T2V, params={"pageNum": n, "pageSize": 2}, headers=signed()).json()["data"]
        for n in (1, 2, 3, 4)
    ]
    assert [[t["task_id"] for t in page] for page in pages] == [
        ids[4:2:-1],
        ids[2:0:-1],
        ids[:1],
        [],
    ]
    assert len(client.get(T2V, headers=signed()).json()["data"]) == 5
    assert len(client.get(I2V, headers=signed()).json()["data"]) == 1
    assert client.get(T2V, headers=signed(OTHER_ACCESS, OTHER_SECRET)).json()["data"] == []
    for params, field in [({"pageNum": 0}, "pageNum"), ({"pageSize": "501"}, "pageSize")]:
        answer = client.get(T2V, params=params, headers=signed())
        assert_kling_error(answer, 400, 1201, f"{field}: must be an integer")


def test_a_keyless_server_serves_loopback_kling_clients_without_a_token(
    tmp_path: Path, store: JobStore
) -> None:
    local = make_client(tmp_path, store)
    assert local.post(T2V, json={"prompt": "p"}).status_code == 200
    remote = TestClient(local.app, client=("10.1.2.3", 5000), base_url="http://127.0.0.1")
    assert_kling_error(remote.post(T2V, json={"prompt": "p"}), 403, 1103, "loopback")


def test_kling_keys_alone_close_the_ai_ml_api_to_keyless_callers(
    tmp_path: Path, store: JobStore
) -> None:
    kling_only = make_client(tmp_path, store, kling_keys=f"{ACCESS}:{SECRET}")
    generation = {"model": "klingai/v2-master-text-to-video", "prompt": "p"}
    assert kling_only.post("/v2/video/generations", json=generation).status_code == 401
    assert kling_only.post(T2V, json={"prompt": "p"}, headers=signed()).status_code == 200


def test_an_image_past_the_body_limit_is_named_as_too_large(
    tmp_path: Path, store: JobStore
) -> None:
    client = make_client(tmp_path, store, max_body_bytes=4_000)
    big = {"model_name": "kling-v2-master", "image": "A" * 5_000}
    answer = client.post(I2V, json=big, headers=signed())
    assert_kling_error(answer, 413, 1200, "image: image too large (the request body is larger")
    # Text-to-video takes no image: there, the body is what is too large.
    answer = client.post(T2V, json={"prompt": "x" * 5_000}, headers=signed())
    assert_kling_error(answer, 413, 1200, "body: request body is larger than 4000 bytes")
    assert queued(store) == 0
