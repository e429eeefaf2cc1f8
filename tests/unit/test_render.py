"""The AI/ML API generation object: status words, and the SDK's "first url wins" rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from reelforge.api.aimlapi.render import render_generation
from reelforge.jobs import Job, JobStatus
from reelforge.jobs.events import EventType, JobEvent
from reelforge.jobs.result import JobResult
from reelforge.service.streams import job_at
from reelforge.webhooks.dispatcher import job_at_event
from tests.conftest import make_spec

RESULT = JobResult.model_validate(
    {
        "video": {
            "key": "jobs/j/video.mp4",
            "size": 10,
            "content_type": "video/mp4",
            "width": 1280,
            "height": 720,
            "fps": 24,
            "frames": 120,
        },
        "preview": {"key": "jobs/j/preview.gif", "size": 5, "content_type": "image/gif"},
        "thumbnail": {"key": "jobs/j/thumbnail.webp", "size": 3, "content_type": "image/webp"},
        "engine": "testsrc",
        "meta": {"camera": "none"},
        "timings": {"engine_s": 1.0, "encode_s": 0.5, "store_s": 0.1},
    }
)


def make_job(status: JobStatus, **changes: Any) -> Job:
    job = Job(
        id="j",
        seq=1,
        model="m",
        status=status,
        spec=make_spec(),
        tenant="",
        priority=0,
        attempts=1,
        max_attempts=3,
        progress=0.5,
        cancel_requested=False,
        error_name=None,
        error_message=None,
        result=None,
        worker_id=None,
        created_at=1.7e9,
        started_at=None,
        finished_at=None,
        updated_at=1.7e9,
    )
    return replace(job, **changes)


def first_url(value: Any) -> str | None:
    """The SDK's `_find_video_url`: a top-level url first, then nested values in order."""
    if isinstance(value, dict):
        if isinstance(value.get("url"), str):
            return str(value["url"])
        for item in value.values():
            found = first_url(item)
            if found:
                return found
    if isinstance(value, list):
        for item in value:
            found = first_url(item)
            if found:
                return found
    return None


@pytest.mark.parametrize(
    ("status", "word"),
    [
        (JobStatus.QUEUED, "queued"),
        (JobStatus.RUNNING, "generating"),
        (JobStatus.SUCCEEDED, "completed"),
        (JobStatus.FAILED, "error"),
        (JobStatus.CANCELED, "error"),
    ],
)
def test_status_words_are_the_sdk_ones(status: JobStatus, word: str) -> None:
    assert render_generation(make_job(status), None, lambda k: k)["status"] == word


def test_completed_video_url_is_the_first_url() -> None:
    job = make_job(JobStatus.SUCCEEDED, result=RESULT, progress=1.0)
    body = render_generation(job, None, lambda key: f"http://h/files/{key}")
    assert first_url(body) == "http://h/files/jobs/j/video.mp4"
    assert body["preview"]["url"].endswith("preview.gif")
    assert body["video"]["file_name"] == "j.mp4"
    assert body["progress"] == 100


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        (JobStatus.RUNNING, (4, 20)),
        (JobStatus.QUEUED, (None, None)),
        (JobStatus.SUCCEEDED, (None, None)),
    ],
)
def test_engine_steps_show_while_generating(
    status: JobStatus, shown: tuple[object, object]
) -> None:
    body = render_generation(make_job(status, step=4, steps=20), None, lambda key: key)
    assert (body["step"], body["steps"]) == shown


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED])
def test_unfinished_or_failed_jobs_carry_no_url(status: JobStatus) -> None:
    body = render_generation(make_job(status, result=RESULT), 3, lambda key: key)
    assert first_url(body) is None


def test_failed_job_reports_name_and_message() -> None:
    job = make_job(JobStatus.FAILED, error_name="out_of_memory", error_message="too big")
    error = render_generation(job, None, lambda key: key)["error"]
    assert error == {"name": "out_of_memory", "message": "too big"}


def test_timestamps_are_iso_utc() -> None:
    body = render_generation(make_job(JobStatus.QUEUED), 0, lambda key: key)
    assert body["created_at"].endswith("Z") and body["created_at"].startswith("2023-11-14T")
    assert body["completed_at"] is None
    assert body["queue_position"] == 0


def test_meta_always_lists_the_ignored_fields() -> None:
    link = "https://cdn/{}".format
    queued = render_generation(make_job(JobStatus.QUEUED), 0, link)
    assert queued["meta"]["ignored"] == []
    spec = make_spec().model_copy(update={"ignored": ("enhance_prompt", "tail_image_url")})
    done = render_generation(
        make_job(
            JobStatus.SUCCEEDED,
            spec=spec,
            result=RESULT.model_copy(update={"meta": {"ignored": "x"}}),
        ),
        None,
        link,
    )
    # The engine's keys cannot replace it.
    assert done["meta"]["ignored"] == ["enhance_prompt", "tail_image_url"]


@pytest.mark.parametrize("at", [job_at, job_at_event])
def test_a_past_event_shows_no_step_of_a_later_moment(
    at: Callable[[Job, JobEvent], Job],
) -> None:
    now = make_job(JobStatus.RUNNING, progress=0.9, step=45, steps=50)
    started = JobEvent(1, "j", "", EventType.STARTED, JobStatus.RUNNING, 0.0, {}, 1.7e9)
    then = at(now, started)
    assert (then.progress, then.step, then.steps) == (0.0, None, None)
