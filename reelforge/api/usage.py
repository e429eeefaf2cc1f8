"""`GET /v1/usage`: what a key used, per day and model; an admin key may ask for any tenant's
or every tenant's (`tenant=all`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from reelforge.api.auth import Principal
from reelforge.api.context import ApiContext
from reelforge.api.openapi import error_responses
from reelforge.api.query import bounded_int
from reelforge.errors import Forbidden
from reelforge.tenancy.keys import Scope
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
        "/v1/usage", response_model=Usage, responses=error_responses(400, 401, 403, 429, 503)
    )
    async def get_usage(request: Request, tenant: str = Depends(ctx.auth.reader)) -> Any:
        principal: Principal = request.state.principal
        days = bounded_int("days", request.query_params.get("days"), default=30, maximum=MAX_DAYS)
        asked = request.query_params.get("tenant")
        if asked is not None and asked != tenant and Scope.ADMIN not in principal.scopes:
            raise Forbidden("only an admin key may read another tenant's usage", field="tenant")
        whose = tenant if asked is None else None if asked == "all" else asked
        if whose != tenant:  # the admin scope used: on the record
            source = request.client.host if request.client else "unknown"
            await ctx.db.run(ctx.keys.audit, principal.actor, "admin.usage", asked, source)
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
            "tenant": "all" if whose is None else whose,
            "days": days,
            "totals": totals,
            "data": [row.public() for row in rows],
        }

    return router
