"""Kling's official API wire format (`POST /v1/videos/text2video`, `/v1/videos/image2video`),
parsed into a `service.Submission`.

Field rules follow Kling's documentation: `model_name` (default `kling-v1`) one of the names
the endpoint lists (`KLING_MODELS`), each served by the registry id its
`[names."kling.<endpoint>"]` table names (`KlingModels`);
`prompt` required for text-to-video, at most 2500 characters, like `negative_prompt`;
`cfg_scale` a number in [0, 1]; `mode` std | pro; `aspect_ratio` 16:9 | 9:16 | 1:1;
`duration` the string "5" or "10" (as Kling documents it: not the number); `camera_control`
Kling's `{type, config}` object; `image` (image-to-video, required) a URL or base64;
`callback_url`; `external_task_id`, unique per tenant. Fields Kling has and reelforge does
not serve (`sound`, `watermark_info`, ...) are ignored, as unknown fields are; `image_tail`
(an end frame) is refused, since no engine here can hold one.

`mode` is accepted and recorded nowhere: reelforge renders both at the model's quality.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Kling's own names (ratios and sizes, camera axes) are the ones the AI/ML API page uses.
from reelforge.api.aimlapi.vocabulary import (
    CAMERA_AXES,
    OUTPUT_SIZES,
    AspectRatio,
    camera_move,
)
from reelforge.api.aimlapi.vocabulary import KlingCameraConfig as CameraConfig
from reelforge.api.aimlapi.vocabulary import KlingCameraControl as CameraControl
from reelforge.engines import Registry
from reelforge.errors import FieldError, InvalidRequest
from reelforge.jobs.schema import EXTERNAL_ID_MAX_CHARS
from reelforge.jobs.store import WebhookSubscription
from reelforge.service import Submission
from reelforge.service.generations import request_fingerprint
from reelforge.spec import CameraMove, GenerationSpec, frames_for_seconds

__all__ = [
    "CALLBACK_EVENTS",
    "DIALECT",
    "KLING_MODELS",
    "CreateImageToVideoRequest",
    "CreateTextToVideoRequest",
    "KlingModels",
    "TaskKind",
    "parse_create_request",
]

DIALECT = "kling"
TaskKind = Literal["text2video", "image2video"]

KLING_MODELS: dict[TaskKind, tuple[str, ...]] = {
    "text2video": (
        "kling-v1",
        "kling-v1-6",
        "kling-v2-master",
        "kling-v2-1-master",
        "kling-v2-5-turbo",
        "kling-v2-6",
    ),
    "image2video": (
        "kling-v1",
        "kling-v1-5",
        "kling-v1-6",
        "kling-v2-master",
        "kling-v2-1",
        "kling-v2-1-master",
        "kling-v2-5-turbo",
        "kling-v2-6",
    ),
}
"""The `model_name` values each endpoint accepts (Kling's documented lists)."""
DEFAULT_MODEL_NAME = "kling-v1"

CALLBACK_EVENTS = ("started", "completed", "failed", "canceled")
"""Kling calls `callback_url` at every status change: processing, then succeed or failed."""

MAX_PROMPT_CHARS = 2500
_MAX_URL_CHARS = 2048
_SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class KlingModels:
    """Which registry id serves each of Kling's model names, per endpoint: the registry's
    `[names."kling.text2video"]` and `[names."kling.image2video"]` tables (the embedded
    defaults map every name to the two Kling ids, which the micro model serves out of the
    box)."""

    @staticmethod
    def namespace(kind: TaskKind) -> str:
        return f"kling.{kind}"

    def served_id(self, registry: Registry, kind: TaskKind, name: str) -> str | None:
        return registry.alias(self.namespace(kind), name)

    def kind_of(self, model: str, image_models: Iterable[str]) -> TaskKind:
        """Which endpoint a job of registry id `model` belongs to."""
        return "image2video" if model in set(image_models) else "text2video"


class _CreateRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="A Kling model name.")
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    cfg_scale: float | None = Field(default=None, ge=0, le=1, strict=True)
    mode: Literal["std", "pro"] = "std"
    aspect_ratio: AspectRatio = AspectRatio.LANDSCAPE
    duration: Literal["5", "10"] = Field(default="5", description='"5" or "10": a string.')
    camera_control: CameraControl | None = None
    callback_url: str | None = Field(default=None, min_length=1, max_length=_MAX_URL_CHARS)
    external_task_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=EXTERNAL_ID_MAX_CHARS,
        description="Your own id for the task: unique among your tasks; the task can be "
        "queried by it.",
    )

    @field_validator("external_task_id")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("must be printable characters")
        return value


class CreateTextToVideoRequest(_CreateRequest):
    """The body of `POST /v1/videos/text2video`."""

    prompt: str = Field(max_length=MAX_PROMPT_CHARS)


class CreateImageToVideoRequest(_CreateRequest):
    """The body of `POST /v1/videos/image2video`."""

    image: str = Field(min_length=1, description="The first frame: an http(s) URL or base64.")
    image_tail: str | None = Field(
        default=None, description="An end frame: refused, no engine here can hold one."
    )
    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)


_REQUESTS: dict[TaskKind, type[_CreateRequest]] = {
    "text2video": CreateTextToVideoRequest,
    "image2video": CreateImageToVideoRequest,
}


def parse_create_request(
    body: Any, kind: TaskKind, registry: Registry, models: KlingModels
) -> Submission:
    """Validate a create body for endpoint `kind`; return its submission (image unstaged).

    Raises `InvalidRequest` naming every offending field.
    """
    if not isinstance(body, dict):
        raise InvalidRequest(FieldError("body", "must be a JSON object"))
    try:
        request = _REQUESTS[kind].model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest([_field_error(err) for err in exc.errors()]) from None

    errors: list[FieldError] = []
    served = models.served_id(registry, kind, request.model_name)
    if request.model_name not in KLING_MODELS[kind]:
        errors.append(
            FieldError("model_name", f"unknown model; one of {', '.join(KLING_MODELS[kind])}")
        )
    elif served is None or registry.get(served) is None:
        errors.append(
            FieldError(
                "model_name",
                f'is not served here: the registry maps it to no model ([names."kling.{kind}"])',
            )
        )
    prompt = getattr(request, "prompt", None) or ""
    image: str | None = None
    if isinstance(request, CreateImageToVideoRequest):
        image = request.image
        if request.image_tail:
            errors.append(
                FieldError("image_tail", "end frames are not supported by this server; omit it")
            )
    elif not prompt.strip():
        errors.append(FieldError("prompt", "is required"))
    if errors:
        raise InvalidRequest(errors)

    width, height = OUTPUT_SIZES[request.aspect_ratio]
    spec = GenerationSpec(
        model=served or "",
        prompt=prompt.strip(),
        negative_prompt=(request.negative_prompt or "").strip(),
        width=width,
        height=height,
        num_frames=frames_for_seconds(int(request.duration)),
        cfg_scale=0.5 if request.cfg_scale is None else request.cfg_scale,
        camera=_camera_motion(request.camera_control),
        seed=secrets.randbelow(_SEED_MAX + 1),
    )
    webhook = (
        WebhookSubscription(request.callback_url, CALLBACK_EVENTS) if request.callback_url else None
    )
    return Submission(
        spec=spec,
        fingerprint=request_fingerprint(DIALECT, body),
        image_url=image,
        image_field="image",
        webhook=webhook,
        webhook_field="callback_url",
        external_id=request.external_task_id,
        external_id_field="external_task_id",
    )


def _camera_motion(control: CameraControl | None) -> CameraMove | None:
    if control is None:
        return None
    if control.type != "simple":
        return camera_move(preset=control.type)
    config = control.config or CameraConfig()
    return camera_move(axes={axis: getattr(config, axis) for axis in CAMERA_AXES})


def _field_error(error: Any) -> FieldError:
    field = ".".join(str(part) for part in error["loc"]) or "body"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "is required"
    elif field == "duration":
        message = 'must be the string "5" or "10"'
    return FieldError(field, message)
