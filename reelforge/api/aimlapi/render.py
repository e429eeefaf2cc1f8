"""Rendering a job as the AI/ML API's generation object.

The SDK keeps polling only while status is `queued` or `generating`, so no other status word
is ever emitted; everything reelforge adds (progress, queue position, preview, ...) goes in
extra fields that the hosted API's clients ignore.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reelforge.api.aimlapi.vocabulary import CAMERA_PRESETS, OUTPUT_SIZES
from reelforge.jobs import Job, JobStatus
from reelforge.jobs.result import Artifact
from reelforge.jobs.webhooks import Delivery, DeliveryAttempt, DeliveryStatus

__all__ = ["STATUS_WORDS", "render_generation", "render_webhook_deliveries", "stage_timings"]

STATUS_WORDS: dict[JobStatus, str] = {
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "generating",
    JobStatus.SUCCEEDED: "completed",
    JobStatus.FAILED: "error",
    JobStatus.CANCELED: "error",
}


def render_generation(
    job: Job,
    queue_position: int | None,
    link: Callable[[str], str],
    eta_seconds: float | None = None,
) -> dict[str, Any]:
    """The generation object for `job`; `link(key)` makes a storage key downloadable;
    `eta_seconds`: how long it should take still (`service.eta`), None when unknown."""
    result = job.result
    spec = job.spec
    return {
        "id": job.id,
        "status": STATUS_WORDS[job.status],
        "model": job.model,
        "video": _media(job, result.video if result else None, link, _VIDEO_FIELDS),
        "preview": _media(job, result.preview if result else None, link),
        "thumbnail": _media(job, result.thumbnail if result else None, link),
        "error": _error(job),
        "progress": round(100 * job.progress),
        # The engine's step of the running job, of `steps` (None before its first step).
        "step": job.step if job.status is JobStatus.RUNNING else None,
        "steps": job.steps if job.status is JobStatus.RUNNING else None,
        "queue_position": queue_position,
        "eta_seconds": eta_seconds,
        "cancel_requested": job.cancel_requested,
        "seed": spec.seed,
        "parameters": {
            "prompt": spec.prompt,
            "negative_prompt": spec.negative_prompt,
            "aspect_ratio": _RATIOS.get((spec.width, spec.height)),
            "duration": spec.seconds,
            "cfg_scale": spec.cfg_scale,
            "camera": spec.camera.description if spec.camera is not None else None,
            "camera_control": _PRESETS_BY_WORDS.get(spec.camera.description)
            if spec.camera is not None
            else None,
            "image_to_video": spec.image_key is not None,
        },
        "engine": result.engine if result else None,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.finished_at),
        "meta": {
            "usage": {"seconds": spec.seconds, "frames": spec.num_frames},
            "width": spec.width,
            "height": spec.height,
            "fps": spec.fps,
            "attempts": job.attempts,
            **(result.meta if result else {}),
            # Last, so that no engine key can hide it; always a list (see
            # protocol.ignored_fields for the names).
            "ignored": list(spec.ignored),
        },
        "timings": stage_timings(job),
    }


def stage_timings(job: Job) -> dict[str, float]:
    """Seconds per stage, as far as they are known: waiting in the queue (until the first
    claim), then the worker's engine, encode and store stages once it succeeded."""
    timings: dict[str, float] = {}
    if job.started_at is not None:
        timings["queued_s"] = round(max(0.0, job.started_at - job.created_at), 3)
    if job.result is not None:
        timings.update(job.result.timings.model_dump())
    return timings


_VIDEO_FIELDS = ("width", "height", "fps", "frames")
_RATIOS = {size: ratio.value for ratio, size in OUTPUT_SIZES.items()}
_PRESETS_BY_WORDS = {words: preset for preset, words in CAMERA_PRESETS.items()}


def _media(
    job: Job, item: Artifact | None, link: Callable[[str], str], extra: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    if job.status is not JobStatus.SUCCEEDED or item is None:
        return None
    media: dict[str, Any] = {
        "url": link(item.key),
        "content_type": item.content_type,
        "file_name": f"{job.id}.{item.key.rsplit('.', 1)[-1]}",
        "file_size": item.size,
    }
    media.update({name: getattr(item, name) for name in extra})
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


def render_webhook_deliveries(
    deliveries: list[tuple[Delivery, list[DeliveryAttempt]]],
) -> dict[str, Any]:
    """The answer of `GET …/{generation_id}/webhooks`: each delivery with its attempts."""
    return {
        "data": [
            {
                "id": delivery.id,
                "event": delivery.event_type,
                # A claimed delivery is still on its way: `sending` is an internal word.
                "status": _DELIVERY_WORDS[delivery.status],
                "url": delivery.url,
                "attempts": [
                    {
                        "attempt": attempt.attempt,
                        "status_code": attempt.status_code,
                        "error": attempt.error,
                        "duration_s": attempt.duration_s,
                        "at": _iso(attempt.created_at),
                    }
                    for attempt in attempts
                ],
                "created_at": _iso(delivery.created_at),
                "next_attempt_at": (
                    _iso(delivery.next_attempt_at)
                    if delivery.status is DeliveryStatus.PENDING
                    else None
                ),
                "delivered_at": _iso(delivery.delivered_at),
            }
            for delivery, attempts in deliveries
        ]
    }


_DELIVERY_WORDS = {
    DeliveryStatus.PENDING: "pending",
    DeliveryStatus.SENDING: "pending",
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.FAILED: "failed",
}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
