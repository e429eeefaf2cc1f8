"""The one place where errors become HTTP answers, in the AI/ML API error body:

    {"message": ..., "path": ..., "requestId": ..., "statusCode": ..., "timestamp": ...}

Client errors carry their message (naming the offending fields); anything unexpected is
logged with the request id and answered with a generic 500 that leaks no internals.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from reelforge.errors import InvalidRequest, ReelforgeError, ServiceUnavailable
from reelforge.jobs import translate_db_error

__all__ = ["error_response", "install_error_handlers", "request_id"]

log = logging.getLogger(__name__)


def request_id(request: Request) -> str:
    """The id the request-id middleware gave this request (also sent as x-request-id)."""
    return str(getattr(request.state, "request_id", ""))


def error_response(
    request: Request,
    status_code: int,
    message: str,
    extra: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "message": message,
        "path": request.url.path,
        "requestId": request_id(request),
        "statusCode": status_code,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status_code, headers=headers)


async def _reelforge_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReelforgeError)
    status = getattr(exc, "status_code", 500)
    if status >= 500:
        # Expected server-side failures (database away, disk full): one line, no traceback.
        log.error("request %s: %s", request_id(request), exc.message)
    extra = None
    if isinstance(exc, InvalidRequest):
        extra = {"errors": [{"field": e.field, "message": e.problem} for e in exc.errors]}
    elif exc.field is not None:
        extra = {"errors": [{"field": exc.field, "message": exc.message}]}
    headers = None
    if isinstance(exc, ServiceUnavailable):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return error_response(request, status, exc.message, extra, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        ".".join(str(p) for p in err["loc"] if p not in ("body", "query")) for err in exc.errors()
    ]
    problems = [
        f"{f or 'request'}: {err['msg']}" for f, err in zip(fields, exc.errors(), strict=True)
    ]
    return error_response(request, 400, "; ".join(problems))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette's Allow names the methods of the first route on the path only; a path
        # served by several routes (GET poll, POST create) must name them all.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return error_response(request, exc.status_code, str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    routes: list[BaseRoute] = getattr(request.app.state, "allow_routes", [])
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Database calls go through the gate, which translates their failures; this catches one
    # that did not (a dependency, a new route), so an outage is never a 500.
    translated = translate_db_error(exc)
    if translated is not None:
        return await _reelforge_error(request, translated)
    log.error("request %s: unhandled error", request_id(request), exc_info=exc)
    return error_response(
        request, 500, f"internal server error; quote request id {request_id(request)}"
    )


def install_error_handlers(app: FastAPI, routers: list[APIRouter]) -> None:
    """Register the handlers; `routers` are the app's routers, whose routes a 405's `Allow`
    header is computed from."""
    app.state.allow_routes = [route for router in routers for route in router.routes]
    app.add_exception_handler(ReelforgeError, _reelforge_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
