"""The OpenAI Videos API dialect (`/v1/videos`) on the real app, a real SQLite store and local
storage; jobs are finished the way a worker finishes one (claimed, files stored, completed
under the lease). The `openai` SDK itself drives a live server in tests/e2e."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from standardwebhooks.webhooks import Webhook

from reelforge.api.app import build_context, create_app, webhook_envelopes, webhook_renderers
from reelforge.api.context import ApiContext
from reelforge.engines import Registry
from reelforge.jobs import JobStatus, JobStore, open_store
from reelforge.jobs.result import Artifact, JobResult, StageTimings, VideoArtifact
from reelforge.jobs.webhooks import WebhookOutbox
from reelforge.media import encode_mp4, probe_video
from reelforge.net import OutboundPolicy
from reelforge.settings import Settings
from reelforge.storage import keys, open_storage
from reelforge.webhooks import RetrySchedule, WebhookDispatcher, WebhookSigner
from tests.integration.test_api_validation import I2V, T2V, data_uri, png_bytes
from tests.integration.test_job_store import make_result
from tests.integration.test_webhook_dispatcher import SECRET, run_until

A = {"authorization": "Bearer key-a"}
B = {"authorization": "Bearer key-b"}


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ApiContext]:
    settings = Settings(data_dir=tmp_path, api_keys=["key-a", "key-b"], image_max_bytes=200_000)
    store = open_store(settings.resolved_database_url)
    context = build_context(
        settings, store, open_storage(settings.resolved_storage_url), Registry.load()
    )
    yield context
    context.close()
    store.engine.dispose()


@pytest.fixture
def client(ctx: ApiContext) -> TestClient:
    return TestClient(create_app(ctx), base_url="http://127.0.0.1")


def create(client: TestClient, headers: dict[str, str] = A, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/videos", json={"prompt": "a red fox", **fields}, headers=headers)
    assert response.status_code == 200, response.text
    video: dict[str, Any] = response.json()
    return video


def finish(ctx: ApiContext, tmp_path: Path) -> str:
    """Run the next queued job as a worker would, with a real 16-frame mp4."""
    store: JobStore = ctx.store
    lease = store.claim_next_job("w1", [T2V, I2V], lease_seconds=60)
    assert lease is not None
    frames = np.zeros((16, 36, 64, 3), dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(16, dtype=np.uint8)[:, None, None] * 16  # red ramps up
    mp4 = encode_mp4(frames, 64, 36, 16, 24, tmp_path / f"{lease.job_id}.mp4")
    video = ctx.storage.put_file(keys.output(lease.job_id, "video.mp4"), mp4, "video/mp4")
    thumb = ctx.storage.put_bytes(
        keys.output(lease.job_id, "thumbnail.webp"), b"RIFF" + b"t" * 30, "image/webp"
    )
    gif = ctx.storage.put_bytes(keys.output(lease.job_id, "preview.gif"), b"GIF89a", "image/gif")
    result = JobResult(
        video=VideoArtifact(
            key=video.key,
            size=video.size,
            content_type="video/mp4",
            width=64,
            height=36,
            fps=24,
            frames=16,
        ),
        preview=Artifact(key=gif.key, size=gif.size, content_type="image/gif"),
        thumbnail=Artifact(key=thumb.key, size=thumb.size, content_type="image/webp"),
        engine="testsrc",
        timings=StageTimings(engine_s=0.1, encode_s=0.1, store_s=0.1),
    )
    assert store.complete_job(lease, result)
    return lease.job_id


def test_create_answers_the_video_object_and_queues_an_openai_job(
    client: TestClient, ctx: ApiContext
) -> None:
    response = client.post(
        "/v1/videos",
        json={"prompt": " a red fox ", "model": "sora-2", "seconds": "8", "size": "1792x1024"},
        headers=A,
    )
    assert response.status_code == 200, response.text
    video = response.json()
    assert video["object"] == "video"
    assert (video["status"], video["progress"], video["model"]) == ("queued", 0, T2V)
    assert (video["size"], video["seconds"], video["prompt"]) == ("1792x1024", "8", "a red fox")
    assert video["completed_at"] is None and video["error"] is None
    assert video["remixed_from_video_id"] is None
    assert isinstance(video["created_at"], int) and video["expires_at"] > video["created_at"]
    assert 250 <= int(response.headers["openai-poll-after-ms"]) <= 5000
    job = ctx.store.get_job(video["id"])
    assert job is not None and job.dialect == "openai"
    assert (job.spec.width, job.spec.height, job.spec.num_frames) == (1792, 1024, 192)


def test_defaults_are_openais_and_native_values_are_accepted(client: TestClient) -> None:
    video = create(client)
    assert (video["size"], video["seconds"]) == ("720x1280", "4")
    native = create(client, model=T2V, seconds=10, size="960x960")
    assert (native["size"], native["seconds"]) == ("960x960", "10")


def test_multipart_create_with_an_uploaded_image_is_image_to_video(
    client: TestClient, ctx: ApiContext
) -> None:
    response = client.post(
        "/v1/videos",
        data={"prompt": "it moves", "model": "sora-2", "seconds": "4", "size": "1280x720"},
        files={"input_reference": ("first.png", png_bytes(), "image/png")},
        headers=A,
    )
    assert response.status_code == 200, response.text
    job = ctx.store.get_job(response.json()["id"])
    assert job is not None and job.model == I2V and job.spec.image_key is not None
    staged = Image.open(io.BytesIO(ctx.storage.get_bytes(job.spec.image_key)))
    assert staged.size == (32, 24)


def test_the_reference_object_form_is_image_to_video(client: TestClient, ctx: ApiContext) -> None:
    # The SDK's form encoding of {"image_url": ...}, and the JSON form.
    form = client.post(
        "/v1/videos",
        headers={**A, "content-type": "multipart/form-data; boundary=x"},
        content=(
            b'--x\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nit moves\r\n'
            b'--x\r\nContent-Disposition: form-data; name="input_reference[image_url]"\r\n\r\n'
            + data_uri(png_bytes()).encode()
            + b"\r\n--x--\r\n"
        ),
    )
    assert form.status_code == 200, form.text
    as_json = create(client, input_reference={"image_url": data_uri(png_bytes())})
    for video_id in (form.json()["id"], as_json["id"]):
        job = ctx.store.get_job(video_id)
        assert job is not None and job.model == I2V and job.spec.image_key is not None


BAD_BODIES = [
    ({"model": "sora-2"}, "prompt"),
    ({"prompt": 7}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "x", "size": "640x480"}, "size"),
    ({"prompt": "x", "size": 1280}, "size"),
    ({"prompt": "x", "seconds": "6"}, "seconds"),
    ({"prompt": "x", "seconds": True}, "seconds"),
    ({"prompt": "x", "seconds": 4.5}, "seconds"),
    ({"prompt": "x", "model": "sora-3"}, "model"),
    ({"prompt": "x", "model": 2}, "model"),
    ({"prompt": "x", "model": I2V}, "input_reference"),
    ({"prompt": "x", "input_reference": {"file_id": "file-1"}}, "input_reference"),
    ({"prompt": "x", "input_reference": {"image_url": "not an image"}}, "input_reference"),
    ({"prompt": "x", "input_reference": "a string"}, "input_reference"),
    ({"prompt": "x", "seed": True}, "seed"),
    ({"prompt": "x", "seed": "-1"}, "seed"),
    ({"prompt": "x", "webhook_url": "ftp://example.com/hook"}, "webhook_url"),
]


@pytest.mark.parametrize(("body", "param"), BAD_BODIES)
def test_bad_json_bodies_get_openais_error_naming_the_field_and_no_job(
    client: TestClient, ctx: ApiContext, body: dict[str, Any], param: str
) -> None:
    response = client.post("/v1/videos", json=body, headers=A)
    assert_openai_error(response, 400, param)
    assert sum(ctx.store.count_by_status().values()) == 0


def test_bad_multipart_fields_are_named(client: TestClient, ctx: ApiContext) -> None:
    not_an_image = client.post(
        "/v1/videos",
        data={"prompt": "x"},
        files={"input_reference": ("a.png", b"not a png", "image/png")},
        headers=A,
    )
    assert_openai_error(not_an_image, 400, "input_reference")
    too_big = client.post(
        "/v1/videos",
        data={"prompt": "x"},
        files={"input_reference": ("a.png", b"\x00" * 200_001, "image/png")},
        headers=A,
    )
    assert_openai_error(too_big, 413, "input_reference")
    assert "image too large" in too_big.json()["error"]["message"]
    # Past the body limit (16 MiB) an upload is still an image too large, not a body error.
    past_the_body = client.post(
        "/v1/videos",
        data={"prompt": "x"},
        files={"input_reference": ("a.png", b"\x00" * (16 * 1024 * 1024 + 1), "image/png")},
        headers=A,
    )
    assert_openai_error(past_the_body, 413, "input_reference")
    assert "input_reference: image too large" in past_the_body.json()["error"]["message"]
    for fields, param in (({"seconds": "3"}, "seconds"), ({"size": "1x1"}, "size"), ({}, "prompt")):
        answer = client.post(
            "/v1/videos",
            data={"prompt": "x", **fields} if param != "prompt" else {"model": "sora-2"},
            files={"input_reference": ("a.png", png_bytes(), "image/png")},
            headers=A,
        )
        assert_openai_error(answer, 400, param)
    assert sum(ctx.store.count_by_status().values()) == 0


@pytest.mark.parametrize("form", ["json", "multipart"])
def test_a_prompt_over_2500_characters_is_named_and_2500_is_taken(
    client: TestClient, ctx: ApiContext, form: str
) -> None:
    def send(prompt: str) -> Any:
        if form == "json":
            return client.post("/v1/videos", json={"prompt": prompt}, headers=A)
        return client.post("/v1/videos", files={"prompt": (None, prompt)}, headers=A)

    error = assert_openai_error(send("x" * 2501), 400, "prompt")["error"]
    assert error["message"].startswith("prompt: ") and "2500 characters" in error["message"]
    assert sum(ctx.store.count_by_status().values()) == 0
    at_limit = send("x" * 2500)
    assert at_limit.status_code == 200, at_limit.text


def test_other_content_types_and_unauthenticated_calls_get_openais_error(
    client: TestClient,
) -> None:
    assert_openai_error(
        client.post("/v1/videos", content=b"prompt=x", headers={**A, "content-type": "text/plain"}),
        415,
        None,
    )
    assert_openai_error(client.get("/v1/videos"), 401, None)
    assert_openai_error(client.get("/v1/videos/nope", headers=A), 404, None)
    # The AI/ML API keeps its own body.
    assert "statusCode" in client.get("/v2/video/generations/nope", headers=A).json()


def test_list_pages_in_either_order(client: TestClient) -> None:
    ids = [create(client)["id"] for _ in range(5)]
    create(client, headers=B)  # another tenant's
    first = client.get("/v1/videos", params={"limit": 2}, headers=A).json()
    assert [v["id"] for v in first["data"]] == ids[::-1][:2]
    assert first["has_more"] and first["object"] == "list"
    assert (first["first_id"], first["last_id"]) == (ids[4], ids[3])
    seen, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, "order": "asc"}
        if after:
            params["after"] = after
        page = client.get("/v1/videos", params=params, headers=A).json()
        seen += [v["id"] for v in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == ids
    assert_openai_error(client.get("/v1/videos", params={"order": "up"}, headers=A), 400, "order")
    assert_openai_error(client.get("/v1/videos", params={"limit": "0"}, headers=A), 400, "limit")


def test_content_variants(client: TestClient, ctx: ApiContext, tmp_path: Path) -> None:
    video_id = create(client)["id"]
    assert_openai_error(client.get(f"/v1/videos/{video_id}/content", headers=A), 404, None)
    finish(ctx, tmp_path)
    done = client.get(f"/v1/videos/{video_id}", headers=A)
    assert done.json()["status"] == "completed" and done.json()["progress"] == 100
    assert "openai-poll-after-ms" not in done.headers
    assert isinstance(done.json()["completed_at"], int)

    mp4 = client.get(f"/v1/videos/{video_id}/content", headers=A)
    assert mp4.headers["content-type"] == "video/mp4"
    (tmp_path / "got.mp4").write_bytes(mp4.content)
    assert probe_video(tmp_path / "got.mp4").num_frames == 16
    thumb = client.get(f"/v1/videos/{video_id}/content?variant=thumbnail", headers=A)
    assert (thumb.headers["content-type"], thumb.content[:4]) == ("image/webp", b"RIFF")

    sheet = client.get(f"/v1/videos/{video_id}/content?variant=spritesheet", headers=A)
    assert sheet.headers["content-type"] == "image/jpeg"
    image = Image.open(io.BytesIO(sheet.content))
    assert image.size == (5 * 256, 2 * 144)
    # Evenly spaced: each tile redder than the one before.
    reds = [image.getpixel((x * 256 + 128, y * 144 + 72))[0] for y in range(2) for x in range(5)]
    assert reds == sorted(reds) and reds[0] < 40 < 200 < reds[-1]
    assert ctx.storage.stat(keys.output(video_id, "spritesheet.jpg")) is not None
    again = client.get(f"/v1/videos/{video_id}/content?variant=spritesheet", headers=A)
    assert again.content == sheet.content

    bad = client.get(f"/v1/videos/{video_id}/content?variant=gif", headers=A)
    assert_openai_error(bad, 400, "variant")
    assert client.get(f"/v1/videos/{video_id}/content", headers=B).status_code == 404


def test_remix_keeps_the_spec_and_seed_with_a_new_prompt(
    client: TestClient, ctx: ApiContext
) -> None:
    original = create(
        client,
        prompt="a fox",
        size="1024x1792",
        seconds="12",
        seed=42,
        input_reference={"image_url": data_uri(png_bytes())},
    )
    response = client.post(
        f"/v1/videos/{original['id']}/remix", json={"prompt": "a wolf"}, headers=A
    )
    assert response.status_code == 200, response.text
    remix = response.json()
    assert remix["remixed_from_video_id"] == original["id"] and remix["prompt"] == "a wolf"
    assert (remix["size"], remix["seconds"]) == ("1024x1792", "12")
    first, second = ctx.store.get_job(original["id"]), ctx.store.get_job(remix["id"])
    assert first is not None and second is not None
    assert second.spec.seed == 42 and second.model == I2V
    assert second.spec.image_key == keys.input_image(second.id)
    assert ctx.storage.get_bytes(second.spec.image_key) == ctx.storage.get_bytes(
        first.spec.image_key or ""
    )
    assert_openai_error(
        client.post(f"/v1/videos/{original['id']}/remix", json={}, headers=A), 400, "prompt"
    )
    assert_openai_error(
        client.post(f"/v1/videos/{original['id']}/remix", json={"prompt": "x"}, headers=B),
        404,
        None,
    )


def test_delete_removes_the_video(client: TestClient, ctx: ApiContext, tmp_path: Path) -> None:
    video_id = create(client)["id"]
    finish(ctx, tmp_path)
    answer = client.delete(f"/v1/videos/{video_id}", headers=A)
    assert answer.json() == {"id": video_id, "object": "video.deleted", "deleted": True}
    assert_openai_error(client.get(f"/v1/videos/{video_id}", headers=A), 404, None)
    assert ctx.storage.stat(keys.output(video_id, "video.mp4")) is None


def test_a_canceled_or_failed_job_is_failed(client: TestClient, ctx: ApiContext) -> None:
    video_id = create(client)["id"]
    ctx.store.request_cancel(video_id)
    video = client.get(f"/v1/videos/{video_id}", headers=A).json()
    assert (video["status"], video["error"]["code"]) == ("failed", "canceled")
    job = ctx.store.get_job(video_id)
    assert job is not None and job.status is JobStatus.CANCELED


def assert_openai_error(response: Any, status: int, param: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param, error
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    if param is not None:
        assert param in error["message"]
    return body


def test_webhooks_are_openai_events_signed_as_every_webhook(ctx: ApiContext) -> None:
    """A create with reelforge's `webhook_url`; the dispatcher sends `video.completed` and
    `video.failed` in OpenAI's event shape, with the Standard Webhooks signature."""
    seen: list[httpx.Request] = []

    async def receiver(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    ctx.generations.outbound = OutboundPolicy(["loopback"])
    client = TestClient(create_app(ctx), base_url="http://127.0.0.1")
    hook = {"webhook_url": "http://127.0.0.1:9/hook"}
    done, canceled = create(client, **hook)["id"], create(client, **hook)["id"]
    ctx.store.request_cancel(canceled)
    lease = ctx.store.claim_next_job("w1", [T2V], lease_seconds=60)
    assert lease is not None and lease.job_id == done
    assert ctx.store.complete_job(lease, make_result(done))
    hub = WebhookDispatcher(
        WebhookOutbox(ctx.store.engine),
        renderers=webhook_renderers(ctx),
        envelopes=webhook_envelopes(),
        signer=WebhookSigner(SECRET),
        policy=OutboundPolicy(["loopback"]),
        schedule=RetrySchedule((0,), jitter=0),
        timeout_s=5,
        poll_interval_s=0.02,
        transport=httpx.MockTransport(receiver),
    )
    run_until(hub, lambda: len(seen) == 2)
    bodies = {}
    for request in seen:
        body = Webhook(SECRET).verify(request.content, dict(request.headers))
        assert body["id"] == request.headers["webhook-id"]
        bodies[body["data"]["id"]] = body
    assert {k: (v["type"], v["object"]) for k, v in bodies.items()} == {
        done: ("video.completed", "event"),
        canceled: ("video.failed", "event"),
    }
    assert all(set(v) == {"id", "object", "type", "created_at", "data"} for v in bodies.values())
    assert all(isinstance(v["created_at"], int) for v in bodies.values())
