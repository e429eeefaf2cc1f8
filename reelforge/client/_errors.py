"""The errors the reelforge client raises, one class per way a call or a job can go wrong.

    ReelforgeClientError            base of everything below; catch it to catch them all
    ├── APIError                    the server answered non-2xx (status_code, message, ...)
    │   ├── BadRequest              400 / 422: the request is invalid; message names the fields
    │   ├── AuthenticationError     401: missing or unknown API key
    │   ├── PermissionDenied        403: the key may not do this
    │   ├── NotFound                404: unknown generation id (or an expired file URL)
    │   ├── Conflict                409: e.g. cancelling a generation that already finished
    │   ├── PayloadTooLarge         413: body or input image too large
    │   ├── RateLimited             429: slow down and retry
    │   └── ServerError             5xx: the server could not serve a valid request
    ├── ConnectionFailed            no answer at all: refused, DNS, TLS, network timeout
    ├── UnexpectedResponse          a 2xx answer this client cannot read
    ├── GenerationFailed            the call worked but the *job* ended in "error"
    └── WaitTimeout                 the job was still running when `wait` gave up

"The call failed" (`APIError`, `ConnectionFailed`, `UnexpectedResponse`) is kept apart from
"the job failed" (`GenerationFailed`): retrying the same call may fix the first, only a
different request can fix the second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from reelforge.client._models import Generation

__all__ = [
    "APIError",
    "AuthenticationError",
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "GenerationFailed",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "ReelforgeClientError",
    "ServerError",
    "UnexpectedResponse",
    "WaitTimeout",
    "error_from_response",
]


class ReelforgeClientError(Exception):
    """Base of every error the reelforge client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIError(ReelforgeClientError):
    """The server answered with a non-2xx status; `body` is its parsed JSON (or None)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        return f"{self.status_code}: {self.message}{suffix}"


class BadRequest(APIError):
    """400 or 422: the request is invalid; the message names the offending fields."""


class AuthenticationError(APIError):
    """401: the API key is missing or not accepted."""


class PermissionDenied(APIError):
    """403: the API key is valid but may not do this."""


class NotFound(APIError):
    """404: no such generation (or a file URL that expired)."""


class Conflict(APIError):
    """409: the generation's state forbids the call (e.g. cancelling a finished one)."""


class PayloadTooLarge(APIError):
    """413: the request body or its input image is larger than the server accepts."""


class RateLimited(APIError):
    """429: too many requests; retry later."""


class ServerError(APIError):
    """5xx: the server failed on a valid request; retrying may help."""


class ConnectionFailed(ReelforgeClientError):
    """The server could not be reached or did not answer in time (no HTTP status at all)."""


class UnexpectedResponse(ReelforgeClientError):
    """The server answered 2xx with a body that is not what the protocol promises."""


class GenerationFailed(ReelforgeClientError):
    """The generation job ended with status "error"; `generation.error` says why."""

    def __init__(self, generation: Generation) -> None:
        error = generation.error
        name = error.name if error else "error"
        detail = error.message if error else "the generation failed"
        super().__init__(f"generation {generation.id} failed: {name}: {detail}")
        self.generation = generation


class WaitTimeout(ReelforgeClientError):
    """`wait` gave up after `timeout_s`; the job goes on, `generation` is its last state."""

    def __init__(self, generation: Generation, timeout_s: float) -> None:
        super().__init__(
            f"generation {generation.id} still {generation.status} after {timeout_s:g} s"
        )
        self.generation = generation
        self.timeout_s = timeout_s


# 422 is what validation errors look like behind some proxies and frameworks: same meaning.
_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: BadRequest,
    429: RateLimited,
}


def error_from_response(response: httpx.Response) -> APIError:
    """The `APIError` subclass for a non-2xx response whose body has already been read."""
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = None
    message = ""
    request_id = response.headers.get("x-request-id")
    if isinstance(body, dict):
        message = str(body.get("message") or "")
        request_id = body.get("requestId") or request_id
    if not message:
        # A proxy or a file server in front may answer in plain text or HTML.
        message = response.text.strip()[:500] or response.reason_phrase or "request failed"
    status = response.status_code
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else APIError)
    return cls(message, status_code=status, request_id=request_id, body=body)
