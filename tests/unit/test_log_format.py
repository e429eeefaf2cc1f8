"""The log formats: JSON lines that always parse (a traceback included), and the job and
request ids on every record logged inside a job or request."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from reelforge.logs import job_context, log_handler, request_context, reset_request_context

Logged = tuple[logging.Logger, io.StringIO, list[logging.Handler]]


@pytest.fixture
def logged() -> Iterator[Logged]:
    stream = io.StringIO()
    logger = logging.getLogger("reelforge.test_log_format")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handlers: list[logging.Handler] = []
    yield logger, stream, handlers
    for handler in handlers:
        logger.removeHandler(handler)


def use(logger: logging.Logger, handlers: list[logging.Handler], handler: logging.Handler) -> None:
    handlers.append(handler)
    logger.addHandler(handler)


def test_json_lines_carry_job_request_and_extra_fields(logged: Logged) -> None:
    logger, stream, handlers = logged
    use(logger, handlers, log_handler("json", stream))
    logger.info("outside")
    with job_context("job-1"):
        logger.warning("inside %s", "a job", extra={"event": "started"})
    token = request_context("req-9")
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logger.exception("failed")
    finally:
        reset_request_context(token)

    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # the traceback stays inside its record's line
    outside, inside, failed = (json.loads(line) for line in lines)
    assert "job_id" not in outside and "request_id" not in outside
    assert outside["level"] == "INFO" and outside["logger"] == "reelforge.test_log_format"
    assert inside["message"] == "inside a job" and inside["job_id"] == "job-1"
    assert inside["event"] == "started" and inside["level"] == "WARNING"
    assert failed["request_id"] == "req-9" and "job_id" not in failed
    assert "ValueError: boom" in failed["exc_info"]


def test_text_lines_name_the_job(logged: Logged) -> None:
    logger, stream, handlers = logged
    use(logger, handlers, log_handler("text", stream))
    with job_context("job-2"):
        logger.info("step")
        logger.info("job %s: done", "job-2")
    logger.info("idle")
    inside, named, outside = stream.getvalue().splitlines()
    assert inside.endswith("reelforge.test_log_format: job=job-2 step")
    assert named.endswith("reelforge.test_log_format: job job-2: done")  # not named twice
    assert outside.endswith("reelforge.test_log_format: idle")
