"""The AI/ML API routes: create a generation, poll it, cancel it. Thin: parse, delegate, render.

Cancelling is reelforge's addition (the hosted API has none):
`POST /v2/video/generations/{generation_id}/cancel` ends a queued job at once and stops a
running one at its next denoising step; the answer is the generation object as it stands
(`cancel_requested: true`), and polling shows `error` with `error.name == "canceled"`.
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from reelforge.api.aimlapi.protocol import CreateVideoRequest, parse_create_request
from reelforge.api.aimlapi.render import render_generation
from reelforge.api.body import read_json_body
from reelforge.api.context import ApiContext
from reelforge.api.openapi import Generation, answers, json_request_body
from reelforge.errors import (
    Conflict,
    FieldError,
    InvalidRequest,
    NotFound,
    ServerError,
    ServiceUnavailable,
)
from reelforge.jobs import Job, JobStatus, new_job_id
from reelforge.spec import GenerationSpec

__all__ = ["build_aimlapi_router"]

PATHS = ("/v2/video/generations", "/v2/generate/video/kling/generation")  # current, legacy


def build_aimlapi_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["AI/ML API"])

    async def create_generation(request: Request, tenant: str = Depends(ctx.auth)) -> Any:
        body = await read_json_body(request, ctx.settings.max_body_bytes)
        parsed, spec = parse_create_request(body, ctx.registry)
        await _check_servable(ctx, spec.model)
        job_id = new_job_id()
        if parsed.image_url is not None:
            png = await ctx.images.load_png(parsed.image_url)
            key = f"inputs/{job_id}/image.png"
            # A full or read-only store raises 507 / 503 (reelforge.storage.storage_error).
            await run_in_threadpool(ctx.storage.put_bytes, key, png, "image/png")
            spec = spec.model_copy(update={"image_key": key})
        job, position = await ctx.db.run(_insert, ctx, spec, tenant, job_id)
        return _render(ctx, job, position, str(request.base_url))

    async def get_generation(
        request: Request,
        # Optional here so that its absence gets our message; documented as required.
        generation_id: str | None = Query(default=None, include_in_schema=False),
        tenant: str = Depends(ctx.auth),
    ) -> Any:
        if not generation_id:
            raise InvalidRequest(FieldError("generation_id", "query parameter is required"))
        job, position = await ctx.db.run(_owned_job_and_position, ctx, generation_id, tenant)
        return _render(ctx, job, position, str(request.base_url))

    async def cancel_generation(
        request: Request, generation_id: str, tenant: str = Depends(ctx.auth)
    ) -> Any:
        job, position = await ctx.db.run(_cancel, ctx, generation_id, tenant)
        return _render(ctx, job, position, str(request.base_url))

    generation = (Generation, "The generation, as it stands.")
    for path in PATHS:
        router.add_api_route(
            path,
            create_generation,
            methods=["POST"],
            response_model=None,
            responses=answers(*generation, 400, 401, 403, 413, 415, 503, 507),
            openapi_extra=json_request_body(CreateVideoRequest),
        )
        router.add_api_route(
            path,
            get_generation,
            methods=["GET"],
            response_model=None,
            responses=answers(*generation, 400, 401, 403, 404, 503),
            openapi_extra={"parameters": [_GENERATION_ID_QUERY]},
        )
        router.add_api_route(
            path + "/{generation_id}/cancel",
            cancel_generation,
            methods=["POST"],
            response_model=None,
            responses=answers(*generation, 401, 403, 404, 409, 503, 507),
        )
    return router


_GENERATION_ID_QUERY = {
    "name": "generation_id",
    "in": "query",
    "required": True,
    "description": "The `id` of a generation object.",
    "schema": {"type": "string", "minLength": 1},
}


async def _check_servable(ctx: ApiContext, model: str) -> None:
    """503 instead of a job queued forever, when this server's workers gave up (a model that
    cannot load) and no live worker anywhere serves `model`. Without such problems (or on an
    API-only replica, which knows none) the job queues for whichever worker comes."""
    problems = ctx.worker_problems()
    if not problems:
        return
    live = await ctx.db.run(ctx.store.live_workers, ctx.settings.lease_seconds)
    if not any(model in worker.models for worker in live):
        raise ServiceUnavailable(
            f"no worker can serve {model}: {'; '.join(problems)}", retry_after_s=60
        )


# Each function below is one trip to a database thread (`ctx.db.run`): a request's reads and
# writes together, under one deadline.


def _owned_job(ctx: ApiContext, generation_id: str, tenant: str) -> Job:
    job = ctx.store.get_job(generation_id)
    # Another tenant's job is answered exactly like a missing one.
    if job is None or job.tenant != tenant:
        raise NotFound(f"generation {generation_id[:100]!r} not found")
    return job


def _owned_job_and_position(
    ctx: ApiContext, generation_id: str, tenant: str
) -> tuple[Job, int | None]:
    job = _owned_job(ctx, generation_id, tenant)
    return job, ctx.store.queue_position(job)


def _cancel(ctx: ApiContext, generation_id: str, tenant: str) -> tuple[Job, int | None]:
    _owned_job(ctx, generation_id, tenant)
    job = ctx.store.request_cancel(generation_id)
    if job is None:  # deleted in between; not something reelforge does today
        raise NotFound(f"generation {generation_id[:100]!r} not found")
    if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        word = "completed" if job.status is JobStatus.SUCCEEDED else "ended in error"
        raise Conflict(f"generation {generation_id!r} already {word}; nothing to cancel")
    return job, ctx.store.queue_position(job)


def _insert(
    ctx: ApiContext, spec: GenerationSpec, tenant: str, job_id: str
) -> tuple[Job, int | None]:
    """Insert the job; if that fails, remove its staged input (all or nothing). Runs in the
    database thread, so an insert that outlives the API's deadline keeps its input."""
    try:
        job = ctx.store.create_job(spec, tenant=tenant, job_id=job_id)
    except BaseException:
        if spec.image_key is not None:
            # No orphan input without its job; a store that cannot delete must not hide
            # the insert's own error.
            with contextlib.suppress(ServerError):
                ctx.storage.delete(spec.image_key)
        raise
    return job, ctx.store.queue_position(job)


def _render(ctx: ApiContext, job: Job, position: int | None, request_base: str) -> Any:
    base = ctx.base_url(request_base)
    return render_generation(job, position, lambda key: ctx.signer.url(base, key))
