"""The OpenAI Videos API wire format (`/v1/videos`), parsed into a `GenerationSpec`.

As the `openai` package (3.x, `client.videos`) sends it: `POST /v1/videos` is always
multipart/form-data from the SDK (every field a string, `input_reference` a file part, or
the reference object as `input_reference[image_url]`), and JSON from other clients. Fields:
`prompt` (required), `model` (a served id, or `sora-2` / `sora-2-pro`, aliases of the
default text-to-video id), `seconds` ("4", "8", "12", and reelforge's "5", "10"), `size`
(OpenAI's four and reelforge's `960x960`, rendered at exactly that size), `input_reference`.
reelforge's extensions: `seed`, and `webhook_url` (OpenAI has no per-request webhook field;
its events are sent as `video.completed` / `video.failed`). Unknown fields are ignored.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reelforge.engines import Registry
from reelforge.engines.registry import ModelEntry
from reelforge.errors import FieldError, InvalidRequest
from reelforge.jobs.events import DEFAULT_WEBHOOK_EVENTS
from reelforge.jobs.store import WebhookSubscription
from reelforge.spec import GenerationSpec, frames_for_seconds

__all__ = [
    "DEFAULT_SECONDS",
    "DEFAULT_SIZE",
    "NAMES",
    "SECONDS",
    "SIZES",
    "CreateVideoBody",
    "ParsedCreate",
    "RemixBody",
    "parse_create",
    "parse_remix",
    "resolve_model",
]

MAX_PROMPT_CHARS = 2500
_MAX_URL_CHARS = 2048
_SEED_MAX = 2**32 - 1

DEFAULT_TEXT_TO_VIDEO = "klingai/v2-master-text-to-video"
NAMES = "openai"
"""The registry's names namespace of this dialect (`[names.openai]`): OpenAI's model names
(`sora-2`, ...), so that unmodified OpenAI examples run against reelforge."""

SIZES: dict[str, tuple[int, int]] = {
    "720x1280": (720, 1280),
    "1280x720": (1280, 720),
    "1024x1792": (1024, 1792),
    "1792x1024": (1792, 1024),
    "960x960": (960, 960),
}
DEFAULT_SIZE = "720x1280"  # OpenAI's default
SECONDS = ("4", "8", "12", "5", "10")
DEFAULT_SECONDS = "4"  # OpenAI's default


class InputReferenceObject(BaseModel):
    """The reference object form of `input_reference`."""

    model_config = ConfigDict(extra="forbid")
    image_url: str | None = Field(
        default=None,
        min_length=1,
        description="An http(s) URL or a base64 data URL of the first frame.",
    )
    file_id: str | None = Field(
        default=None, description="Not supported: reelforge has no Files API."
    )


class CreateVideoBody(BaseModel):
    """The body of `POST /v1/videos` (JSON form; the multipart form has the same fields)."""

    model_config = ConfigDict(extra="ignore", title="VideoCreateRequest")

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str = Field(default="sora-2", min_length=1)
    seconds: str = Field(default=DEFAULT_SECONDS, json_schema_extra={"enum": list(SECONDS)})
    size: str = Field(default=DEFAULT_SIZE, json_schema_extra={"enum": list(SIZES)})
    input_reference: InputReferenceObject | None = None
    seed: int | None = Field(
        default=None, ge=0, le=_SEED_MAX, strict=True, description="reelforge: the seed."
    )
    webhook_url: str | None = Field(
        default=None,
        min_length=1,
        max_length=_MAX_URL_CHARS,
        description="reelforge: where to send `video.completed` / `video.failed`.",
    )

    @field_validator("seconds", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        # Integers from JSON clients are what the SDK sends as strings.
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or value.strip() not in SECONDS:
            raise ValueError(f"must be one of {', '.join(SECONDS)}")
        return value.strip()

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if not isinstance(value, str) or value.strip() not in SIZES:
            raise ValueError(f"must be one of {', '.join(SIZES)}")
        return value.strip()

    @field_validator("seed", mode="before")
    @classmethod
    def _seed_from_form(cls, value: Any) -> Any:
        # A multipart form carries every value as a string.
        if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 10:
            return int(value.strip())
        return value


class RemixBody(BaseModel):
    """The body of `POST /v1/videos/{video_id}/remix`."""

    model_config = ConfigDict(extra="ignore", title="VideoRemixRequest")
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)


@dataclass(frozen=True)
class ParsedCreate:
    spec: GenerationSpec
    image: str | None
    """What `ImageLoader.load_png` reads: a URL, a data URI or bare base64 (an upload)."""
    webhook: WebhookSubscription | None


def parse_create(body: Any, registry: Registry, upload_base64: str | None) -> ParsedCreate:
    """Validate a create body (`upload_base64`: an uploaded `input_reference` file, base64);
    raise `InvalidRequest` naming every offending field."""
    if not isinstance(body, dict):
        raise InvalidRequest(FieldError("body", "must be a JSON object"))
    try:
        request = CreateVideoBody.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest([_field_error(err) for err in exc.errors()]) from None
    if not request.prompt.strip():
        raise InvalidRequest(FieldError("prompt", "must not be blank"))
    image = upload_base64
    reference = request.input_reference
    if reference is not None and image is None:
        if reference.file_id is not None:
            raise InvalidRequest(
                FieldError(
                    "input_reference",
                    "file_id is not supported (no Files API); upload the image or give image_url",
                )
            )
        if reference.image_url is None:
            raise InvalidRequest(FieldError("input_reference", "needs image_url"))
        image = reference.image_url
    entry = resolve_model(request.model, registry, with_image=image is not None)
    width, height = SIZES[request.size]
    spec = GenerationSpec(
        model=entry.id,
        prompt=request.prompt.strip(),
        width=width,
        height=height,
        num_frames=frames_for_seconds(int(request.seconds)),
        seed=secrets.randbelow(_SEED_MAX + 1) if request.seed is None else request.seed,
    )
    webhook = (
        WebhookSubscription(request.webhook_url, DEFAULT_WEBHOOK_EVENTS)
        if request.webhook_url
        else None
    )
    return ParsedCreate(spec, image, webhook)


def parse_remix(body: Any) -> str:
    """The new prompt of a remix body."""
    if not isinstance(body, dict):
        raise InvalidRequest(FieldError("body", "must be a JSON object"))
    try:
        request = RemixBody.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest([_field_error(err) for err in exc.errors()]) from None
    if not request.prompt.strip():
        raise InvalidRequest(FieldError("prompt", "must not be blank"))
    return request.prompt.strip()


def resolve_model(name: str, registry: Registry, *, with_image: bool) -> ModelEntry:
    """The registry entry that serves `name`: an alias or a served id; with an input image,
    the image-to-video entry beside it.

    Kept in this one function while the registry learns each entry's tasks: until then an
    image-to-video entry is one whose `needs_image` is true."""
    entry = registry.get(registry.alias(NAMES, name) or name)
    if entry is None:
        served = ", ".join([*registry.ids, *registry.names(NAMES)])
        raise InvalidRequest(FieldError("model", f"unknown model {name[:100]!r}; served: {served}"))
    if with_image == entry.needs_image:
        return entry
    if not with_image:
        raise InvalidRequest(
            FieldError("input_reference", f"is required by the image-to-video model {entry.id}")
        )
    for candidate in registry:
        if candidate.needs_image:
            return candidate
    raise InvalidRequest(
        FieldError(
            "input_reference", "is not supported: this server serves no image-to-video model"
        )
    )


def _field_error(error: Any) -> FieldError:
    field = ".".join(str(part) for part in error["loc"]) or "body"
    message = str(error["msg"]).removeprefix("Value error, ")
    return FieldError(field, message)
