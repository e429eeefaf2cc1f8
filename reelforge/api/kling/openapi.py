"""What Kling's routes answer, as models for the OpenAPI document (they only document:
`kling.render` builds the answers, and `tests/e2e/test_fuzz.py` checks every answer of a live
server against them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from reelforge.api.openapi import RETRY_AFTER_STATUSES

__all__ = ["KlingErrorBody", "KlingTask", "KlingTaskList", "kling_answers"]


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # sometimes absent, never null


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KlingErrorBody(_Strict):
    """Kling's error body, sent with every 4xx and 5xx answer of its routes."""

    code: int = Field(
        ge=1000,
        description="1000-1004: authentication (1001 no header, 1002 malformed token, 1003 "
        "not valid yet, 1004 expired); 1103: refused; 1200: the request as a whole; 1201: a "
        "field (named in `message`); 1202: method; 1203: no such task; 1302: over the rate "
        "limit; 1303: over a quota; 5000-5002: server.",
    )
    message: str
    request_id: str = Field(description="Also sent as `x-request-id`; quote it in reports.")


class KlingVideo(_Strict):
    id: str
    url: str = Field(description="Signed download link; expires (REELFORGE_FILE_URL_TTL_S).")
    duration: str = Field(description="Seconds, as a string.")


class KlingTaskResult(_Strict):
    videos: list[KlingVideo]


class KlingTaskInfo(_Strict):
    external_task_id: str | None


class KlingTaskObject(_Strict):
    """One task, as a query answers it and its callbacks carry it."""

    task_id: str
    task_status: Literal["submitted", "processing", "succeed", "failed"]
    task_status_msg: str = Field(description="Why it failed; empty otherwise.")
    task_info: KlingTaskInfo
    created_at: int = Field(description="Epoch milliseconds.")
    updated_at: int = Field(description="Epoch milliseconds.")
    task_result: KlingTaskResult | SkipJsonSchema[None] = Field(
        default=None,
        description="Once `succeed`.",
        json_schema_extra=_drop_default,
    )


class KlingTask(_Strict):
    """Kling's envelope around one task."""

    code: Literal[0]
    message: str
    request_id: str
    data: KlingTaskObject


class KlingTaskList(_Strict):
    """Kling's envelope around a page of tasks, newest first."""

    code: Literal[0]
    message: str
    request_id: str
    data: list[KlingTaskObject]


_STATUS_DESCRIPTIONS = {
    400: "A field is invalid (code 1201, the field named in `message`), or the body is not "
    "a JSON object (1200).",
    401: "No token, a malformed or wrongly signed one, an unknown access key, or one "
    "outside its `nbf`..`exp` (codes 1000-1004).",
    403: "Refused (1103): a keyless server serves loopback clients only.",
    404: "No such task of the caller (1203).",
    413: "The request body is larger than REELFORGE_MAX_BODY_BYTES (1200).",
    415: "The request body is not declared as JSON (1200).",
    429: "Over the API key's rate limit (1302) or, for a create, one of its quotas (1303: "
    "max_concurrent, max_queued, daily_video_seconds): the message names it; nothing was "
    "done. Retry after Retry-After.",
    503: "Try again later (see Retry-After; 5001): the job database is busy or away, or no "
    "worker can serve the model.",
    507: "The job database or the artifact store is full (5000).",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}


def kling_answers(
    model: Any, description: str, *error_codes: int
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a Kling route: its 200 body and the error statuses it can answer."""
    errors: dict[int | str, dict[str, Any]] = {
        code: {
            "model": KlingErrorBody,
            "description": _STATUS_DESCRIPTIONS[code],
            **({"headers": _RETRY_AFTER} if code in RETRY_AFTER_STATUSES else {}),
        }
        for code in error_codes
    }
    return {200: {"model": model, "description": description}, **errors}
