"""The AI/ML API routes: create a generation, poll it, cancel it. Thin: parse, delegate, render.

Cancelling is reelforge's addition (the hosted API has none):
`POST /v2/video/generations/{generation_id}/cancel` ends a queued job at once and stops a
running one at its next denoising step; the answer is the generation object as it stands
(`cancel_requested: true`), and polling shows `error` with `error.name == "canceled"`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from reelforge.api.aimlapi.protocol import parse_create_request
from reelforge.api.aimlapi.render import render_generation
from reelforge.api.body import read_json_body
from reelforge.api.context import ApiContext
from reelforge.api.images import fetch_image
from reelforge.engines.registry import IMAGE_TO_VIDEO_MODELS
from reelforge.errors import Conflict, FieldError, InvalidRequest, NotFound
from reelforge.jobs import Job, JobStatus, new_job_id

__all__ = ["build_aimlapi_router"]

PATHS = ("/v2/video/generations", "/v2/generate/video/kling/generation")  # current, legacy


def build_aimlapi_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["AI/ML API"])

    async def create_generation(request: Request, tenant: str = Depends(ctx.auth)) -> Any:
        body = await read_json_body(request, ctx.settings.max_body_bytes)
        job = await run_in_threadpool(_create, ctx, body, tenant)
        return _render(ctx, job, str(request.base_url))

    def get_generation(
        request: Request, generation_id: str | None = None, tenant: str = Depends(ctx.auth)
    ) -> Any:
        if not generation_id:
            raise InvalidRequest(FieldError("generation_id", "query parameter is required"))
        job = _owned_job(ctx, generation_id, tenant)
        return _render(ctx, job, str(request.base_url))

    def cancel_generation(
        request: Request, generation_id: str, tenant: str = Depends(ctx.auth)
    ) -> Any:
        _owned_job(ctx, generation_id, tenant)
        job = ctx.store.request_cancel(generation_id)
        if job is None:  # deleted in between; not something reelforge does today
            raise NotFound(f"generation {generation_id!r} not found")
        if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            word = "completed" if job.status is JobStatus.SUCCEEDED else "ended in error"
            raise Conflict(f"generation {generation_id!r} already {word}; nothing to cancel")
        return _render(ctx, job, str(request.base_url))

    for path in PATHS:
        router.add_api_route(path, create_generation, methods=["POST"])
        router.add_api_route(path, get_generation, methods=["GET"])
        router.add_api_route(path + "/{generation_id}/cancel", cancel_generation, methods=["POST"])
    return router


def _owned_job(ctx: ApiContext, generation_id: str, tenant: str) -> Job:
    job = ctx.store.get_job(generation_id)
    # Another tenant's job is answered exactly like a missing one.
    if job is None or job.tenant != tenant:
        raise NotFound(f"generation {generation_id!r} not found")
    return job


def _create(ctx: ApiContext, body: Any, tenant: str) -> Job:
    """Validate, store the input image, insert the job: all or nothing."""
    request, spec = parse_create_request(body, ctx.registry, IMAGE_TO_VIDEO_MODELS)
    job_id = new_job_id()
    if request.image_url is None:
        return ctx.store.create_job(spec, tenant=tenant, job_id=job_id)
    png = fetch_image(request.image_url, ctx.image_policy)
    key = f"inputs/{job_id}/image.png"
    ctx.storage.put_bytes(key, png, "image/png")
    try:
        return ctx.store.create_job(
            spec.model_copy(update={"image_key": key}), tenant=tenant, job_id=job_id
        )
    except BaseException:
        ctx.storage.delete(key)  # no orphan input without its job
        raise


def _render(ctx: ApiContext, job: Job, request_base: str) -> Any:
    base = ctx.base_url(request_base)
    position = ctx.store.queue_position(job)
    return render_generation(job, position, lambda key: ctx.signer.url(base, key))
