"""The OpenAPI document: what the routes answer, as models, and the few fixes FastAPI needs.

The models here only document; the routes build their answers elsewhere (aimlapi/render.py,
system.py, errors.py) and the fuzz test (tests/e2e/test_fuzz.py) checks every answer of a live
server against this document. A field added to an answer without a line here fails it:
the generation object and its parts forbid unknown fields (`meta` excepted, which carries each
engine's own keys).

FastAPI needs three fixes, made once in `install_openapi`: the create routes read their body by
hand (api/body.py, for strictness), so their body is declared with `json_request_body`, whose
sub-schemas are moved under `components`; the served model ids become the `model` field's enum;
and FastAPI's automatic 422 answers are removed, because the validation handler answers 400.
A keyless server (loopback clients only) documents the bearer as optional.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from reelforge.service.generations import IDEMPOTENCY_HEADER

__all__ = [
    "RETRY_AFTER_STATUSES",
    "ErrorBody",
    "Generation",
    "GenerationDeleted",
    "GenerationList",
    "Health",
    "HealthDatabaseDown",
    "ModelList",
    "WebhookDeliveryList",
    "answers",
    "error_responses",
    "event_stream_responses",
    "idempotency_key_parameter",
    "install_openapi",
    "json_request_body",
]

_STATUS_DESCRIPTIONS = {
    400: "The request is malformed or a field is invalid; `errors` names each field.",
    401: "No API key, or an unknown one.",
    403: "Refused: a keyless server serves loopback clients and same-origin pages only, or "
    "a file link's signature is wrong or expired.",
    404: "No such generation (or another tenant's), or no such file.",
    409: "The generation has already ended; there is nothing to cancel.",
    413: "The request body is larger than REELFORGE_MAX_BODY_BYTES.",
    415: "The request body is not declared as JSON.",
    429: "Over the API key's rate limit (`rate_per_minute`) or, for a create, one of its "
    "quotas (`max_concurrent`, `max_queued`, `daily_video_seconds`): the message names it; "
    "nothing was done. Retry after Retry-After.",
    503: "Try again later (see Retry-After): the job database is busy or away, no worker "
    "can serve the model (its reason in the message), or this server serves as many event "
    "streams as it may.",
    507: "The job database or the artifact store is full.",
}
RETRY_AFTER_STATUSES = frozenset({429, 503})
"""The error statuses answered with `Retry-After`."""
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer"},
    }
}


def _optional(**field: Any) -> Any:
    """A field that is sometimes absent but never null."""
    return Field(default=None, json_schema_extra=_drop_default, **field)


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# --- errors ----------------------------------------------------------------------------


class ErrorField(BaseModel):
    field: str = Field(description="The offending field, dotted (`camera_control.config.pan`).")
    message: str


class ErrorBody(BaseModel):
    """The AI/ML API error body, sent with every 4xx and 5xx answer."""

    message: str
    path: str
    requestId: str = Field(description="Also sent as `x-request-id`; quote it in reports.")
    statusCode: int = Field(ge=400, le=599)
    timestamp: datetime
    errors: list[ErrorField] | SkipJsonSchema[None] = _optional(
        description="Sent with a 400 for an invalid field: one entry per field."
    )


def answers(
    model: Any, description: str, *error_codes: int, error_model: type[BaseModel] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: its 200 body, a model (or a union of models), and the error
    statuses it can answer (in `error_model`, a dialect's error body; default `ErrorBody`)."""
    return {
        200: {"model": model, "description": description},
        **error_responses(*error_codes, model=error_model),
    }


_EVENT_STREAM_DESCRIPTION = """Server-Sent Events, one per change of the generation (status,
progress, queue position), ending after the last. Each event's `data` is the generation
object as a poll answers it (`Generation`), its `event` the status word (`queued`,
`generating`, `completed`, `error`), or `deleted` with `{"id", "deleted": true}`; its `id`
the transition it reflects: reconnect with `Last-Event-ID` to be sent everything after it.
Comment lines (`: ping`) keep a quiet stream open."""


_SERVER_SENT_EVENT = {
    "title": "GenerationEvent",
    "description": "One event of the stream, as an SSE parser reads it.",
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"enum": ["queued", "generating", "completed", "error", "deleted"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "The generation object (`Generation`), or `{id, deleted}`.",
        },
    },
    "required": ["id", "event", "data"],
}


def event_stream_responses(*error_codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for an event stream route (`text/event-stream`) and its error statuses."""
    stream = {
        "description": _EVENT_STREAM_DESCRIPTION,
        "content": {"text/event-stream": {"schema": _SERVER_SENT_EVENT}},
    }
    return {200: stream, **error_responses(*error_codes)}


def error_responses(
    *status_codes: int, model: type[BaseModel] | None = None
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can answer these error statuses (in `model`, a
    dialect's error body; default `ErrorBody`)."""
    return {
        code: {
            "model": model or ErrorBody,
            "description": _STATUS_DESCRIPTIONS[code],
            **({"headers": _RETRY_AFTER} if code in RETRY_AFTER_STATUSES else {}),
        }
        for code in status_codes
    }


# --- the generation object (aimlapi/render.py) ------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenerationFile(_Strict):
    url: str = Field(description="Signed download link; expires (REELFORGE_FILE_URL_TTL_S).")
    content_type: str
    file_name: str
    file_size: int = Field(ge=0, description="Bytes.")


class GenerationVideoFile(GenerationFile):
    width: int | SkipJsonSchema[None] = _optional()
    height: int | SkipJsonSchema[None] = _optional()
    fps: float | SkipJsonSchema[None] = _optional()
    frames: int | SkipJsonSchema[None] = _optional()


class GenerationFailure(_Strict):
    name: str = Field(description="`canceled`, or why the generation failed.")
    message: str


class GenerationUsage(_Strict):
    seconds: float
    frames: int


class GenerationMeta(BaseModel):
    """The clip's size and timing, the engine's own keys, then what was not honoured."""

    model_config = ConfigDict(extra="allow")
    usage: GenerationUsage
    width: int
    height: int
    fps: int
    attempts: int
    ignored: list[str] = Field(
        description="Request fields parsed but not honoured by this model, by name; empty "
        "when all were: `enhance_prompt` (when true: prompts are used as written), "
        "`tail_image_url` (no engine takes a last frame), `negative_prompt` (the model "
        "ignores negative prompts, e.g. a guidance-distilled one), `camera_control` or "
        "`advanced_camera_control` (the model cannot move the camera). `GET /v1/models` "
        "lists each model's capabilities."
    )


class GenerationParameters(_Strict):
    """What the generation was asked for, in the create body's terms where it has them."""

    prompt: str
    negative_prompt: str
    aspect_ratio: Literal["16:9", "9:16", "1:1"] | None = Field(
        description="null for an output size no AI/ML API ratio names (another dialect's)."
    )
    duration: float = Field(description="Seconds of video.")
    cfg_scale: float = Field(ge=0, le=1)
    camera: str | None = Field(description="The camera move, in words; null: still.")
    camera_control: str | None = Field(
        description="The camera preset asked for; null: none, or a move on the axes."
    )
    image_to_video: bool = Field(description="Whether it started from an input image.")


class GenerationTimings(_Strict):
    """Seconds per stage, each once known."""

    queued_s: float | SkipJsonSchema[None] = _optional(description="In the queue.")
    engine_s: float | SkipJsonSchema[None] = _optional(description="Rendering frames.")
    encode_s: float | SkipJsonSchema[None] = _optional(description="Encoding the files.")
    store_s: float | SkipJsonSchema[None] = _optional(description="Storing them.")


class Generation(_Strict):
    """The AI/ML API generation object, with reelforge's additions (the hosted API's clients
    ignore fields they do not know)."""

    id: str
    status: Literal["queued", "generating", "completed", "error"]
    model: str
    video: GenerationVideoFile | None = Field(description="Set once `completed`.")
    preview: GenerationFile | None = Field(description="Animated GIF, once `completed`.")
    thumbnail: GenerationFile | None = Field(description="WebP still, once `completed`.")
    error: GenerationFailure | None = Field(description="Set when `error`.")
    progress: int = Field(ge=0, le=100, description="Percent.")
    step: int | None = Field(
        ge=0, description="While generating: the engine's denoising steps done, of `steps`."
    )
    steps: int | None = Field(ge=1, description="While generating: the engine's steps in all.")
    queue_position: int | None = Field(ge=0, description="Jobs ahead of this one, if queued.")
    eta_seconds: float | None = Field(
        ge=0,
        description="Seconds until it should be done: while queued, from the jobs ahead and "
        "the model's recent run times; while generating, from its progress rate; 0 once "
        "finished; null when there is too little to go on.",
    )
    cancel_requested: bool
    seed: int
    parameters: GenerationParameters
    engine: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    meta: GenerationMeta
    timings: GenerationTimings


class GenerationList(_Strict):
    """A page of the caller's generations, newest first."""

    data: list[Generation]
    has_more: bool = Field(description="Whether another page follows (pass `after=last_id`).")
    last_id: str | None = Field(description="The last generation's id on this page.")


class GenerationDeleted(_Strict):
    id: str
    deleted: Literal[True]


class WebhookAttempt(_Strict):
    attempt: int = Field(ge=1, description="1 for the first try.")
    status_code: int | None = Field(description="The receiver's answer, if it answered.")
    error: str | None = Field(description="Why the attempt failed (timeout, refused, ...).")
    duration_s: float = Field(ge=0)
    at: datetime


class WebhookDelivery(_Strict):
    """One webhook message: one event of the generation, retried until delivered."""

    id: str = Field(description="The `webhook-id` header, the same on every attempt.")
    event: Literal["started", "progress", "completed", "failed", "canceled"]
    status: Literal["pending", "delivered", "failed"]
    url: str
    attempts: list[WebhookAttempt]
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When `pending`: the next try.")
    delivered_at: datetime | None


class WebhookDeliveryList(_Strict):
    """The generation's webhook deliveries, in event order."""

    data: list[WebhookDelivery]


# --- service routes (system.py) ---------------------------------------------------------


class ModelCapabilities(_Strict):
    """What the model does with a request, from its registry entry."""

    tasks: list[Literal["t2v", "i2v"]] = Field(
        description="t2v: from a prompt alone; i2v: from an input image (`image_url`)."
    )
    max_seconds: float | None = Field(description="The longest `duration`; null: no limit.")
    camera_moves: bool = Field(description="Whether camera moves are honoured.")
    negative_prompt: bool = Field(description="Whether a negative prompt is honoured.")


class Choices(_Strict):
    choices: list[Any]
    default: Any = _optional()


class TextLimit(_Strict):
    max_length: int
    required: bool | SkipJsonSchema[None] = _optional()


class NumberRange(_Strict):
    minimum: float
    maximum: float
    default: float | SkipJsonSchema[None] = _optional()


class ImageInput(_Strict):
    required: bool = Field(description="Whether `image_url` must be sent.")
    accepted: bool = Field(description="Whether `image_url` may be sent.")


class CreateLimits(_Strict):
    """What `POST /v2/video/generations` accepts for this model, and its defaults: for
    clients that build a form (the studio at `/`)."""

    prompt: TextLimit
    negative_prompt: TextLimit
    aspect_ratio: Choices
    duration: Choices = Field(description="Seconds; only those the model can make.")
    cfg_scale: NumberRange
    camera_control: Choices = Field(description="Camera presets.")
    seed: NumberRange
    image_url: ImageInput


class ModelCard(_Strict):
    id: str
    object: Literal["model"]
    owned_by: str
    engine: str
    checkpoint: str | None
    catalog: str | None
    task: Literal["text-to-video", "image-to-video"] = Field(
        description="`image-to-video` for a model that needs an input image, else "
        "`text-to-video` (see `capabilities.tasks`: it may take one as well)."
    )
    capabilities: ModelCapabilities
    workers: int = Field(ge=0, description="Live workers serving this model.")
    dialects: dict[str, list[str]] = Field(
        description="The model names each dialect accepts for this model: `aimlapi`, "
        "`openai` (the id, and `sora-2` aliases of the default), `kling` (Kling's own names)."
    )
    parameters: CreateLimits


class ModelList(_Strict):
    object: Literal["list"]
    data: list[ModelCard]


class HealthWorker(_Strict):
    id: str
    host: str
    pid: int
    models: list[str] = Field(description="The model ids it loaded and serves.")
    device: str = Field(description="What it runs on: `cpu`, `cuda:0` (the machine's GPU 0).")
    state: Literal["idle", "running", "draining"] = Field(
        description="`draining`: told to stop; it claims nothing more and finishes (or hands "
        "back) its current job."
    )
    current_job: str | None = Field(description="The generation it is running.")
    gpu_memory_bytes: int | None = Field(
        default=None, description="GPU memory its process holds (None on a CPU)."
    )


class Health(_Strict):
    status: Literal["ok", "starting", "failed"] = Field(
        description="`starting` until a worker is live; `failed` when none is and this "
        "server's workers gave up (see `problems`)."
    )
    workers: int = Field(ge=0, description="How many workers are live.")
    live_workers: list[HealthWorker] = Field(description="Each live worker.")
    jobs: dict[str, int] = Field(description="Jobs per state.")
    problems: list[str] = Field(
        description="Why this server's worker processes gave up (a model that cannot load)."
    )


class HealthDatabaseDown(_Strict):
    status: Literal["database_unavailable"]
    message: str


# --- the document -----------------------------------------------------------------------


def idempotency_key_parameter(noun: str) -> dict[str, Any]:
    """The optional `Idempotency-Key` header of a create route that makes `noun`s."""
    return {
        "name": IDEMPOTENCY_HEADER,
        "in": "header",
        "required": False,
        "description": f"Makes retries safe: the same key and body within 24 h return the same "
        f"{noun}; the same key with another body answers 409.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    }


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra=` for a route that reads a JSON body of `model` by hand."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def install_openapi(
    app: FastAPI, model_ids: Iterable[str], *, key_required: Callable[[], bool]
) -> None:
    """Serve the document with the fixes of the module docstring; `model_ids` are the models
    this server serves; while `key_required()` is false (a keyless server) the bearer is
    optional. Asked at each request: a keyless server's first managed key makes it keyed."""
    served = list(model_ids)
    documents: dict[bool, dict[str, Any]] = {}  # built once for each answer of key_required

    def openapi() -> dict[str, Any]:
        required = key_required()
        if required not in documents:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _fix(document, served, required)
            documents[required] = document
        app.openapi_schema = documents[required]
        return app.openapi_schema

    setattr(app, "openapi", openapi)  # noqa: B010 (mypy refuses assigning to a method)


def _fix(document: dict[str, Any], served: list[str], key_required: bool) -> None:
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for operation in _operations(document):
        operation.get("responses", {}).pop("422", None)
        if not key_required and operation.get("security"):
            operation["security"] = [*operation["security"], {}]  # {}: no credentials
        for media in operation.get("requestBody", {}).get("content", {}).values():
            media["schema"] = _hoist(media["schema"], components)
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    if served and "model" in components.get("CreateVideoRequest", {}).get("properties", {}):
        components["CreateVideoRequest"]["properties"]["model"]["enum"] = served


def _hoist(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """Put a model's schema and its `$defs` under `components`; return a reference to it.
    Copies: FastAPI puts the route's own `openapi_extra` into the document."""
    if "$ref" in schema:  # a body FastAPI declared itself is already a reference
        return schema
    schema = dict(schema)
    components.update(schema.pop("$defs", {}))
    components[schema["title"]] = schema
    return {"$ref": f"#/components/schemas/{schema['title']}"}


def _operations(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in document.get("paths", {}).values():
        yield from (op for method, op in item.items() if method in _METHODS)


_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
