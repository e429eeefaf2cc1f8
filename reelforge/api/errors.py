"""The one place where errors become HTTP answers, each in its dialect's error body.

Every failure is first reduced to an `ErrorInfo` (status, message, machine code, offending
fields); the renderer registered for the request's path prefix turns it into the body
(`install_error_handlers(..., renderers=)`); paths no dialect claims get the AI/ML API body:

    {"message": ..., "path": ..., "requestId": ..., "statusCode": ..., "timestamp": ...}

Client errors carry their message (naming the offending fields); anything unexpected is
logged with the request id and answered with a generic 500 that leaks no internals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match

from reelforge.errors import (
    FieldError,
    InvalidRequest,
    ReelforgeError,
    ServiceUnavailable,
    TooManyRequests,
)
from reelforge.jobs import translate_db_error

__all__ = [
    "ErrorInfo",
    "ErrorRenderer",
    "aimlapi_error_body",
    "error_response",
    "install_error_handlers",
    "request_id",
]


@dataclass(frozen=True)
class ErrorInfo:
    """An error answer before any dialect has shaped it."""

    status: int
    message: str
    code: str
    errors: list[FieldError] = field(default_factory=list)


ErrorRenderer = Callable[[Request, ErrorInfo], dict[str, Any]]
"""Builds a dialect's error body for a request under its path prefix."""


def aimlapi_error_body(request: Request, info: ErrorInfo) -> dict[str, Any]:
    """The AI/ML API error body (exactly what the hosted service answers), plus `errors`
    naming each offending field when there are any."""
    body: dict[str, Any] = {
        "message": info.message,
        "path": request.url.path,
        "requestId": request_id(request),
        "statusCode": info.status,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if info.errors:
        body["errors"] = [{"field": e.field, "message": e.problem} for e in info.errors]
    return body


log = logging.getLogger(__name__)


def request_id(request: Request) -> str:
    """The id the request-id middleware gave this request (also sent as x-request-id)."""
    return str(getattr(request.state, "request_id", ""))


def error_response(
    request: Request,
    status_code: int,
    message: str,
    *,
    code: str | None = None,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The error answer for `request`, in the body of the dialect that owns its path."""
    info = ErrorInfo(status_code, message, code or _STATUS_CODES.get(status_code, "error"))
    info.errors.extend(errors)
    body = _renderer_for(request)(request, info)
    return JSONResponse(body, status_code=status_code, headers=headers)


_STATUS_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
    507: "insufficient_storage",
}


def _renderer_for(request: Request) -> ErrorRenderer:
    app = request.scope.get("app")
    renderers: list[tuple[str, ErrorRenderer]] = getattr(
        getattr(app, "state", None), "error_renderers", []
    )
    path = request.url.path
    for prefix, renderer in renderers:
        if path.startswith(prefix):
            return renderer
    return aimlapi_error_body


async def _reelforge_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReelforgeError)
    status = getattr(exc, "status_code", 500)
    if status >= 500:
        # Expected server-side failures (database away, disk full): one line, no traceback.
        log.error("request %s: %s", request_id(request), exc.message)
    errors: list[FieldError] = []
    if isinstance(exc, InvalidRequest):
        errors = exc.errors
    elif exc.field is not None:
        # The field is named in `field`; its message, "image_url: image too large ...", need not.
        errors = [FieldError(exc.field, exc.message.removeprefix(f"{exc.field}: "))]
    headers = None
    if isinstance(exc, ServiceUnavailable | TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return error_response(
        request, status, exc.message, code=exc.code, errors=errors, headers=headers
    )


async def _client_gone(request: Request, _exc: Exception) -> JSONResponse:
    """The client went away (or ran past `http_body_timeout_s` / `_deadline_s`) sending its body:
    nothing was done, and nobody is left to answer; one line, not a traceback."""
    log.info("request %s: the client went away before its body was complete", request_id(request))
    return error_response(request, 400, "the request body was not complete")


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
        response = await _reelforge_error(request, translated)
    else:
        log.error("request %s: unhandled error", request_id(request), exc_info=exc)
        response = error_response(
            request, 500, f"internal server error; quote request id {request_id(request)}"
        )
    # Starlette answers an exception that escaped every middleware from outside them all,
    # past the one that sets this header on every other answer.
    response.headers["x-request-id"] = request_id(request)
    return response


def install_error_handlers(
    app: FastAPI,
    routers: list[APIRouter],
    renderers: Sequence[tuple[str, ErrorRenderer]] = (),
) -> None:
    """Register the handlers; `routers` are the app's routers, whose routes a 405's `Allow`
    header is computed from; `renderers` are (path prefix, renderer) pairs, a dialect's own
    error body for the paths it serves (the first matching prefix wins)."""
    app.state.allow_routes = [route for router in routers for route in router.routes]
    app.state.error_renderers = list(renderers)
    app.add_exception_handler(ReelforgeError, _reelforge_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(Exception, _unexpected_error)
