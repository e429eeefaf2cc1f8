"""Rendering a job as the AI/ML API's generation object.

The SDK keeps polling only while status is `queued` or `generating`, so no other status word
is ever emitted; everything reelforge adds (progress, queue position, preview, ...) goes in
extra fields that the hosted API's clients ignore.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reelforge.jobs import Job, JobStatus

__all__ = ["STATUS_WORDS", "render_generation"]

STATUS_WORDS: dict[JobStatus, str] = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "generating",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "error",
    JobStatus.CANCELED: "error",
}


def render_generation(
    job: Job, queue_position: int | None, link: Callable[[str], str]
) -> dict[str, Any]:
    """The generation object for `job`; `link(key)` makes a storage key downloadable."""
    result = job.result or {}
    spec = job.spec
    return {
        "id": job.id,
        "status": STATUS_WORDS[job.status],
        "model": job.model,
        "video": _media(job, result.get("video"), link, extra=("width", "height", "fps", "frames")),
        "preview": _media(job, result.get("preview"), link),
        "thumbnail": _media(job, result.get("thumbnail"), link),
        "error": _error(job),
        "progress": round(100 * job.progress),
        "queue_position": queue_position,
        "cancel_requested": job.cancel_requested,
        "seed": spec.seed,
        "engine": result.get("engine"),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.finished_at),
        "meta": {
            "usage": {"seconds": spec.seconds, "frames": spec.num_frames},
            "width": spec.width,
            "height": spec.height,
            "fps": spec.fps,
            "attempts": job.attempts,
            **result.get("meta", {}),
            # Last, so that no engine key can hide it; always a list (see
            # protocol.ignored_fields for the names).
            "ignored": list(spec.ignored),
        },
    }


def _media(
    job: Job, item: dict[str, Any] | None, link: Callable[[str], str], extra: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    if job.status is not JobStatus.SUCCEEDED or not item:
        return None
    key: str = item["key"]
    media = {
        "url": link(key),
        "content_type": item["content_type"],
        "file_name": f"{job.id}.{key.rsplit('.', 1)[-1]}",
        "file_size": item["size"],
    }
    media.update({name: item[name] for name in extra if name in item})
    return media


def _error(job: Job) -> dict[str, str] | None:
    if job.status is JobStatus.CANCELED:
        return {"name": "canceled", "message": "the generation was canceled"}
    if job.status is JobStatus.FAILED:
        return {
            "name": job.error_name or "generation_failed",
            "message": job.error_message or "the generation failed",
        }
    return None


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
