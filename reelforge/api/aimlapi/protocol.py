"""The AI/ML API video wire format (Kling v2 master), parsed into a `GenerationSpec`.

Field rules follow the hosted API: `model` and `prompt` required (`prompt` optional for
image-to-video), `aspect_ratio` (alias `ratio`) 16:9 | 9:16 | 1:1, `duration` 5 | 10 as an
integer or a string, `cfg_scale` 0..1, `camera_control` a preset name (or Kling's object for
image-to-video), `advanced_camera_control`, `image_url`, `seed`. Unknown fields are ignored,
as the hosted API does, so newer SDKs keep working.

What the served model can do comes from its registry entry (`ModelEntry.capabilities`): an
image-to-video-only model needs `image_url`, a text-to-video-only one refuses it, a longer
`duration` than its `max_seconds` is refused. Fields parsed but not honoured are named in the
spec's `ignored`, which the generation object reports as `meta.ignored` (see `ignored_fields`).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from reelforge.api.aimlapi.vocabulary import (
    CAMERA_AXES,
    CAMERA_PRESETS,
    OUTPUT_SIZES,
    AspectRatio,
    KlingCameraConfig,
    KlingCameraControl,
    camera_move,
)
from reelforge.engines import Registry
from reelforge.engines.capabilities import Capabilities
from reelforge.errors import FieldError, InvalidRequest
from reelforge.jobs.events import DEFAULT_WEBHOOK_EVENTS
from reelforge.jobs.store import WebhookSubscription
from reelforge.spec import CameraMove, GenerationSpec, frames_for_seconds

__all__ = [
    "CreateVideoRequest",
    "create_limits",
    "ignored_fields",
    "parse_create_request",
    "webhook_subscription",
]

MAX_PROMPT_CHARS = 2500
_SEED_MAX = 2**32 - 1
DURATIONS_S = (5, 10)
DEFAULT_CFG_SCALE = 0.5
# What the validators below accept, for the OpenAPI document (the types alone say less).
_DURATION_SCHEMA = WithJsonSchema(
    {"anyOf": [{"type": "integer", "enum": [5, 10]}, {"type": "string", "enum": ["5", "10"]}]}
)
_PRESET_SCHEMA = WithJsonSchema({"type": "string", "enum": list(CAMERA_PRESETS)})


_MAX_URL_CHARS = 2048
WebhookEventName = Literal["started", "progress", "completed", "failed", "canceled"]


class AdvancedCameraControl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    movement_type: Literal["horizontal", "vertical", "pan", "tilt", "roll", "zoom"]
    movement_value: float = Field(ge=-10, le=10, strict=True)


class CreateVideoRequest(BaseModel):
    """The body of `POST /v2/video/generations`."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    aspect_ratio: AspectRatio | None = None
    ratio: AspectRatio | None = None  # deprecated alias of aspect_ratio
    duration: Annotated[Literal[5, 10], _DURATION_SCHEMA] = 5
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    cfg_scale: float | None = Field(default=None, ge=0, le=1)
    camera_control: Annotated[str, _PRESET_SCHEMA] | KlingCameraControl | None = None
    advanced_camera_control: AdvancedCameraControl | None = None
    image_url: str | None = Field(default=None, min_length=1)
    seed: int | None = Field(default=None, ge=0, le=_SEED_MAX, strict=True)
    enhance_prompt: bool | None = Field(default=None, strict=True)
    # reelforge's additions: where to send the generation's events, and which of them.
    webhook_url: str | None = Field(default=None, min_length=1, max_length=_MAX_URL_CHARS)
    callback_url: str | None = Field(
        default=None, min_length=1, max_length=_MAX_URL_CHARS, description="Alias of webhook_url."
    )
    webhook_events: list[WebhookEventName] | None = Field(
        default=None,
        min_length=1,
        description="Events to send; default: the terminal ones (completed, failed, canceled).",
    )

    @field_validator("duration", mode="before")
    @classmethod
    def _duration_from_string(cls, value: Any) -> Any:
        # The SDK and the docs send "5" as often as 5.
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("must be 5 or 10")
        return value

    @field_validator("cfg_scale", mode="before")
    @classmethod
    def _cfg_scale_is_a_number(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number between 0 and 1")
        return value

    @field_validator("camera_control", mode="before")
    @classmethod
    def _preset_or_camera_object(cls, value: Any) -> Any:
        # Validated here rather than by the union, so errors name the field, not a branch.
        if value is None or isinstance(value, KlingCameraControl):
            return value
        if isinstance(value, str):
            if value not in CAMERA_PRESETS:
                raise ValueError(f"must be one of {', '.join(CAMERA_PRESETS)}")
            return value
        if isinstance(value, dict):
            try:
                return KlingCameraControl.model_validate(value)
            except ValidationError as exc:
                raise ValueError(
                    "; ".join(str(e) for e in map(_field_error, exc.errors()))
                ) from None
        raise ValueError("must be a preset name or a {type, config} object")


# What an unknown model is checked against, so its request's other errors read as before
# the registry declared capabilities: text to video.
_UNKNOWN_MODEL = Capabilities(tasks=frozenset({"t2v"}))


def parse_create_request(
    body: Any, registry: Registry
) -> tuple[CreateVideoRequest, GenerationSpec]:
    """Validate a request body against the model's registry entry; return it and its spec
    (image_key still unset; `ignored` set, see `ignored_fields`).

    Raises `InvalidRequest` naming every offending field.
    """
    if not isinstance(body, dict):
        raise InvalidRequest(FieldError("body", "must be a JSON object"))
    try:
        request = CreateVideoRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest([_field_error(err) for err in exc.errors()]) from None

    errors: list[FieldError] = []
    entry = registry.get(request.model)
    if entry is None:
        errors.append(FieldError("model", f"unknown model; served: {', '.join(registry.ids)}"))
    capabilities = _UNKNOWN_MODEL if entry is None else entry.capabilities
    if capabilities.needs_image and not request.image_url:
        errors.append(FieldError("image_url", "is required for image-to-video models"))
    if not capabilities.takes_image and request.image_url:
        errors.append(
            FieldError(
                "image_url", f"is not accepted by {request.model}; use an image-to-video model"
            )
        )
    image_to_video = capabilities.takes_image and bool(request.image_url)
    if not capabilities.needs_image and not image_to_video and not (request.prompt or "").strip():
        errors.append(FieldError("prompt", "is required"))
    if request.webhook_url and request.callback_url and request.webhook_url != request.callback_url:
        errors.append(FieldError("callback_url", "differs from webhook_url; send one of them"))
    if request.webhook_events is not None and not (request.webhook_url or request.callback_url):
        errors.append(FieldError("webhook_events", "needs webhook_url"))
    if capabilities.max_seconds is not None and request.duration > capabilities.max_seconds:
        errors.append(
            FieldError(
                "duration",
                f"must be at most {capabilities.max_seconds:g} seconds for {request.model}",
            )
        )
    if request.camera_control is not None and request.advanced_camera_control is not None:
        errors.append(
            FieldError("advanced_camera_control", "cannot be combined with camera_control")
        )
    if errors:
        raise InvalidRequest(errors)

    ratio = request.aspect_ratio or request.ratio or AspectRatio.LANDSCAPE
    width, height = OUTPUT_SIZES[ratio]
    spec = GenerationSpec(
        model=request.model,
        prompt=(request.prompt or "").strip(),
        negative_prompt=(request.negative_prompt or "").strip(),
        width=width,
        height=height,
        num_frames=frames_for_seconds(request.duration),
        cfg_scale=DEFAULT_CFG_SCALE if request.cfg_scale is None else request.cfg_scale,
        camera=_camera_motion(request),
        seed=secrets.randbelow(_SEED_MAX + 1) if request.seed is None else request.seed,
        ignored=ignored_fields(body, request, capabilities),
    )
    return request, spec


def create_limits(capabilities: Capabilities) -> dict[str, Any]:
    """What a create body may say for a model of `capabilities`, with the defaults, for
    clients that build a form (`GET /v1/models`, the studio): the rules above, as data."""
    durations = [
        d for d in DURATIONS_S if capabilities.max_seconds is None or d <= capabilities.max_seconds
    ]
    return {
        "prompt": {
            "max_length": MAX_PROMPT_CHARS,
            # An image-to-video request may leave the prompt out.
            "required": not capabilities.takes_image,
        },
        "negative_prompt": {"max_length": MAX_PROMPT_CHARS},
        "aspect_ratio": {"choices": [r.value for r in AspectRatio], "default": "16:9"},
        "duration": {"choices": durations, "default": durations[0] if durations else None},
        "cfg_scale": {"minimum": 0, "maximum": 1, "default": DEFAULT_CFG_SCALE},
        "camera_control": {"choices": list(CAMERA_PRESETS)},
        "seed": {"minimum": 0, "maximum": _SEED_MAX},
        "image_url": {"required": capabilities.needs_image, "accepted": capabilities.takes_image},
    }


def webhook_subscription(request: CreateVideoRequest) -> tuple[WebhookSubscription | None, str]:
    """The request's webhook subscription (None without one) and the field its URL came in."""
    url, field = (
        (request.webhook_url, "webhook_url")
        if request.webhook_url
        else (request.callback_url, "callback_url")
    )
    if not url:
        return None, field
    events = tuple(dict.fromkeys(request.webhook_events or DEFAULT_WEBHOOK_EVENTS))
    return WebhookSubscription(url, events), field


def ignored_fields(
    body: dict[str, Any], request: CreateVideoRequest, capabilities: Capabilities
) -> tuple[str, ...]:
    """The request's fields that reelforge parses but the served model does not honour, as
    bare field names (no reasons: what each means is documented here and in the OpenAPI
    document), in this order:

    - `enhance_prompt`, when true: prompts are used as written;
    - `tail_image_url`, when sent (Kling's last-frame image): no engine takes one;
    - `negative_prompt`, when not blank and the model ignores negative prompts (its entry's
      `negative_prompt = false`, e.g. a guidance-distilled model);
    - `camera_control` or `advanced_camera_control`, whichever asks for a move, when the
      entry's `camera_moves = false`.
    """
    ignored = []
    if request.enhance_prompt:
        ignored.append("enhance_prompt")
    if body.get("tail_image_url") not in (None, ""):
        ignored.append("tail_image_url")
    if (request.negative_prompt or "").strip() and not capabilities.negative_prompt:
        ignored.append("negative_prompt")
    camera = _camera_motion(request)
    if camera is not None and not capabilities.camera_moves:
        sent = "camera_control" if request.camera_control is not None else "advanced_camera_control"
        ignored.append(sent)
    return tuple(ignored)


def _camera_motion(request: CreateVideoRequest) -> CameraMove | None:
    control, advanced = request.camera_control, request.advanced_camera_control
    if isinstance(control, str):
        return camera_move(preset=control)
    if isinstance(control, KlingCameraControl):
        if control.type != "simple":
            return camera_move(preset=control.type)
        config = control.config or KlingCameraConfig()
        return camera_move(axes={axis: getattr(config, axis) for axis in CAMERA_AXES})
    if advanced is not None:
        return camera_move(axes={advanced.movement_type: advanced.movement_value})
    return None


def _field_error(error: Any) -> FieldError:
    field = ".".join(str(part) for part in error["loc"]) or "body"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "literal_error" and field == "duration":
        message = "must be 5 or 10"
    return FieldError(field, message)
