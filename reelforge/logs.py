"""Logging for reelforge processes: one format for reelforge, uvicorn and libraries alike.

`configure_logging(settings)` installs one stderr handler on the root logger, as text or as
JSON (`REELFORGE_LOG_FORMAT`); uvicorn is run with `log_config=None`, so its loggers
propagate to it instead of printing in their own format. Each record carries the id of the
job the process is running (`job_context`, set by the worker's runner) and, in the API,
the request's id (`request_context`, set by the access middleware), so every line of a job
can be found by its id.

JSON goes through python-json-logger (maintained, stdlib `logging` only): it turns a record's
`extra` fields into keys and an exception into one string field, so a traceback never
breaks a line.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, TextIO

from pythonjsonlogger.json import JsonFormatter

if TYPE_CHECKING:
    from reelforge.settings import Settings

__all__ = [
    "configure_logging",
    "job_context",
    "log_handler",
    "quiet_libraries",
    "request_context",
    "reset_request_context",
]

_job_id: ContextVar[str | None] = ContextVar("reelforge_job_id", default=None)
_request_id: ContextVar[str | None] = ContextVar("reelforge_request_id", default=None)

_TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s:%(context)s %(message)s"

# Libraries whose INFO lines are noise in a server log (per-request chatter, weight
# loading); their warnings and errors still come through.
_CHATTY = ("alembic", "httpx", "httpcore", "urllib3", "PIL", "asyncio", "multipart", "filelock")


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Tag every record logged in this context (this thread) with `job_id`."""
    token = _job_id.set(job_id)
    try:
        yield
    finally:
        _job_id.reset(token)


def request_context(request_id: str) -> object:
    """Tag the records of the current task with `request_id`; returns the token to reset."""
    return _request_id.set(request_id)


def reset_request_context(token: object) -> None:
    _request_id.reset(token)  # type: ignore[arg-type]


class _ContextFilter(logging.Filter):
    """Adds `job_id` and `request_id` (None outside a job or request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        job_id = record.__dict__.setdefault("job_id", _job_id.get())
        request_id = record.__dict__.setdefault("request_id", _request_id.get())
        parts = []
        # Most job lines already begin "job <id>:"; the text format need not say it twice.
        if job_id and not (isinstance(record.msg, str) and record.msg.startswith("job %s")):
            parts.append(f" job={job_id}")
        if request_id:
            parts.append(f" request={request_id}")
        record.context = "".join(parts)
        return True


class _JsonLines(JsonFormatter):
    """JSON, without the empty context keys and the text format's helper field."""

    def process_log_record(self, log_data: dict[str, object]) -> dict[str, object]:
        log_data.pop("context", None)
        log_data.pop("color_message", None)  # uvicorn's message again, with terminal colours
        for key in ("job_id", "request_id"):
            if log_data.get(key) is None:
                log_data.pop(key, None)
        return log_data


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return _JsonLines(
            "{asctime}{levelname}{name}{process}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    return logging.Formatter(_TEXT_FORMAT)


def log_handler(fmt: str, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing records to `stream` (stderr) as `fmt` (`text` or `json`), each
    tagged with its job and request ids."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_formatter(fmt))
    handler.addFilter(_ContextFilter())
    return handler


def configure_logging(settings: Settings | None = None) -> None:
    """Send every log record of this process to stderr in the configured format, once per
    process (idempotent); without settings, INFO as text."""
    root = logging.getLogger()
    if getattr(root, "_reelforge_configured", False):
        return
    handler = log_handler(settings.log_format if settings else "text")
    root.addHandler(handler)
    root.setLevel(settings.log_level if settings else "INFO")
    # Library warnings (`warnings.warn`: deprecations, "this option is ignored") are for
    # developers, not for a server's operator: logged under py.warnings, shown at DEBUG.
    logging.captureWarnings(True)
    if root.level > logging.DEBUG:
        logging.getLogger("py.warnings").setLevel(logging.ERROR)
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)
    root._reelforge_configured = True  # type: ignore[attr-defined]


def quiet_libraries() -> None:
    """Route the model libraries' own logging through ours, and turn off their progress bars
    ("Loading weights: 100%|████| 103/103"), which would otherwise go to stderr (the server
    log) in their own format.

    huggingface_hub's switch costs nothing to import, and transformers reads it when it is
    first imported (in an engine's `load`); a library already imported is told directly.
    Importing transformers or diffusers here just to tell them would cost seconds in every
    worker, including those that serve neither, so call this again after engines load.
    """
    try:
        from huggingface_hub.utils import disable_progress_bars
    except ImportError:
        pass
    else:
        disable_progress_bars()
    for name in ("transformers.utils.logging", "diffusers.utils.logging"):
        module = sys.modules.get(name)
        if module is not None:
            module.disable_progress_bar()
            # Their own stderr handler prints plain text; ours prints the chosen format.
            module.disable_default_handler()
            module.enable_propagation()
