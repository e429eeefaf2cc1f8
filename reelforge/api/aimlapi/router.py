"""The AI/ML API routes: create, poll, list, cancel and delete generations. Thin: parse,
call the service layer (`reelforge.service.Generations`), render.

Beyond the hosted API (whose clients ignore what they do not know):
- `POST …/{generation_id}/cancel` ends a queued job at once and stops a running one at its
  next denoising step; the answer is the generation as it stands (`cancel_requested: true`),
  and polling shows `error` with `error.name == "canceled"`.
- `GET /v2/video/generations` without `generation_id` lists the caller's generations, newest
  first: `{"data": [...], "has_more", "last_id"}`, paged with `limit` and `after`, filtered by
  `status` and `model`. `GET …/{generation_id}` is the path form of the poll.
- `DELETE …/{generation_id}` cancels the generation if it runs, removes it and its files, and
  answers `{"id", "deleted": true}`; afterwards it and its file links answer 404.
- `Idempotency-Key` on a create: the same key and body within 24 h return the same
  generation (no second job); the same key with another body is a 409.
- `webhook_url` (or `callback_url`) and `webhook_events` in a create body;
  `GET …/{generation_id}/webhooks` lists the deliveries and each attempt's outcome.
- `GET …/{generation_id}/events`: Server-Sent Events, one per change (`service.streams`),
  each carrying the poll body (event name: its status word, or `deleted`); resumable with
  `Last-Event-ID`.
- `eta_seconds` in the generation object (`service.eta`).
- `tenant=<id>|all` on the poll and the list: an admin key reads another tenant's jobs, or
  every tenant's (`api.tenants`; each such read is in the audit log).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, JSONServerSentEvent, ServerSentEvent
from starlette.background import BackgroundTask

from reelforge.api.aimlapi.poll import answer_poll
from reelforge.api.aimlapi.protocol import (
    CreateVideoRequest,
    parse_create_request,
    webhook_subscription,
)
from reelforge.api.aimlapi.render import (
    STATUS_WORDS,
    render_generation,
    render_webhook_deliveries,
)
from reelforge.api.body import read_json_body
from reelforge.api.context import ApiContext
from reelforge.api.openapi import (
    Generation,
    GenerationDeleted,
    GenerationList,
    WebhookDeliveryList,
    answers,
    event_stream_responses,
    idempotency_key_parameter,
    json_request_body,
)
from reelforge.api.query import bounded_int
from reelforge.api.tenants import TENANT_PARAMETER, jobs_read_by
from reelforge.errors import FieldError, InvalidRequest
from reelforge.jobs import JobStatus
from reelforge.service import GenerationView, Submission
from reelforge.service.generations import IDEMPOTENCY_HEADER, request_fingerprint
from reelforge.service.streams import StreamEvent

__all__ = ["DIALECT", "build_aimlapi_router", "render_view"]

DIALECT = "aimlapi"
PATHS = ("/v2/video/generations", "/v2/generate/video/kling/generation")  # current, legacy
LIST_LIMIT_DEFAULT = 20
LIST_LIMIT_MAX = 100
STREAM_PING_S = 15
"""Keep-alive comments on a quiet stream, so proxies do not close it as idle."""
LAST_EVENT_ID_HEADER = "Last-Event-ID"

# A status word of the generation object names these job states.
_STATUSES_BY_WORD: dict[str, list[JobStatus]] = {}
for _status, _word in STATUS_WORDS.items():
    _STATUSES_BY_WORD.setdefault(_word, []).append(_status)


def build_aimlapi_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["AI/ML API"])
    service = ctx.generations

    async def create_generation(request: Request, tenant: str = Depends(ctx.auth.generator)) -> Any:
        body = await read_json_body(request, ctx.settings.max_body_bytes, image_field="image_url")
        parsed, spec = parse_create_request(body, ctx.registry)
        webhook, webhook_field = webhook_subscription(parsed)
        submission = Submission(
            spec=spec,
            fingerprint=request_fingerprint(DIALECT, body),
            image_url=parsed.image_url,
            webhook=webhook,
            webhook_field=webhook_field,
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
        )
        view = await service.create(submission, tenant=tenant, dialect=DIALECT)
        return render_view(ctx, view, str(request.base_url))

    async def get_or_list(request: Request, tenant: str = Depends(ctx.auth.reader)) -> Any:
        # The query is read by hand rather than declared as five `Query` parameters: FastAPI's
        # validation of them was a fifth of a poll's time, and each is a plain string here.
        # The OpenAPI document declares them (`_LIST_PARAMETERS`).
        query = request.query_params
        whose = await jobs_read_by(ctx, request, tenant)
        if query.get("generation_id") is not None:  # a poll with `tenant=` (else PollRoute's)
            return await answer_poll(ctx, request, whose)
        views, has_more = await service.list(
            whose,
            limit=bounded_int("limit", query.get("limit"), LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX),
            after=query.get("after") or None,
            status=_statuses(query.get("status")),
            model=query.get("model") or None,
        )
        base = str(request.base_url)
        return {
            "data": [render_view(ctx, view, base) for view in views],
            "has_more": has_more,
            "last_id": views[-1].job.id if views else None,
        }

    async def get_generation(
        request: Request, generation_id: str, tenant: str = Depends(ctx.auth.reader)
    ) -> Any:
        view = await service.get(generation_id, await jobs_read_by(ctx, request, tenant))
        # A response, not a dict: FastAPI's `jsonable_encoder` walk of the body (a tenth of a
        # poll) is not needed for what `render_generation` builds, plain JSON values only.
        return JSONResponse(render_view(ctx, view, str(request.base_url)))

    async def cancel_generation(
        request: Request, generation_id: str, tenant: str = Depends(ctx.auth.generator)
    ) -> Any:
        view = await service.cancel(generation_id, tenant)
        return render_view(ctx, view, str(request.base_url))

    async def generation_events(
        request: Request, generation_id: str, tenant: str = Depends(ctx.auth.reader)
    ) -> Any:
        after = _last_event_id(request.headers.get(LAST_EVENT_ID_HEADER))
        # Errors (404, 503) are answered here as usual, before the stream's headers.
        slot, events = await ctx.streams.open(generation_id, tenant, after)
        return EventSourceResponse(
            _server_sent(ctx, events, str(request.base_url)),
            ping=STREAM_PING_S,
            # Also after a stream that never started (the client left at once).
            background=BackgroundTask(slot.release),
        )

    async def delete_generation(
        generation_id: str, tenant: str = Depends(ctx.auth.generator)
    ) -> Any:
        job = await service.delete(generation_id, tenant)
        return {"id": job.id, "deleted": True}

    async def list_webhooks(generation_id: str, tenant: str = Depends(ctx.auth.reader)) -> Any:
        return render_webhook_deliveries(await service.webhooks(generation_id, tenant))

    generation = (Generation, "The generation, as it stands.")
    for path in PATHS:
        router.add_api_route(
            path,
            create_generation,
            methods=["POST"],
            response_model=None,
            responses=answers(*generation, 400, 401, 403, 409, 413, 415, 429, 503, 507),
            openapi_extra={
                **json_request_body(CreateVideoRequest),
                "parameters": [idempotency_key_parameter("generation")],
            },
        )
        router.add_api_route(
            path,
            get_or_list,
            methods=["GET"],
            response_model=None,
            responses=answers(
                Generation | GenerationList,
                "With `generation_id`: that generation. Without: a page of the caller's "
                "generations (an admin's `tenant`: another tenant's, or every tenant's), "
                "newest first.",
                400,
                401,
                403,
                404,
                429,
                503,
            ),
            openapi_extra={"parameters": _LIST_PARAMETERS},
        )
        router.add_api_route(
            path + "/{generation_id}",
            get_generation,
            methods=["GET"],
            response_model=None,
            responses=answers(*generation, 400, 401, 403, 404, 429, 503),
            openapi_extra={"parameters": [TENANT_PARAMETER]},
        )
        router.add_api_route(
            path + "/{generation_id}",
            delete_generation,
            methods=["DELETE"],
            response_model=None,
            responses=answers(
                GenerationDeleted, "Deleted, with its files.", 401, 403, 404, 429, 503, 507
            ),
        )
        router.add_api_route(
            path + "/{generation_id}/cancel",
            cancel_generation,
            methods=["POST"],
            response_model=None,
            responses=answers(*generation, 401, 403, 404, 409, 429, 503, 507),
        )
        router.add_api_route(
            path + "/{generation_id}/webhooks",
            list_webhooks,
            methods=["GET"],
            response_model=None,
            responses=answers(
                WebhookDeliveryList,
                "The generation's webhook deliveries and their attempts.",
                401,
                403,
                404,
                429,
                503,
            ),
        )
        router.add_api_route(
            path + "/{generation_id}/events",
            generation_events,
            methods=["GET"],
            response_model=None,
            response_class=EventSourceResponse,
            responses=event_stream_responses(400, 401, 403, 404, 429, 503),
            openapi_extra={"parameters": [_LAST_EVENT_ID_PARAMETER]},
        )
    return router


def render_view(ctx: ApiContext, view: GenerationView, request_base: str) -> dict[str, Any]:
    """The generation object for `view`, its file links signed for this server's address."""
    base = ctx.base_url(request_base)
    return render_generation(
        view.job, view.queue_position, lambda key: ctx.links.url(base, key), view.eta_s
    )


async def _server_sent(
    ctx: ApiContext, events: AsyncGenerator[StreamEvent, None], request_base: str
) -> AsyncIterator[ServerSentEvent]:
    # Closing this generator (the client left, the server stops) closes the stream's own,
    # which gives its slot back.
    async with contextlib.aclosing(events):
        async for event in events:
            if event.view is None:
                body: dict[str, Any] = {"id": event.job_id, "deleted": True}
                name = "deleted"
            else:
                body = render_view(ctx, event.view, request_base)
                name = body["status"]
            yield JSONServerSentEvent(body, id=str(event.seq), event=name)


def _last_event_id(value: str | None) -> int:
    if value is None or not value.strip():
        return 0
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise InvalidRequest(
            FieldError(LAST_EVENT_ID_HEADER, "must be the id of an event this stream sent")
        )
    return int(value)


def _statuses(value: str | None) -> list[JobStatus]:
    if not value:
        return []
    statuses: list[JobStatus] = []
    for word in value.split(","):
        if word.strip() not in _STATUSES_BY_WORD:
            raise InvalidRequest(
                FieldError("status", f"must be one of {', '.join(_STATUSES_BY_WORD)}")
            )
        statuses += _STATUSES_BY_WORD[word.strip()]
    return statuses


_LAST_EVENT_ID_PARAMETER = {
    "name": LAST_EVENT_ID_HEADER,
    "in": "header",
    "required": False,
    "description": "Resume a stream: the `id` of the last event received; every event after "
    "it is sent again first.",
    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
}

_LIST_PARAMETERS = [
    {
        "name": "generation_id",
        "in": "query",
        "required": False,
        "description": "The `id` of a generation object; without it, the route lists.",
        "schema": {"type": "string", "minLength": 1},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": f"Page size, 1 to {LIST_LIMIT_MAX} (default {LIST_LIMIT_DEFAULT}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": LIST_LIMIT_MAX},
    },
    {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "The `last_id` of the previous page.",
        "schema": {"type": "string"},
    },
    {
        "name": "status",
        "in": "query",
        "required": False,
        "description": "Only generations with these statuses (comma-separated).",
        "schema": {"type": "string"},
    },
    {
        "name": "model",
        "in": "query",
        "required": False,
        "description": "Only generations of this model.",
        "schema": {"type": "string"},
    },
    TENANT_PARAMETER,
]
