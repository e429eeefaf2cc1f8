"""What the sync and async clients share: defaults, request bodies and reading answers.

Everything here is free of I/O on the network, so both clients stay thin loops around it and
behave identically.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from reelforge import __version__
from reelforge.client._errors import (
    ConnectionFailed,
    NotFound,
    UnexpectedResponse,
    error_from_response,
)
from reelforge.client._models import DeletedGeneration, Generation, GenerationPage, ModelInfo
from reelforge.client._sse import SSEvent
from reelforge.fileperm import as_if_opened

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_IMAGE_MODEL",
    "DEFAULT_TEXT_MODEL",
    "GENERATIONS_PATH",
    "RECONNECT_ATTEMPTS",
    "USER_AGENT",
    "Deadline",
    "api_headers",
    "connection_failed",
    "default_model",
    "events_path",
    "generation_body",
    "generation_from_event",
    "generation_path",
    "image_to_data_uri",
    "list_params",
    "partial_file",
    "read_deleted",
    "read_generation",
    "read_models",
    "read_page",
    "reconnect_delay_s",
    "resolve_api_key",
    "resolve_base_url",
    "stream_headers",
    "stream_timeout",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TEXT_MODEL = "klingai/v2-master-text-to-video"
DEFAULT_IMAGE_MODEL = "klingai/v2-master-image-to-video"
GENERATIONS_PATH = "/v2/video/generations"
USER_AGENT = f"reelforge-python/{__version__}"

_M = TypeVar("_M", bound=BaseModel)

RECONNECT_ATTEMPTS = 5
"""Reconnects of an event stream in a row that may fail before the error is raised."""
_STREAM_IDLE_S = 40.0
"""A stream silent this long is dead: reelforge sends a keep-alive every 15 s."""


def resolve_base_url(base_url: str | None) -> str:
    """The explicit URL, else `REELFORGE_BASE_URL`, else a server on this machine."""
    url = base_url or os.environ.get("REELFORGE_BASE_URL") or DEFAULT_BASE_URL
    return url.rstrip("/")


def resolve_api_key(api_key: str | None) -> str | None:
    """The explicit key, else `REELFORGE_API_KEY`; None (no header) when neither is set."""
    return api_key or os.environ.get("REELFORGE_API_KEY") or None


def api_headers(api_key: str | None) -> dict[str, str]:
    """Headers for calls to the API itself (never for artifact downloads)."""
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def default_model(image_url: str | None) -> str:
    """The model a request gets when the caller names none: image-to-video iff an image is given."""
    return DEFAULT_IMAGE_MODEL if image_url else DEFAULT_TEXT_MODEL


def generation_body(
    prompt: str | None,
    *,
    model: str,
    image_url: str | None,
    duration: int | None,
    aspect_ratio: str | None,
    negative_prompt: str | None,
    cfg_scale: float | None,
    camera_control: str | None,
    seed: int | None,
) -> dict[str, Any]:
    """The JSON body of `POST /v2/video/generations`, with only the fields the caller set.

    Unset fields are left out rather than sent as null, so the server's defaults apply and
    servers that reject unknown nulls (the hosted API) accept the same body.
    """
    fields: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "image_url": image_url,
        "duration": duration,
        "aspect_ratio": aspect_ratio,
        "negative_prompt": negative_prompt,
        "cfg_scale": cfg_scale,
        "camera_control": camera_control,
        "seed": seed,
    }
    return {name: value for name, value in fields.items() if value is not None}


def read_generation(response: httpx.Response) -> Generation:
    """The generation object of a read response; raises the matching `APIError` if non-2xx."""
    return _read_model(response, Generation)


def read_page(response: httpx.Response) -> GenerationPage:
    """One page of the generation list; raises the matching `APIError` if non-2xx."""
    return _read_model(response, GenerationPage)


def read_deleted(response: httpx.Response) -> DeletedGeneration:
    """The answer of a delete; raises the matching `APIError` (`NotFound`, ...) if non-2xx."""
    return _read_model(response, DeletedGeneration)


def list_params(
    *,
    limit: int | None,
    after: str | None,
    status: str | Sequence[str] | None,
    model: str | None,
) -> dict[str, str]:
    """The query of `GET /v2/video/generations` (a list), with only the filters given;
    several statuses are sent comma-separated, as the server reads them."""
    params: dict[str, str] = {}
    if limit is not None:
        params["limit"] = str(limit)
    if after:
        params["after"] = after
    if status:
        params["status"] = status if isinstance(status, str) else ",".join(status)
    if model:
        params["model"] = model
    return params


def generation_path(generation_id: str) -> str:
    return f"{GENERATIONS_PATH}/{quote(generation_id, safe='')}"


def read_models(response: httpx.Response) -> list[ModelInfo]:
    """The model list of `GET /v1/models`."""
    body = _read_json(response)
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise UnexpectedResponse(f"{response.request.url}: expected a 'data' list of models")
    return [_validate(ModelInfo, item, response) for item in data]


def usage_params(days: int, tenant: str | None) -> dict[str, str]:
    params = {"days": str(days)}
    if tenant is not None:
        params["tenant"] = tenant
    return params


def read_usage(response: httpx.Response) -> dict[str, Any]:
    """The answer of `GET /v1/usage`: `tenant`, `days`, `totals` and the `data` rows."""
    body = _read_json(response)
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise UnexpectedResponse(f"{response.request.url}: expected a usage object")
    return body


def events_path(generation_id: str) -> str:
    return f"{generation_path(generation_id)}/events"


def stream_headers(headers: dict[str, str], last_event_id: str | None) -> dict[str, str]:
    """The API headers for opening an event stream, resuming after `last_event_id`."""
    opened = {**headers, "Accept": "text/event-stream"}
    if last_event_id is not None:
        opened["Last-Event-ID"] = last_event_id
    return opened


def stream_timeout(timeout_s: float, deadline: Deadline) -> httpx.Timeout:
    """Per-read timeout of a stream: long enough for the keep-alives, never past `deadline`."""
    remaining = deadline.remaining_s()
    read_s = _STREAM_IDLE_S if remaining is None else max(0.01, min(remaining, _STREAM_IDLE_S))
    return httpx.Timeout(timeout_s, read=read_s)


def reconnect_delay_s(failures: int, retry_ms: int | None) -> float:
    """How long to wait before reconnecting a stream: the server's `retry:` the first time,
    else half a second, doubling per failure in a row up to 8 s."""
    if failures <= 1 and retry_ms is not None:
        return retry_ms / 1000
    return float(min(8.0, 0.5 * 2 ** max(0, failures - 1)))


def generation_from_event(event: SSEvent, generation_id: str) -> Generation | None:
    """The generation an event of its stream carries; None for an event of another kind.
    Raises `NotFound` for the `deleted` event: the generation is gone, as a poll would say."""
    if event.event == "deleted":
        raise NotFound(f"generation {generation_id} was deleted", status_code=404)
    if event.event not in ("queued", "generating", "completed", "error"):
        return None
    try:
        return Generation.model_validate(json.loads(event.data))
    except (ValueError, ValidationError):
        raise UnexpectedResponse(
            f"event stream of {generation_id}: a {event.event!r} event without a generation"
        ) from None


def connection_failed(exc: httpx.TransportError) -> ConnectionFailed:
    """The client's error for a transport failure, naming where it was going."""
    try:
        where = f" {exc.request.method} {exc.request.url}"
    except RuntimeError:  # httpx raises when the error carries no request
        where = ""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "failed"
    return ConnectionFailed(f"request{where} {kind}: {exc or type(exc).__name__}")


def image_to_data_uri(path: str | os.PathLike[str]) -> str:
    """A local image file as a `data:` URI, the form `image_url` accepts for uploads."""
    file = Path(path)
    content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    encoded = base64.b64encode(file.read_bytes()).decode("ascii")
    return f"data:{content_type};base64,{encoded}"


@contextmanager
def partial_file(target: Path) -> Iterator[IO[bytes]]:
    """A temporary file beside `target` that becomes `target` only if the block succeeds.

    A download cut off half way must never leave a truncated video under the final name.
    """
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, then renamed
        dir=target.parent, prefix=f".{target.name}.", suffix=".part", delete=False
    )
    try:
        with handle:
            yield handle
        as_if_opened(handle.name)  # NamedTemporaryFile makes 0600
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


class Deadline:
    """When `wait` must give up; `None` means never. Uses the monotonic clock."""

    def __init__(self, timeout_s: float | None) -> None:
        self.timeout_s = timeout_s
        self._end = None if timeout_s is None else time.monotonic() + timeout_s

    def remaining_s(self) -> float | None:
        return None if self._end is None else max(0.0, self._end - time.monotonic())

    def expired(self) -> bool:
        remaining = self.remaining_s()
        return remaining is not None and remaining <= 0

    def next_sleep_s(self, poll_interval_s: float) -> float:
        """How long to sleep before the next poll: the interval, cut short by the deadline."""
        remaining = self.remaining_s()
        return poll_interval_s if remaining is None else min(poll_interval_s, remaining)


def _read_json(response: httpx.Response) -> Any:
    if not response.is_success:
        raise error_from_response(response)
    try:
        return response.json()
    except ValueError:
        raise UnexpectedResponse(f"{response.request.url}: answer is not JSON") from None


def _read_model(response: httpx.Response, model: type[_M]) -> _M:
    return _validate(model, _read_json(response), response)


def _validate(model: type[_M], data: Any, response: httpx.Response) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise UnexpectedResponse(
            f"{response.request.url}: not a valid {model.__name__}: {exc.errors()[0]['msg']}"
        ) from None
