"""The one place where errors become HTTP answers, in the AI/ML API error body:

    {"message": ..., "path": ..., "requestId": ..., "statusCode": ..., "timestamp": ...}

Client errors carry their message (naming the offending fields); anything unexpected is
logged with the request id and answered with a generic 500 that leaks no internals.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reelforge.errors import InvalidRequest, ReelforgeError

__all__ = ["error_response", "install_error_handlers", "request_id"]

log = logging.getLogger(__name__)


def request_id(request: Request) -> str:
    """The id the request-id middleware gave this request (also sent as x-request-id)."""
    return str(getattr(request.state, "request_id", ""))


def error_response(
    request: Request, status_code: int, message: str, extra: dict[str, Any] | None = None
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
    return JSONResponse(body, status_code=status_code)


async def _reelforge_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ReelforgeError)
    status = getattr(exc, "status_code", 500)
    if status >= 500:
        log.error("request %s: %s", request_id(request), exc.message)
    extra = None
    if isinstance(exc, InvalidRequest):
        extra = {"errors": [{"field": e.field, "message": e.problem} for e in exc.errors]}
    return error_response(request, status, exc.message, extra)


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
    return error_response(request, exc.status_code, str(exc.detail))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("request %s: unhandled error", request_id(request), exc_info=exc)
    return error_response(
        request, 500, f"internal server error; quote request id {request_id(request)}"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ReelforgeError, _reelforge_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
