"""The admin API (`/v1/admin/...`, admin scope): managed keys and the audit log, the same
operations as `reelforge keys`. Every call is written to the audit log with the caller's key
and address; a new or rotated secret is in the answer once and nowhere else.

Bodies are read as every dialect's are (`api.body.read_json_body`: declared JSON, at most
REELFORGE_MAX_BODY_BYTES, strict and shallow), then validated against the models below."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reelforge.api.auth import Principal
from reelforge.api.body import read_json_body
from reelforge.api.context import ApiContext
from reelforge.api.openapi import error_responses, json_request_body
from reelforge.api.query import bounded_int
from reelforge.errors import FieldError, InvalidRequest, NotFound
from reelforge.tenancy.keys import DEFAULT_SCOPES, KeyLimits, Scope

__all__ = ["ADMIN_PREFIX", "build_admin_router"]

ADMIN_PREFIX = "/v1/admin"

# Bounds that keep every limit a finite, storable number (a float past them is infinity).
_MAX_COUNT = 1_000_000_000
_MAX_DAILY_S = 1e9
_MAX_DAYS = 36_500

KeyId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{12}$", description="The key's id (`reelforge keys list`).")
]


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrent: int | None = Field(
        default=None,
        ge=1,
        le=_MAX_COUNT,
        description="Jobs in flight at once: queued or running.",
    )
    max_queued: int | None = Field(
        default=None, ge=1, le=_MAX_COUNT, description="Jobs waiting to start, at once."
    )
    daily_video_seconds: float | None = Field(
        default=None, gt=0, le=_MAX_DAILY_S, description="Seconds of video per day (UTC)."
    )
    rate_per_minute: int | None = Field(
        default=None, ge=1, le=_MAX_COUNT, description="Requests per minute."
    )

    def to_limits(self) -> KeyLimits:
        return KeyLimits(**self.model_dump())


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="What the key is for.")
    scopes: list[Scope] = Field(
        default_factory=lambda: sorted(DEFAULT_SCOPES), min_length=1, description="Its scopes."
    )
    limits: Limits = Field(default_factory=Limits)
    expires_in_days: float | None = Field(
        default=None, gt=0, le=_MAX_DAYS, description="End it after this many days."
    )


class KeyChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limits: Limits = Field(description="The key's limits, whole: a limit left out is removed.")


class KeyView(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="What its secret starts with.")
    tenant: str
    scopes: list[Scope]
    limits: Limits
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None


class KeyWithSecret(KeyView):
    secret: str = Field(description="Shown once: stored only as a hash.")


class KeyList(BaseModel):
    data: list[KeyView]


class AuditView(BaseModel):
    seq: int
    at: float
    actor: str = Field(description="The key id that acted, `bootstrap`, `loopback` or `cli`.")
    action: str
    target: str | None
    source: str = Field(description="The caller's address, or `cli`.")
    detail: dict[str, Any]


class AuditList(BaseModel):
    data: list[AuditView]


_Body = TypeVar("_Body", bound=BaseModel)


def build_admin_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX, tags=["admin"])
    keys = ctx.keys
    refused = error_responses(400, 401, 403, 429, 503)

    async def read_body(request: Request, model: type[_Body]) -> _Body:
        return _validated(model, await read_json_body(request, ctx.settings.max_body_bytes))

    def who(request: Request) -> tuple[str, str]:
        principal: Principal = request.state.principal
        return principal.actor, request.client.host if request.client else "unknown"

    @router.get("/keys", response_model=KeyList, responses=refused)
    async def list_keys(request: Request, _tenant: str = Depends(ctx.auth.admin)) -> Any:
        actor, source = who(request)
        listed = await ctx.db.run(keys.list_keys)
        await ctx.db.run(keys.audit, actor, "admin.keys.list", None, source)
        return {"data": [key.public() for key in listed]}

    @router.post(
        "/keys",
        status_code=201,
        response_model=KeyWithSecret,
        responses=error_responses(400, 401, 403, 413, 415, 429, 503),
        openapi_extra=json_request_body(KeyCreate),
    )
    async def create_key(request: Request, _tenant: str = Depends(ctx.auth.admin)) -> Any:
        body = await read_body(request, KeyCreate)
        actor, source = who(request)

        def create() -> dict[str, Any]:
            key, secret = keys.create(
                body.name,
                scopes=body.scopes,
                limits=body.limits.to_limits(),
                expires_in_days=body.expires_in_days,
                actor=actor,
                source=source,
            )
            return {**key.public(), "secret": secret}

        return JSONResponse(await ctx.db.run(create), status_code=201)

    @router.post(
        "/keys/{key_id}/rotate",
        response_model=KeyWithSecret,
        responses=error_responses(400, 401, 403, 404, 429, 503),
    )
    async def rotate_key(
        key_id: KeyId, request: Request, _tenant: str = Depends(ctx.auth.admin)
    ) -> Any:
        actor, source = who(request)
        rotated = await ctx.db.run(lambda: keys.rotate(key_id, actor=actor, source=source))
        if rotated is None:
            raise NotFound(f"no key {key_id} in force", field="key_id")
        key, secret = rotated
        return {**key.public(), "secret": secret}

    @router.patch(
        "/keys/{key_id}",
        response_model=KeyView,
        responses=error_responses(400, 401, 403, 404, 413, 415, 429, 503),
        openapi_extra=json_request_body(KeyChange),
    )
    async def change_key(
        key_id: KeyId, request: Request, _tenant: str = Depends(ctx.auth.admin)
    ) -> Any:
        body = await read_body(request, KeyChange)
        actor, source = who(request)
        limits = body.limits.to_limits()
        key = await ctx.db.run(lambda: keys.set_limits(key_id, limits, actor=actor, source=source))
        if key is None:
            raise NotFound(f"no key {key_id}", field="key_id")
        return key.public()

    @router.delete(
        "/keys/{key_id}",
        response_model=KeyView,
        responses=error_responses(400, 401, 403, 404, 429, 503),
    )
    async def revoke_key(
        key_id: KeyId, request: Request, _tenant: str = Depends(ctx.auth.admin)
    ) -> Any:
        actor, source = who(request)
        key = await ctx.db.run(lambda: keys.revoke(key_id, actor=actor, source=source))
        if key is None:
            raise NotFound(f"no key {key_id}", field="key_id")
        return key.public()

    @router.get("/audit", response_model=AuditList, responses=refused)
    async def audit(request: Request, _tenant: str = Depends(ctx.auth.admin)) -> Any:
        query = request.query_params
        after = bounded_int("after", query.get("after"), default=1, maximum=2**62) - 1
        limit = bounded_int("limit", query.get("limit"), default=100, maximum=1000)
        entries = await ctx.db.run(lambda: keys.audit_entries(after_seq=after, limit=limit))
        return {"data": [entry.public() for entry in entries]}

    return router


def _validated(model: type[_Body], body: Any) -> _Body:
    """`body` as `model`, or a 400 naming each offending field (dotted: `limits.max_queued`)."""
    if not isinstance(body, dict):
        raise InvalidRequest(FieldError("body", "must be a JSON object"))
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest(
            [
                FieldError(".".join(str(part) for part in error["loc"]) or "body", error["msg"])
                for error in exc.errors()
            ]
        ) from None
