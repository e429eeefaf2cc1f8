"""`GET /v1/usage`: what a key used, per day and model; an admin key may ask for any tenant's
or every tenant's (`tenant=all`, `api.tenants`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from reelforge.api.context import ApiContext
from reelforge.api.openapi import error_responses
from reelforge.api.query import bounded_int
from reelforge.api.tenants import ALL_TENANTS, TENANT_PARAMETER, on_the_record, tenant_asked
from reelforge.tenancy.usage import usage

__all__ = ["build_usage_router"]

MAX_DAYS = 366


class UsageDay(BaseModel):
    date: str = Field(description="The day (UTC), YYYY-MM-DD.")
    tenant: str
    model: str
    jobs: dict[str, int] = Field(description="Jobs created that day, by status.")
    video_seconds: float = Field(description="Seconds of video (failed and canceled excluded).")
    engine_seconds: float = Field(description="Seconds the engine ran, for jobs that succeeded.")


class UsageTotals(BaseModel):
    jobs: dict[str, int]
    video_seconds: float
    engine_seconds: float


class Usage(BaseModel):
    tenant: str = Field(description="The tenant asked for, or `all`.")
    days: int
    totals: UsageTotals
    data: list[UsageDay]


def build_usage_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(tags=["usage"])

    @router.get(
        "/v1/usage",
        response_model=Usage,
        responses=error_responses(400, 401, 403, 404, 429, 503),
        openapi_extra={"parameters": [_DAYS_PARAMETER, TENANT_PARAMETER]},
    )
    async def get_usage(request: Request, _tenant: str = Depends(ctx.auth.reader)) -> Any:
        days = bounded_int("days", request.query_params.get("days"), default=30, maximum=MAX_DAYS)
        whose = tenant_asked(request)
        await on_the_record(ctx, request, "admin.usage", whose)
        rows = await ctx.db.run(usage, ctx.store.engine, whose, days)
        totals: dict[str, Any] = {"jobs": {}, "video_seconds": 0.0, "engine_seconds": 0.0}
        for row in rows:
            for status, count in row.jobs.items():
                totals["jobs"][status] = totals["jobs"].get(status, 0) + count
            totals["video_seconds"] += row.video_seconds
            totals["engine_seconds"] += row.engine_seconds
        totals["video_seconds"] = round(totals["video_seconds"], 3)
        totals["engine_seconds"] = round(totals["engine_seconds"], 3)
        return {
            "tenant": ALL_TENANTS if whose is None else whose,
            "days": days,
            "totals": totals,
            "data": [row.public() for row in rows],
        }

    return router


_DAYS_PARAMETER = {
    "name": "days",
    "in": "query",
    "required": False,
    "description": f"The last N days (UTC), today included: 1 to {MAX_DAYS} (default 30).",
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS},
}
