"""Service routes: health (ready once a worker is) and the list of served models."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from reelforge.api.aimlapi.protocol import create_limits
from reelforge.api.context import ApiContext
from reelforge.api.kling.protocol import KLING_MODELS, KlingModels
from reelforge.api.openapi import Health, HealthDatabaseDown, ModelList, answers, error_responses
from reelforge.engines import Registry
from reelforge.errors import DatabaseUnavailable
from reelforge.jobs import JobStatus, WorkerInfo

__all__ = ["build_system_router"]


def build_system_router(ctx: ApiContext) -> APIRouter:
    names = dialect_model_names(ctx.registry)
    router = APIRouter(tags=["service"])

    @router.get(
        "/healthz",
        response_model=None,
        responses={
            200: {"model": Health, "description": "A worker is live."},
            503: {
                "model": Health | HealthDatabaseDown,
                "description": "No worker is live (yet, or it gave up), or the job database is "
                "away.",
            },
            **error_responses(403),
        },
    )
    async def healthz() -> JSONResponse:
        try:
            live, counts = await ctx.db.run(_health, ctx)
        except DatabaseUnavailable as exc:
            down = {"status": "database_unavailable", "message": exc.message}
            return JSONResponse(down, status_code=503, headers={"Retry-After": "5"})
        problems = ctx.generations.worker_problems()
        body: dict[str, Any] = {
            "status": "ok" if live else "failed" if problems else "starting",
            "workers": len(live),
            "live_workers": [_worker_view(worker) for worker in live],
            "jobs": {status.value: n for status, n in counts.items()},
            "problems": problems,
        }
        return JSONResponse(body, status_code=200 if live else 503)

    # The model list documents what the API takes, so it follows the document's access rule:
    # keyed like the API's reads, or open to anyone with REELFORGE_DOCS=public.
    public_models = ctx.settings.docs == "public"

    @router.get(
        "/v1/models",
        response_model=None,
        dependencies=[] if public_models else [Depends(ctx.auth.reader)],
        responses=answers(
            ModelList, "The served models.", *(() if public_models else (401, 403, 429)), 503
        ),
    )
    async def list_models() -> dict[str, Any]:
        live = await ctx.db.run(ctx.store.live_workers, ctx.settings.lease_seconds)
        return {
            "object": "list",
            "data": [
                {
                    "id": entry.id,
                    "object": "model",
                    "owned_by": "reelforge",
                    "engine": entry.engine,
                    "checkpoint": entry.checkpoint,
                    "catalog": entry.catalog,
                    "task": "image-to-video" if entry.needs_image else "text-to-video",
                    "capabilities": {
                        "tasks": sorted(entry.capabilities.tasks, reverse=True),
                        "max_seconds": entry.capabilities.max_seconds,
                        "camera_moves": entry.capabilities.camera_moves,
                        "negative_prompt": entry.capabilities.negative_prompt,
                    },
                    "workers": sum(entry.id in w.models for w in live),
                    "dialects": names.get(entry.id, {}),
                    "parameters": create_limits(entry.capabilities),
                }
                for entry in ctx.registry
            ],
        }

    return router


def dialect_model_names(registry: Registry) -> dict[str, dict[str, list[str]]]:
    """For each served id, the model names each dialect accepts for it: the AI/ML API takes
    the id; OpenAI the id and its `[names.openai]` (e.g. `sora-2`); Kling's official API its
    own names (`[names."kling.text2video"]`, `[names."kling.image2video"]`)."""
    names: dict[str, dict[str, list[str]]] = {}
    openai = registry.names("openai")
    for entry in registry:
        aliases = [name for name, target in openai.items() if target == entry.id]
        names[entry.id] = {"aimlapi": [entry.id], "openai": [entry.id, *aliases]}
    for kind in KLING_MODELS:
        for name, target in registry.names(KlingModels.namespace(kind)).items():
            kling = names.setdefault(target, {}).setdefault("kling", [])
            if name not in kling:
                kling.append(name)
    return names


def _worker_view(worker: WorkerInfo) -> dict[str, Any]:
    return {
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "models": worker.models,
        "device": worker.device,
        "state": worker.state.value,
        "current_job": worker.current_job_id,
        "gpu_memory_bytes": worker.gpu_memory_bytes,
    }


def _health(ctx: ApiContext) -> tuple[list[WorkerInfo], dict[JobStatus, int]]:
    return ctx.store.live_workers(within_s=ctx.settings.lease_seconds), ctx.store.count_by_status()
