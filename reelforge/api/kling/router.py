"""Kling's official API routes: create, query and list text-to-video and image-to-video
tasks. Thin: authenticate (`kling.auth`), parse (`kling.protocol`), call the service layer,
render (`kling.render`).

    POST /v1/videos/text2video | image2video            create a task
    GET  /v1/videos/text2video | image2video/{id}       one task: `id` is its task_id or
                                                        the external_task_id it was given
    GET  /v1/videos/text2video | image2video            the caller's tasks, newest first,
                                                        paged by pageNum (1..1000) and
                                                        pageSize (1..500, default 30)

Each path's first segments are literal, so these routes never take a request meant for a
route of another dialect under `/v1/videos/{id}`; `api/app.py` registers them first.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from reelforge.api.body import read_json_body
from reelforge.api.context import ApiContext
from reelforge.api.kling.auth import KlingAuthenticator
from reelforge.api.kling.openapi import KlingTask, KlingTaskList, kling_answers
from reelforge.api.kling.protocol import (
    DIALECT,
    CreateImageToVideoRequest,
    CreateTextToVideoRequest,
    KlingModels,
    TaskKind,
    parse_create_request,
)
from reelforge.api.kling.render import envelope, render_task
from reelforge.api.openapi import json_request_body
from reelforge.api.query import bounded_int
from reelforge.errors import NotFound
from reelforge.jobs import Job
from reelforge.service import GenerationView

__all__ = ["KIND_PATHS", "build_kling_router", "render_job", "render_view"]

KIND_PATHS: dict[TaskKind, str] = {
    "text2video": "/v1/videos/text2video",
    "image2video": "/v1/videos/image2video",
}
PAGE_NUM_MAX = 1000
PAGE_SIZE_MAX = 500
PAGE_SIZE_DEFAULT = 30

_BODIES: dict[TaskKind, type[BaseModel]] = {
    "text2video": CreateTextToVideoRequest,
    "image2video": CreateImageToVideoRequest,
}


def build_kling_router(ctx: ApiContext, models: KlingModels | None = None) -> APIRouter:
    router = APIRouter(tags=["Kling"])
    service = ctx.generations
    models = models or KlingModels()
    # Keyless asked at each request, not now: a key made later closes these routes too.
    auth = KlingAuthenticator(
        ctx.settings.kling_key_pairs,
        keyless=lambda: ctx.auth.open_to_loopback_only,
        managed=ctx.auth,
    )

    # The served ids that need an image: what makes a job an image2video task.
    image_models = frozenset(entry.id for entry in ctx.registry if entry.needs_image)

    def registry_ids(kind: TaskKind) -> list[str]:
        return [id_ for id_ in ctx.registry.ids if models.kind_of(id_, image_models) == kind]

    def add_routes(kind: TaskKind, path: str) -> None:
        image = "image" if kind == "image2video" else None

        async def create_task(request: Request, tenant: str = Depends(auth.generator)) -> Any:
            body = await read_json_body(request, ctx.settings.max_body_bytes, image_field=image)
            submission = parse_create_request(body, kind, ctx.registry, models)
            view = await service.create(submission, tenant=tenant, dialect=DIALECT)
            return envelope(request, render_view(ctx, view, str(request.base_url)))

        async def query_task(request: Request, task_id: str, tenant: str = Depends(auth)) -> Any:
            view = await service.lookup(task_id, tenant)
            if models.kind_of(view.job.model, image_models) != kind:
                # An image-to-video task is not found under text2video, as on Kling.
                raise NotFound(f"task {task_id[:100]!r} not found")
            return envelope(request, render_view(ctx, view, str(request.base_url)))

        async def list_tasks(
            request: Request,
            page_num: str | None = Query(default=None, alias="pageNum", include_in_schema=False),
            page_size: str | None = Query(default=None, alias="pageSize", include_in_schema=False),
            tenant: str = Depends(auth),
        ) -> Any:
            number = bounded_int("pageNum", page_num, 1, PAGE_NUM_MAX)
            size = bounded_int("pageSize", page_size, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX)
            views, _ = await service.list(
                tenant, limit=size, models=registry_ids(kind), offset=(number - 1) * size
            )
            base = str(request.base_url)
            return envelope(request, [render_view(ctx, view, base) for view in views])

        router.add_api_route(
            path,
            create_task,
            methods=["POST"],
            response_model=None,
            responses=kling_answers(
                KlingTask, "The task, submitted.", 400, 401, 403, 413, 415, 429, 503, 507
            ),
            openapi_extra=json_request_body(_BODIES[kind]),
        )
        router.add_api_route(
            path,
            list_tasks,
            methods=["GET"],
            response_model=None,
            responses=kling_answers(
                KlingTaskList,
                "A page of the caller's tasks, newest first.",
                400,
                401,
                403,
                429,
                503,
            ),
            openapi_extra={"parameters": _PAGE_PARAMETERS},
        )
        router.add_api_route(
            path + "/{task_id}",
            query_task,
            methods=["GET"],
            response_model=None,
            responses=kling_answers(KlingTask, "The task, as it stands.", 401, 403, 404, 429, 503),
        )

    for kind, path in KIND_PATHS.items():
        add_routes(kind, path)
    return router


def render_view(ctx: ApiContext, view: GenerationView, request_base: str) -> dict[str, Any]:
    """The task object for `view`, its video link signed for this server's address."""
    return render_job(ctx, view.job, ctx.base_url(request_base))


def render_job(ctx: ApiContext, job: Job, base: str) -> dict[str, Any]:
    return render_task(job, lambda key: ctx.links.url(base, key))


_PAGE_PARAMETERS = [
    {
        "name": "pageNum",
        "in": "query",
        "required": False,
        "description": f"Page number, 1 to {PAGE_NUM_MAX} (default 1).",
        "schema": {"type": "integer", "minimum": 1, "maximum": PAGE_NUM_MAX},
    },
    {
        "name": "pageSize",
        "in": "query",
        "required": False,
        "description": f"Tasks per page, 1 to {PAGE_SIZE_MAX} (default {PAGE_SIZE_DEFAULT}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX},
    },
]
