"""The errors reelforge raises on purpose, in one small tree.

    ReelforgeError
    ├── ClientError              the caller must change the request (4xx)
    │   ├── InvalidRequest       400, names the offending fields
    │   ├── Unauthorized         401
    │   ├── Forbidden            403
    │   ├── NotFound             404
    │   ├── Conflict             409, the resource's state forbids it
    │   ├── PayloadTooLarge      413
    │   └── UnsupportedMediaType 415, the body is not the content type the route reads
    ├── ServerError              reelforge could not serve a valid request (5xx)
    │   ├── ServiceUnavailable   503, try again later (`retry_after_s`, sent as Retry-After)
    │   │   └── DatabaseUnavailable  the job database refused, timed out or is gone
    │   └── InsufficientStorage  507, the database or artifact store is full
    ├── GenerationError          a job failed inside a worker; its message is shown to the user
    ├── ConfigurationError       settings, registry or weights are wrong: one line saying what
    │                            and the command that fixes it; the process exits, never loops
    └── DatabaseStartupError     (reelforge.jobs.failures) the database cannot be opened at
                                 start: one line for the operator, and the process exits 1

The API maps `ClientError` and `ServerError` to each dialect's error body in one registered
handler; anything else is logged and answered as a generic 500 without details.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ClientError",
    "ConfigurationError",
    "Conflict",
    "DatabaseUnavailable",
    "FieldError",
    "Forbidden",
    "GenerationError",
    "InsufficientStorage",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "ReelforgeError",
    "ServerError",
    "ServiceUnavailable",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
]


class ReelforgeError(Exception):
    """Base of every error reelforge raises deliberately.

    `code` is the machine-readable name each dialect's error body can carry (OpenAI's
    `error.code`, Kling's `code`); `field`, where one request field or header is at fault.
    """

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ClientError(ReelforgeError):
    status_code = 400
    code = "invalid_request"


@dataclass(frozen=True)
class FieldError:
    """One problem with one request field, e.g. ("aspect_ratio", "must be one of 16:9, ...")."""

    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"


class InvalidRequest(ClientError):
    status_code = 400
    code = "invalid_request"

    def __init__(self, errors: list[FieldError] | FieldError) -> None:
        self.errors = [errors] if isinstance(errors, FieldError) else list(errors)
        super().__init__(
            "; ".join(str(e) for e in self.errors),
            field=self.errors[0].field if self.errors else None,
        )

    @property
    def fields(self) -> list[str]:
        return [e.field for e in self.errors]


class Unauthorized(ClientError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ClientError):
    status_code = 403
    code = "forbidden"


class NotFound(ClientError):
    status_code = 404
    code = "not_found"


class Conflict(ClientError):
    status_code = 409
    code = "conflict"


class TooManyRequests(ClientError):
    """Over a rate limit or a quota (`code` says which): nothing was done; answered with
    `Retry-After`."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, retry_after_s)
        if code is not None:
            self.code = code


class PayloadTooLarge(ClientError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(ClientError):
    status_code = 415
    code = "unsupported_media_type"


class ServerError(ReelforgeError):
    status_code = 500
    code = "server_error"


class ServiceUnavailable(ServerError):
    """Recoverable: the same request may succeed later; answered with `Retry-After`."""

    status_code = 503
    code = "unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DatabaseUnavailable(ServiceUnavailable):
    """The job database refused a connection, did not answer in time, or dropped it."""

    @classmethod
    def no_answer_within(cls, deadline_s: float) -> DatabaseUnavailable:
        """A request's database work passed its deadline."""
        return cls(
            f"the job database did not answer within {deadline_s:g} s; retry shortly",
            retry_after_s=max(1, round(deadline_s)),
        )


class InsufficientStorage(ServerError):
    """The database or the artifact store has no room left; an operator must free some."""

    status_code = 507
    code = "insufficient_storage"


class ConfigurationError(ReelforgeError):
    """Not recoverable by retrying: the operator must change a setting, the registry, or pull
    a model. Raised at start-up (or when a worker loads its engines), never per request."""


class GenerationError(ReelforgeError):
    """A job could not be generated; `name` and `message` reach the user in the job's error.

    `retryable` says whether another attempt on another worker may succeed (a lost worker or
    a transient device fault) or not (bad input, out of memory for this request).
    """

    def __init__(self, message: str, *, name: str = "generation_failed", retryable: bool = False):
        super().__init__(message)
        self.name = name
        self.retryable = retryable
