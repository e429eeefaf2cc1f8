"""Rendering jobs as OpenAI's video object, its error body and its webhook events.

The SDK's `poll` keeps polling while `status` is `queued` or `in_progress` and returns on
`completed` or `failed`, so a canceled generation is `failed` (its error code `canceled`).
Timestamps are Unix seconds, as OpenAI sends them.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from reelforge.api.errors import ErrorInfo
from reelforge.jobs import Job, JobStatus
from reelforge.jobs.events import JobEvent
from reelforge.jobs.webhooks import Delivery

__all__ = [
    "EVENT_NAMES",
    "STATUS_WORDS",
    "openai_error_body",
    "render_deleted",
    "render_video",
    "render_webhook_event",
]

STATUS_WORDS: dict[JobStatus, str] = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "in_progress",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "failed",
}

EVENT_NAMES = {"completed": "video.completed", "failed": "video.failed", "canceled": "video.failed"}
"""reelforge's webhook event names (`jobs.events`) → OpenAI's."""


def render_video(job: Job) -> dict[str, Any]:
    """The video object for `job`."""
    spec = job.spec
    return {
        "id": job.id,
        "object": "video",
        "model": job.model,
        "status": STATUS_WORDS[job.status],
        "progress": round(100 * job.progress),
        "created_at": int(job.created_at),
        "completed_at": int(job.finished_at) if job.terminal and job.finished_at else None,
        "expires_at": int(job.expires_at) if job.expires_at is not None else None,
        "prompt": spec.prompt,
        "size": f"{spec.width}x{spec.height}",
        "seconds": f"{spec.seconds:g}",
        "remixed_from_video_id": spec.remixed_from,
        "error": _error(job),
    }


def render_deleted(job: Job) -> dict[str, Any]:
    return {"id": job.id, "object": "video.deleted", "deleted": True}


def _error(job: Job) -> dict[str, str] | None:
    if job.status is JobStatus.CANCELED:
        return {"code": "canceled", "message": "the generation was canceled"}
    if job.status is JobStatus.FAILED:
        return {
            "code": job.error_name or "generation_failed",
            "message": job.error_message or "the generation failed",
        }
    return None


def openai_error_body(_request: Request, info: ErrorInfo) -> dict[str, Any]:
    """OpenAI's error body; `param` names the (first) offending field."""
    return {
        "error": {
            "message": info.message,
            "type": _error_type(info),
            "param": info.errors[0].field if info.errors else None,
            "code": info.code,
        }
    }


def _error_type(info: ErrorInfo) -> str:
    if info.status >= 500:
        return "server_error"
    if info.status == 429:  # OpenAI's words for a rate limit and for a spent quota
        return "insufficient_quota" if info.code == "quota_exceeded" else "requests"
    return "invalid_request_error"


def render_webhook_event(
    delivery: Delivery, event: JobEvent, data: dict[str, Any]
) -> dict[str, Any]:
    """The body of a webhook in OpenAI's event shape: the video's id only, as OpenAI sends
    it (the receiver retrieves the video); the event id is the `webhook-id` header's."""
    return {
        "id": delivery.id,
        "object": "event",
        "type": EVENT_NAMES.get(delivery.event_type, f"video.{delivery.event_type}"),
        "created_at": int(event.created_at),
        "data": {"id": data["id"]},
    }
