"""Kling's envelope, task object and error body.

    {"code": 0, "message": "SUCCEED", "request_id": "...", "data": <task> | [<task>, ...]}

    task: {"task_id", "task_status": submitted | processing | succeed | failed,
           "task_status_msg", "task_info": {"external_task_id"}, "created_at", "updated_at"
           (epoch milliseconds), "task_result": {"videos": [{"id", "url", "duration"}]}}

`task_result` is sent once the task succeeded. A canceled job reads as `failed` (Kling has
no such state), with its reason in `task_status_msg`. Errors carry Kling's own code
(`kling_code`): 1000-1004 authentication, 1103 access, 1200-1203 the request, 5000s the
server; the HTTP status stays reelforge's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from reelforge.api.errors import ErrorInfo, request_id
from reelforge.api.kling.auth import KLING_AUTH_CODES
from reelforge.jobs import Job, JobStatus

__all__ = ["TASK_STATUS_WORDS", "envelope", "kling_code", "kling_error_body", "render_task"]

TASK_STATUS_WORDS: dict[JobStatus, str] = {
    JobStatus.QUEUED: "submitted",
    JobStatus.RUNNING: "processing",
    JobStatus.SUCCEEDED: "succeed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "failed",
}

SUCCESS_MESSAGE = "SUCCEED"


def envelope(request: Request, data: Any) -> dict[str, Any]:
    """A successful answer: code 0 around `data`."""
    return {"code": 0, "message": SUCCESS_MESSAGE, "request_id": request_id(request), "data": data}


def render_task(job: Job, link: Callable[[str], str]) -> dict[str, Any]:
    """The task object for `job`; `link(key)` makes a storage key downloadable."""
    task: dict[str, Any] = {
        "task_id": job.id,
        "task_status": TASK_STATUS_WORDS[job.status],
        "task_status_msg": _status_message(job),
        "task_info": {"external_task_id": job.external_id},
        "created_at": _millis(job.created_at),
        "updated_at": _millis(job.updated_at),
    }
    video = job.result.video if job.result else None
    if job.status is JobStatus.SUCCEEDED and video is not None:
        seconds = job.spec.seconds
        task["task_result"] = {
            "videos": [
                {
                    "id": job.id,
                    "url": link(video.key),
                    "duration": str(int(seconds)) if seconds.is_integer() else f"{seconds:g}",
                }
            ]
        }
    return task


def _status_message(job: Job) -> str:
    if job.status is JobStatus.CANCELED:
        return "the task was canceled"
    if job.status is JobStatus.FAILED:
        return job.error_message or "the task failed"
    return ""


def _millis(epoch_s: float) -> int:
    return round(epoch_s * 1000)


# HTTP status -> Kling code, for errors without a more precise reason.
_CODES_BY_STATUS = {
    400: 1201,
    401: 1000,
    403: 1103,
    404: 1203,
    405: 1202,
    409: 1201,
    413: 1200,
    415: 1200,
    429: 1302,  # "API request too fast": over a rate limit
    500: 5000,
    503: 5001,
    504: 5002,
    507: 5000,
}


def kling_code(info: ErrorInfo) -> int:
    """Kling's error code for an error answer."""
    if info.code in KLING_AUTH_CODES:
        return KLING_AUTH_CODES[info.code]
    if info.code == "quota_exceeded":
        return 1303  # "over the concurrency or resource limit"
    if info.status == 400 and info.errors and all(e.field == "body" for e in info.errors):
        return 1200  # the request as a whole (not JSON, not an object), not one field
    return _CODES_BY_STATUS.get(info.status, 5000 if info.status >= 500 else 1200)


def kling_error_body(request: Request, info: ErrorInfo) -> dict[str, Any]:
    """Kling's error body: its code, the message (naming each offending field) and the
    request id (also sent as `x-request-id`)."""
    return {"code": kling_code(info), "message": info.message, "request_id": request_id(request)}
