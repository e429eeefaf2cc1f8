"""Whose jobs or usage a request reads: the caller's own, or, with the admin scope, another
tenant's or every tenant's, asked for by a `tenant` query parameter.

    (absent)        the caller's own
    <tenant id>     that tenant's: admin scope; anyone else's is a 404, as another
                    tenant's job id is (a key learns nothing of other tenants)
    all             every tenant's: admin scope (else 403, naming it)

Every read through the admin scope is written to the audit log (`on_the_record`).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from reelforge.api.auth import Principal
from reelforge.api.context import ApiContext
from reelforge.errors import FieldError, Forbidden, InvalidRequest, NotFound
from reelforge.tenancy.keys import Scope

__all__ = ["ALL_TENANTS", "TENANT_PARAMETER", "jobs_read_by", "on_the_record", "tenant_asked"]

ALL_TENANTS = "all"
_MAX_TENANT = 255


def tenant_asked(request: Request) -> str | None:
    """The tenant the request reads (module docstring): a tenant id, or None for every
    tenant's; raises 404 / 403 for a caller without the admin scope."""
    principal: Principal = request.state.principal
    asked = request.query_params.get("tenant")
    if asked is None or asked == principal.tenant:
        return principal.tenant
    if not asked or len(asked) > _MAX_TENANT:
        raise InvalidRequest(FieldError("tenant", f"must be 1 to {_MAX_TENANT} characters"))
    if Scope.ADMIN not in principal.scopes:
        if asked == ALL_TENANTS:
            raise Forbidden("only an admin key may read every tenant's", field="tenant")
        raise NotFound(f"no tenant {asked[:100]!r}", field="tenant")
    return None if asked == ALL_TENANTS else asked


async def on_the_record(ctx: ApiContext, request: Request, action: str, whose: str | None) -> None:
    """Write a read through the admin scope (`whose` not the caller's own) to the audit log."""
    principal: Principal = request.state.principal
    if whose == principal.tenant:
        return
    source = request.client.host if request.client else "unknown"
    target = ALL_TENANTS if whose is None else whose
    await ctx.db.run(ctx.keys.audit, principal.actor, action, target, source)


async def jobs_read_by(ctx: ApiContext, request: Request, tenant: str) -> str | None:
    """Whose jobs a poll or a list reads: the caller's own (`tenant`) unless it asks for
    another's (a tenant id) or every tenant's (None), on the record."""
    if "tenant" not in request.query_params:  # the common case, on every poll: nothing to do
        return tenant
    whose = tenant_asked(request)
    await on_the_record(ctx, request, "admin.jobs", whose)
    return whose


TENANT_PARAMETER: dict[str, Any] = {
    "name": "tenant",
    "in": "query",
    "required": False,
    "description": "Admin keys only: another tenant's (its id), or every tenant's (`all`); "
    "without it, the caller's own. Another tenant's id asked by a key without the admin "
    "scope answers 404, `all` 403.",
    "schema": {"type": "string", "minLength": 1, "maxLength": _MAX_TENANT},
}
