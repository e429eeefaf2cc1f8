"""The Python client against a fake server (an `httpx.MockTransport`), no sockets."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from reelforge.client import (
    DEFAULT_IMAGE_MODEL,
    DEFAULT_TEXT_MODEL,
    APIError,
    AsyncReelforgeClient,
    AuthenticationError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Generation,
    GenerationFailed,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ReelforgeClient,
    ServerError,
    UnexpectedResponse,
    WaitTimeout,
    image_to_data_uri,
)

BASE_URL = "http://reelforge.test"
VIDEO_URL = "http://files.test/v/gen_1.mp4?sig=abc"
VIDEO_BYTES = b"\x00\x00\x00\x18ftypmp42 fake video bytes"


def generation_json(status: str, generation_id: str = "gen_1", **fields: Any) -> dict[str, Any]:
    """A generation object as the server renders it, with a key no client knows about."""
    return {
        "id": generation_id,
        "status": status,
        "model": DEFAULT_TEXT_MODEL,
        "progress": 0,
        "queue_position": None,
        "video": None,
        "error": None,
        "meta": {"usage": {"seconds": 5}},
        "some_future_field": {"ignored": True},
        **fields,
    }


def error_json(status_code: int, message: str) -> dict[str, Any]:
    return {
        "message": message,
        "path": "/v2/video/generations",
        "requestId": "req_42",
        "statusCode": status_code,
        "timestamp": "2025-01-01T00:00:00.000Z",
    }


class FakeServer:
    """A scripted reelforge: polls of a generation answer the next state in `states`."""

    def __init__(self, states: list[dict[str, Any]] | None = None) -> None:
        self.states = list(states or [generation_json("queued")])
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "POST" and path == "/v2/video/generations":
            return httpx.Response(200, json=generation_json("queued"))
        if request.method == "GET" and path == "/v2/video/generations":
            # The last state repeats, as a finished (or stuck) job would.
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return httpx.Response(200, json=state)
        if path == "/v/gen_1.mp4":
            return httpx.Response(200, content=VIDEO_BYTES)
        return httpx.Response(404, json=error_json(404, f"no route {path}"))

    def polls(self) -> int:
        return sum(1 for r in self.requests if r.method == "GET" and "generation_id" in str(r.url))

    def client(self, api_key: str | None = None) -> ReelforgeClient:
        return ReelforgeClient(BASE_URL, api_key, transport=httpx.MockTransport(self.handle))

    def async_client(self, api_key: str | None = None) -> AsyncReelforgeClient:
        # MockTransport is both a sync and an async transport.
        return AsyncReelforgeClient(BASE_URL, api_key, transport=httpx.MockTransport(self.handle))


def client_of_server_answering(
    status_code: int, body: Any = None, text: str = ""
) -> ReelforgeClient:
    """A client of a fake server that answers every request the same way."""
    if body is not None:
        transport = httpx.MockTransport(lambda _: httpx.Response(status_code, json=body))
    else:
        transport = httpx.MockTransport(lambda _: httpx.Response(status_code, text=text))
    return ReelforgeClient(BASE_URL, transport=transport)


@pytest.fixture(autouse=True)
def no_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's own REELFORGE_API_KEY must not leak into the header tests.
    monkeypatch.delenv("REELFORGE_API_KEY", raising=False)
    monkeypatch.delenv("REELFORGE_BASE_URL", raising=False)


def test_create_sends_only_the_fields_that_were_set() -> None:
    server = FakeServer()
    with server.client() as client:
        created = client.create_generation("a red fox", duration=5, seed=0)

    assert created.status == "queued" and not created.is_terminal
    (request,) = server.requests
    assert request.url == f"{BASE_URL}/v2/video/generations"
    assert json.loads(request.content) == {
        "model": DEFAULT_TEXT_MODEL,
        "prompt": "a red fox",
        "duration": 5,
        "seed": 0,
    }


def test_create_with_an_image_defaults_to_the_image_model() -> None:
    server = FakeServer()
    with server.client() as client:
        client.create_generation(image_url="https://example.com/fox.png")

    body = json.loads(server.requests[0].content)
    assert body == {"model": DEFAULT_IMAGE_MODEL, "image_url": "https://example.com/fox.png"}


def test_api_key_is_sent_as_a_bearer_token() -> None:
    server = FakeServer()
    with server.client(api_key="sk-test") as client:
        client.get_generation("gen_1")
    assert server.requests[0].headers["Authorization"] == "Bearer sk-test"


def test_no_key_means_no_authorization_header() -> None:
    server = FakeServer()
    with server.client() as client:
        client.get_generation("gen_1")
    assert "Authorization" not in server.requests[0].headers


def test_base_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELFORGE_BASE_URL", "http://env-host:9000/")
    monkeypatch.setenv("REELFORGE_API_KEY", "sk-env")
    server = FakeServer()
    with ReelforgeClient(transport=httpx.MockTransport(server.handle)) as client:
        client.get_generation("gen_1")
    request = server.requests[0]
    assert str(request.url) == "http://env-host:9000/v2/video/generations?generation_id=gen_1"
    assert request.headers["Authorization"] == "Bearer sk-env"


def test_a_400_raises_bad_request_with_the_server_message() -> None:
    message = "aspect_ratio: must be one of 16:9, 9:16, 1:1"
    client = client_of_server_answering(400, error_json(400, message))
    with client, pytest.raises(BadRequest) as raised:
        client.create_generation("x", aspect_ratio="4:3")
    assert raised.value.message == message
    assert raised.value.status_code == 400
    assert raised.value.request_id == "req_42"
    assert raised.value.body["path"] == "/v2/video/generations"


def test_an_unknown_id_raises_not_found() -> None:
    client = client_of_server_answering(404, error_json(404, "generation gen_x not found"))
    with client, pytest.raises(NotFound):
        client.get_generation("gen_x")


@pytest.mark.parametrize(
    ("status_code", "error_class"),
    [
        (401, AuthenticationError),
        (403, PermissionDenied),
        (413, PayloadTooLarge),
        (422, BadRequest),
        (429, RateLimited),
        (503, ServerError),
        (409, Conflict),
        (418, APIError),
    ],
)
def test_each_status_has_its_error_class(status_code: int, error_class: type[APIError]) -> None:
    client = client_of_server_answering(status_code, error_json(status_code, "nope"))
    with client, pytest.raises(APIError) as raised:
        client.get_generation("gen_1")
    assert type(raised.value) is error_class
    assert raised.value.status_code == status_code


def test_a_plain_text_error_keeps_its_text_as_the_message() -> None:
    client = client_of_server_answering(502, text="Bad Gateway from the proxy")
    with client, pytest.raises(ServerError, match="Bad Gateway from the proxy"):
        client.get_generation("gen_1")


def test_a_2xx_that_is_not_a_generation_raises_unexpected_response() -> None:
    client = client_of_server_answering(200, {"hello": "world"})
    with client, pytest.raises(UnexpectedResponse, match="Generation"):
        client.get_generation("gen_1")


def test_an_unreachable_server_raises_connection_failed() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = ReelforgeClient(BASE_URL, transport=httpx.MockTransport(refuse))
    with client, pytest.raises(ConnectionFailed, match="connection refused"):
        client.health()


def test_wait_polls_until_completed_and_reports_every_state() -> None:
    video = {
        "url": VIDEO_URL,
        "content_type": "video/mp4",
        "file_name": "gen_1.mp4",
        "file_size": len(VIDEO_BYTES),
        "width": 1280,
        "height": 720,
        "fps": 24,
        "frames": 120,
    }
    server = FakeServer(
        [
            generation_json("queued", queue_position=1),
            generation_json("generating", progress=40),
            generation_json("completed", progress=100, video=video),
        ]
    )
    seen: list[Generation] = []
    with server.client() as client:
        done = client.wait("gen_1", poll_interval_s=0.001, on_update=seen.append)

    assert [g.status for g in seen] == ["queued", "generating", "completed"]
    assert [g.progress for g in seen] == [0, 40, 100]
    assert seen[0].queue_position == 1
    assert server.polls() == 3
    assert done.succeeded and done.is_terminal
    assert done.video is not None and (done.video.width, done.video.frames) == (1280, 120)


def test_wait_on_a_failed_job_raises_generation_failed_with_its_error() -> None:
    server = FakeServer(
        [
            generation_json("generating"),
            generation_json("error", error={"name": "out_of_memory", "message": "too big"}),
        ]
    )
    with server.client() as client, pytest.raises(GenerationFailed) as raised:
        client.wait("gen_1", poll_interval_s=0.001)

    failed = raised.value.generation
    assert failed.error is not None
    assert (failed.error.name, failed.error.message) == ("out_of_memory", "too big")
    assert failed.failed and not failed.succeeded
    assert not isinstance(raised.value, APIError)  # the job failed, not the call
    assert "out_of_memory: too big" in str(raised.value)


def test_wait_gives_up_after_its_timeout() -> None:
    server = FakeServer([generation_json("queued", queue_position=3)])
    with server.client() as client, pytest.raises(WaitTimeout) as raised:
        client.wait("gen_1", poll_interval_s=0.001, timeout_s=0.02)

    assert raised.value.generation.status == "queued"
    assert raised.value.timeout_s == 0.02
    assert server.polls() >= 2  # it did poll, more than once, before giving up


def test_download_writes_the_bytes_without_sending_the_key(tmp_path: Path) -> None:
    server = FakeServer()
    target = tmp_path / "clip.mp4"
    with server.client(api_key="sk-secret") as client:
        saved = client.download(VIDEO_URL, target)

    assert saved == target
    assert target.read_bytes() == VIDEO_BYTES
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind
    # Signed artifact URLs may be on another host (S3), which must never see the API key.
    assert "Authorization" not in server.requests[0].headers


def test_a_failed_download_leaves_no_file(tmp_path: Path) -> None:
    server = FakeServer()
    with server.client() as client, pytest.raises(NotFound):
        client.download("http://files.test/v/expired.mp4", tmp_path / "clip.mp4")
    assert list(tmp_path.iterdir()) == []


def test_models_are_read_from_the_list() -> None:
    model = {
        "id": DEFAULT_TEXT_MODEL,
        "object": "model",
        "engine": "testsrc",
        "task": "text-to-video",
        "owned_by": "reelforge",
    }
    client = client_of_server_answering(200, {"object": "list", "data": [model]})
    with client:
        (info,) = client.models()
    assert (info.id, info.engine, info.task) == (DEFAULT_TEXT_MODEL, "testsrc", "text-to-video")


def test_health_is_true_only_once_the_server_answers_200() -> None:
    answers = iter([503, 200])
    transport = httpx.MockTransport(lambda _: httpx.Response(next(answers), json={}))
    with ReelforgeClient(BASE_URL, transport=transport) as client:
        assert client.health() is False  # listening, but no worker ready yet
        assert client.health() is True


def test_image_to_data_uri_round_trips(tmp_path: Path) -> None:
    image = tmp_path / "frame.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    uri = image_to_data_uri(image)
    header, _, payload = uri.partition(",")
    assert header == "data:image/png;base64"
    assert base64.b64decode(payload) == image.read_bytes()


def test_async_generate_creates_then_waits_for_completion() -> None:
    server = FakeServer(
        [generation_json("generating", progress=50), generation_json("completed", progress=100)]
    )
    seen: list[str] = []

    async def scenario() -> Generation:
        async with server.async_client(api_key="sk-async") as client:
            return await client.generate(
                "a red fox",
                duration=10,
                poll_interval_s=0.001,
                on_update=lambda g: seen.append(g.status),
            )

    done = asyncio.run(scenario())
    assert done.succeeded
    assert seen == ["queued", "generating", "completed"]
    post = server.requests[0]
    assert post.method == "POST" and post.headers["Authorization"] == "Bearer sk-async"
    body = json.loads(post.content)
    assert body == {"model": DEFAULT_TEXT_MODEL, "prompt": "a red fox", "duration": 10}
    assert server.polls() == 2


def test_async_wait_on_a_failed_job_raises_generation_failed() -> None:
    server = FakeServer([generation_json("error", error={"name": "canceled", "message": ""})])

    async def scenario() -> None:
        async with server.async_client() as client:
            await client.wait("gen_1", poll_interval_s=0.001)

    with pytest.raises(GenerationFailed) as raised:
        asyncio.run(scenario())
    assert raised.value.generation.error is not None
    assert raised.value.generation.error.name == "canceled"


# --- list and delete ------------------------------------------------------------------------


class ListingServer:
    """A reelforge with five generations, newest first, listed in pages as the server does."""

    def __init__(self) -> None:
        self.ids = [f"gen_{n}" for n in range(5, 0, -1)]
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "DELETE" and path.startswith("/v2/video/generations/"):
            generation_id = path.rsplit("/", 1)[1]
            if generation_id not in self.ids:
                return httpx.Response(404, json=error_json(404, "generation not found"))
            self.ids.remove(generation_id)
            return httpx.Response(200, json={"id": generation_id, "deleted": True})
        if request.method == "GET" and path == "/v2/video/generations":
            limit = int(request.url.params.get("limit", "20"))
            after = request.url.params.get("after")
            start = self.ids.index(after) + 1 if after else 0
            page = self.ids[start : start + limit]
            return httpx.Response(
                200,
                json={
                    "data": [generation_json("completed", gid, progress=100) for gid in page],
                    "has_more": start + limit < len(self.ids),
                    "last_id": page[-1] if page else None,
                },
            )
        return httpx.Response(404, json=error_json(404, f"no route {path}"))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)


def test_list_generations_sends_the_filters_given_and_reads_one_page() -> None:
    server = ListingServer()
    with ReelforgeClient(BASE_URL, transport=server.transport()) as client:
        page = client.list_generations(limit=2, status=["queued", "generating"], model="m/x")

    assert [g.id for g in page.data] == ["gen_5", "gen_4"]
    assert page.has_more and page.last_id == "gen_4"
    (request,) = server.requests
    assert dict(request.url.params) == {"limit": "2", "status": "queued,generating", "model": "m/x"}


def test_list_generations_sends_no_filters_by_default() -> None:
    server = ListingServer()
    with ReelforgeClient(BASE_URL, transport=server.transport()) as client:
        assert len(client.list_generations().data) == 5
    assert dict(server.requests[0].url.params) == {}


def test_iter_generations_pages_through_every_generation() -> None:
    server = ListingServer()
    with ReelforgeClient(BASE_URL, transport=server.transport()) as client:
        ids = [g.id for g in client.iter_generations(page_size=2, status="completed")]

    assert ids == ["gen_5", "gen_4", "gen_3", "gen_2", "gen_1"]
    assert [r.url.params.get("after") for r in server.requests] == [None, "gen_4", "gen_2"]
    assert {r.url.params["status"] for r in server.requests} == {"completed"}


def test_async_iter_generations_pages_through_every_generation() -> None:
    server = ListingServer()

    async def scenario() -> list[str]:
        async with AsyncReelforgeClient(BASE_URL, transport=server.transport()) as client:
            return [g.id async for g in client.iter_generations(page_size=3)]

    assert asyncio.run(scenario()) == ["gen_5", "gen_4", "gen_3", "gen_2", "gen_1"]
    assert len(server.requests) == 2


def test_delete_generation_deletes_and_an_unknown_id_raises_not_found() -> None:
    server = ListingServer()
    with ReelforgeClient(BASE_URL, transport=server.transport()) as client:
        deleted = client.delete_generation("gen_3")
        assert (deleted.id, deleted.deleted) == ("gen_3", True)
        with pytest.raises(NotFound):
            client.delete_generation("gen_3")
    assert server.requests[0].method == "DELETE"
    assert server.requests[0].url.path == "/v2/video/generations/gen_3"


def test_async_delete_generation_deletes() -> None:
    server = ListingServer()

    async def scenario() -> str:
        async with AsyncReelforgeClient(BASE_URL, transport=server.transport()) as client:
            return (await client.delete_generation("gen_1")).id

    assert asyncio.run(scenario()) == "gen_1"
    assert "gen_1" not in server.ids
