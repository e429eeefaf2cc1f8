"""The OpenAI Videos API routes (`/v1/videos`): create, retrieve, list, delete, content and
remix. Thin: parse, call the service layer (`reelforge.service.Generations`), render.

- `POST /v1/videos`: JSON or multipart/form-data (the SDK always sends multipart); an
  `input_reference` file part or `{"image_url"}` makes it image-to-video.
- `GET /v1/videos/{video_id}` answers `openai-poll-after-ms` while the video is unfinished,
  which the SDK's `poll` / `create_and_poll` wait between polls.
- `GET /v1/videos`: `after`, `limit` (1..100, default 20), `order` (`desc`, the default, or
  `asc`); the page carries `first_id`, `last_id` and `has_more`, which the SDK pages on.
- `GET /v1/videos/{video_id}/content?variant=video|thumbnail|spritesheet`: the bytes (mp4,
  WebP, JPEG); the spritesheet is built from the mp4 at the first request and kept beside it.
- `POST /v1/videos/{video_id}/remix`: a new generation with the video's spec (size, seconds,
  seed, input image) and a new prompt; `remixed_from_video_id` names the original.
- `Idempotency-Key` works on creates and remixes as on the AI/ML API routes.
- `tenant=<id>|all` on retrieve and list: an admin key reads another tenant's videos, or
  every tenant's (`api.tenants`).

Kling's official API shares the prefix (`/v1/videos/text2video`, `/v1/videos/image2video`):
its routes are literal paths registered before this router, so `/v1/videos/{video_id}`
never claims them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from reelforge.api.body import body_too_large, is_json_content_type, read_json_body
from reelforge.api.context import ApiContext
from reelforge.api.files import stored_response
from reelforge.api.openai.protocol import parse_create, parse_remix
from reelforge.api.openai.render import render_deleted, render_video
from reelforge.api.openai.schema import (
    REMIX_REQUEST_BODY,
    VIDEO_CREATE_REQUEST_BODY,
    Video,
    VideoDeleted,
    VideoList,
    openai_answers,
    openai_content_answers,
)
from reelforge.api.openapi import idempotency_key_parameter
from reelforge.api.query import bounded_int
from reelforge.api.tenants import TENANT_PARAMETER, jobs_read_by
from reelforge.errors import (
    FieldError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ReelforgeError,
    UnsupportedMediaType,
)
from reelforge.jobs import Job, JobStatus
from reelforge.media.spritesheet import spritesheet
from reelforge.service import GenerationView, Submission
from reelforge.service.generations import IDEMPOTENCY_HEADER, request_fingerprint
from reelforge.storage import keys

__all__ = ["DIALECT", "PREFIX", "build_openai_router"]

DIALECT = "openai"
PREFIX = "/v1/videos"
LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
SPRITESHEET_FILE = "spritesheet.jpg"
_MAX_FORM_FIELDS = 20
_POLL_AFTER_HEADER = "openai-poll-after-ms"


def build_openai_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["OpenAI Videos API"])
    service = ctx.generations

    async def create_video(request: Request, tenant: str = Depends(ctx.auth.generator)) -> Any:
        body, upload = await _read_create_body(request, ctx)
        parsed = parse_create(body, ctx.registry, upload)
        fingerprint_body = {**body, "input_reference": _digest(upload)} if upload else body
        submission = Submission(
            spec=parsed.spec,
            fingerprint=request_fingerprint(DIALECT, fingerprint_body),
            image_url=parsed.image,
            webhook=parsed.webhook,
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
        )
        with _input_reference_errors():
            view = await service.create(submission, tenant=tenant, dialect=DIALECT)
        return _video_response(view)

    async def retrieve_video(
        request: Request, video_id: str, tenant: str = Depends(ctx.auth.reader)
    ) -> Any:
        whose = await jobs_read_by(ctx, request, tenant)
        return _video_response(await service.get(video_id, whose))

    async def list_videos(
        request: Request,
        after: str | None = Query(default=None, include_in_schema=False),
        limit: str | None = Query(default=None, include_in_schema=False),
        order: str | None = Query(default=None, include_in_schema=False),
        tenant: str = Depends(ctx.auth.reader),
    ) -> Any:
        if order not in (None, "asc", "desc"):
            raise InvalidRequest(FieldError("order", "must be asc or desc"))
        views, has_more = await service.list(
            await jobs_read_by(ctx, request, tenant),
            limit=bounded_int("limit", limit, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX),
            after=after or None,
            oldest_first=order == "asc",
        )
        return {
            "object": "list",
            "data": [render_video(view.job) for view in views],
            "first_id": views[0].job.id if views else None,
            "last_id": views[-1].job.id if views else None,
            "has_more": has_more,
        }

    async def delete_video(video_id: str, tenant: str = Depends(ctx.auth.generator)) -> Any:
        return render_deleted(await service.delete(video_id, tenant))

    async def video_content(
        request: Request,
        video_id: str,
        variant: str | None = Query(default=None, include_in_schema=False),
        tenant: str = Depends(ctx.auth.reader),
    ) -> Response:
        if variant not in (None, "video", "thumbnail", "spritesheet"):
            raise InvalidRequest(FieldError("variant", "must be video, thumbnail or spritesheet"))
        job = (await service.get(video_id, tenant)).job
        if job.status is not JobStatus.SUCCEEDED or job.result is None:
            raise NotFound(
                f"video {video_id[:100]!r} has no content: it is {render_video(job)['status']}"
            )
        if variant == "spritesheet":
            key = await run_in_threadpool(_spritesheet_key, ctx, job)
            return await run_in_threadpool(_stored, ctx, key, "image/jpeg", request)
        artifact = job.result.thumbnail if variant == "thumbnail" else job.result.video
        return await run_in_threadpool(_stored, ctx, artifact.key, artifact.content_type, request)

    async def remix_video(
        request: Request, video_id: str, tenant: str = Depends(ctx.auth.generator)
    ) -> Any:
        body = await read_json_body(request, ctx.settings.max_body_bytes)
        prompt = parse_remix(body)
        original = (await service.get(video_id, tenant)).job
        image = None
        if original.spec.image_key is not None:
            png = await run_in_threadpool(_read_input, ctx, original)
            image = base64.b64encode(png).decode()
        spec = original.spec.model_copy(
            update={"prompt": prompt, "remixed_from": original.id, "image_key": None}
        )
        submission = Submission(
            spec=spec,
            fingerprint=request_fingerprint(DIALECT, {"remix": original.id, **body}),
            image_url=image,
            webhook=original.webhook,
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
        )
        view = await service.create(submission, tenant=tenant, dialect=DIALECT)
        return _video_response(view)

    video = (Video, "The video, as it stands.")
    router.add_api_route(
        PREFIX,
        create_video,
        methods=["POST"],
        response_model=None,
        responses=openai_answers(*video, 400, 401, 403, 409, 413, 415, 429, 503, 507),
        openapi_extra={
            **VIDEO_CREATE_REQUEST_BODY,
            "parameters": [idempotency_key_parameter("video")],
        },
    )
    router.add_api_route(
        PREFIX,
        list_videos,
        methods=["GET"],
        response_model=None,
        responses=openai_answers(
            VideoList, "A page of the caller's videos.", 400, 401, 403, 404, 429, 503
        ),
        openapi_extra={"parameters": _LIST_PARAMETERS},
    )
    router.add_api_route(
        PREFIX + "/{video_id}",
        retrieve_video,
        methods=["GET"],
        response_model=None,
        responses=openai_answers(*video, 400, 401, 403, 404, 429, 503),
        openapi_extra={"parameters": [TENANT_PARAMETER]},
    )
    router.add_api_route(
        PREFIX + "/{video_id}",
        delete_video,
        methods=["DELETE"],
        response_model=None,
        responses=openai_answers(
            VideoDeleted, "Deleted, with its files.", 401, 403, 404, 429, 503, 507
        ),
    )
    router.add_api_route(
        PREFIX + "/{video_id}/content",
        video_content,
        methods=["GET"],
        response_model=None,
        response_class=Response,
        responses=openai_content_answers(400, 401, 403, 404, 429, 503, 507),
        openapi_extra={"parameters": [_VARIANT_PARAMETER]},
    )
    router.add_api_route(
        PREFIX + "/{video_id}/remix",
        remix_video,
        methods=["POST"],
        response_model=None,
        responses=openai_answers(*video, 400, 401, 403, 404, 409, 413, 415, 429, 503, 507),
        openapi_extra={**REMIX_REQUEST_BODY, "parameters": [idempotency_key_parameter("video")]},
    )
    return router


def _video_response(view: GenerationView) -> JSONResponse:
    headers = {}
    if not view.job.terminal:
        # The SDK's poll waits this long; sooner when the job is nearly done.
        eta_ms = 1000 if view.eta_s is None else view.eta_s * 1000 / 4
        headers[_POLL_AFTER_HEADER] = str(int(min(5000, max(250, eta_ms))))
    return JSONResponse(render_video(view.job), headers=headers)


async def _read_create_body(request: Request, ctx: ApiContext) -> tuple[dict[str, Any], str | None]:
    """The create body as a dict of fields, and an uploaded `input_reference` (base64)."""
    content_type = request.headers.get("content-type", "")
    if is_json_content_type(content_type):
        parsed = await read_json_body(
            request, ctx.settings.max_body_bytes, image_field="input_reference"
        )
        if not isinstance(parsed, dict):
            raise InvalidRequest(FieldError("body", "must be a JSON object"))
        return parsed, None
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        raise UnsupportedMediaType(
            "body: send the request body as JSON (Content-Type: application/json) or as "
            "multipart/form-data"
        )
    limited = Request(request.scope, _capped(request, ctx.settings.max_body_bytes))
    body: dict[str, Any] = {}
    upload: str | None = None
    async with limited.form(max_files=1, max_fields=_MAX_FORM_FIELDS) as form:
        for name in dict.fromkeys(form.keys()):
            values = form.getlist(name)
            if len(values) > 1:
                raise InvalidRequest(FieldError(name, "is given more than once"))
            value = values[0]
            if isinstance(value, UploadFile):
                if name != "input_reference":
                    raise InvalidRequest(FieldError(name, "must not be a file"))
                upload = await _read_upload(value, ctx.settings.image_max_bytes)
            elif name.startswith("input_reference[") and name.endswith("]"):
                # The SDK's form encoding of the reference object: input_reference[image_url].
                reference = body.setdefault("input_reference", {})
                if isinstance(reference, dict):
                    reference[name[len("input_reference[") : -1]] = value
            else:
                body[name] = value
    return body, upload


def _capped(request: Request, max_bytes: int) -> Any:
    """A `receive` that replays the request body and refuses one past `max_bytes` (413, naming
    `input_reference`, the one form field that can be that large)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise body_too_large(max_bytes, "input_reference")
    total = 0

    async def receive() -> Any:
        nonlocal total
        message = await request.receive()
        total += len(message.get("body", b""))
        if total > max_bytes:
            raise body_too_large(max_bytes, "input_reference")
        return message

    return receive


async def _read_upload(upload: UploadFile, max_bytes: int) -> str:
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"input_reference: image too large (more than {max_bytes} bytes)",
            field="input_reference",
        )
    if not data:
        raise InvalidRequest(FieldError("input_reference", "the uploaded file is empty"))
    return base64.b64encode(data).decode()


def _digest(upload: str) -> str:
    return hashlib.sha256(upload.encode()).hexdigest()


@contextlib.contextmanager
def _input_reference_errors() -> Iterator[None]:
    """The image loader names `image_url` in its errors; this dialect's field is
    `input_reference`."""
    try:
        yield
    except InvalidRequest as exc:
        if "image_url" not in exc.fields:
            raise
        raise InvalidRequest(
            [
                FieldError("input_reference" if e.field == "image_url" else e.field, e.problem)
                for e in exc.errors
            ]
        ) from None
    except ReelforgeError as exc:
        if not exc.message.startswith("image_url: "):
            raise
        message = "input_reference: " + exc.message.removeprefix("image_url: ")
        raise type(exc)(message, field="input_reference") from None


def _stored(ctx: ApiContext, key: str, content_type: str, request: Request) -> Response:
    return stored_response(
        ctx.storage, key, content_type, request, missing="the video's file is gone"
    )


def _spritesheet_key(ctx: ApiContext, job: Job) -> str:
    """The stored spritesheet of `job`, made from its mp4 at the first request."""
    key = keys.output(job.id, SPRITESHEET_FILE)
    if ctx.storage.stat(key) is not None:
        return key
    assert job.result is not None
    stored = ctx.storage.stat(job.result.video.key)
    if stored is None:
        raise NotFound("the video's file is gone")
    if stored.path is not None:
        sheet = spritesheet(str(stored.path))
    else:
        # Copied to a scratch file a chunk at a time: the mp4 is never whole in memory.
        with tempfile.NamedTemporaryFile(suffix=".mp4") as copy:
            for chunk in ctx.storage.open_stream(job.result.video.key).chunks:
                copy.write(chunk)
            copy.flush()
            sheet = spritesheet(copy.name)
    ctx.storage.put_bytes(key, sheet, "image/jpeg")
    return key


def _read_input(ctx: ApiContext, job: Job) -> bytes:
    assert job.spec.image_key is not None
    try:
        return ctx.storage.get_bytes(job.spec.image_key)
    except FileNotFoundError:
        raise NotFound(f"video {job.id!r} no longer has its input image") from None


_VARIANT_PARAMETER = {
    "name": "variant",
    "in": "query",
    "required": False,
    "description": "`video` (mp4, the default), `thumbnail` (WebP) or `spritesheet` (JPEG of "
    "evenly spaced frames).",
    "schema": {"type": "string", "enum": ["video", "thumbnail", "spritesheet"]},
}

_LIST_PARAMETERS = [
    {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "The `last_id` of the previous page.",
        "schema": {"type": "string"},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"Page size, 1 to {LIST_LIMIT_MAX} (default {LIST_LIMIT_DEFAULT}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": LIST_LIMIT_MAX},
    },
    {
        "name": "order",
        "in": "query",
        "required": False,
        "description": "`desc` (newest first, the default) or `asc`.",
        "schema": {"type": "string", "enum": ["asc", "desc"]},
    },
    TENANT_PARAMETER,
]
