"""The OpenAPI description of the OpenAI routes: their bodies, answers and error body.

Documentation only (render.py builds the answers); the fuzz test (tests/e2e/test_fuzz.py)
checks every answer of a live server against it, so the models forbid unknown fields.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reelforge.api.openai.protocol import SECONDS, SIZES, CreateVideoBody, RemixBody
from reelforge.api.openapi import answers, error_responses, json_request_body

__all__ = [
    "REMIX_REQUEST_BODY",
    "VIDEO_CREATE_REQUEST_BODY",
    "OpenAIErrorBody",
    "Video",
    "VideoDeleted",
    "VideoList",
    "openai_answers",
    "openai_content_answers",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenAIError(_Strict):
    message: str
    type: Literal["invalid_request_error", "requests", "insufficient_quota", "server_error"] = (
        Field(description="`requests`: over the rate limit; `insufficient_quota`: a quota.")
    )
    param: str | None = Field(description="The offending field, if one is.")
    code: str


class OpenAIErrorBody(_Strict):
    """OpenAI's error body, sent with every 4xx and 5xx answer under `/v1/videos`."""

    error: OpenAIError


class VideoError(_Strict):
    code: str = Field(description="`canceled`, or why the generation failed.")
    message: str


class Video(_Strict):
    """OpenAI's video object."""

    id: str
    object: Literal["video"]
    model: str
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int = Field(ge=0, le=100, description="Percent.")
    created_at: int = Field(description="Unix seconds.")
    completed_at: int | None = Field(description="Unix seconds, once finished.")
    expires_at: int | None = Field(
        description="Unix seconds when the video and its files are removed (null: kept)."
    )
    prompt: str
    size: str = Field(examples=list(SIZES))
    seconds: str = Field(examples=list(SECONDS))
    remixed_from_video_id: str | None
    error: VideoError | None = Field(description="Set when `failed`.")


class VideoList(_Strict):
    object: Literal["list"]
    data: list[Video]
    first_id: str | None
    last_id: str | None = Field(description="Pass as `after` for the next page.")
    has_more: bool


class VideoDeleted(_Strict):
    id: str
    object: Literal["video.deleted"]
    deleted: Literal[True]


def openai_answers(model: Any, description: str, *error_codes: int) -> dict[int | str, Any]:
    return answers(model, description, *error_codes, error_model=OpenAIErrorBody)


def openai_content_answers(*error_codes: int) -> dict[int | str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        200: {
            "description": "The file: the mp4, the WebP thumbnail or the JPEG spritesheet.",
            "content": {"video/mp4": binary, "image/webp": binary, "image/jpeg": binary},
        },
        **error_responses(*error_codes, model=OpenAIErrorBody),
    }


_JSON_CREATE = json_request_body(CreateVideoBody)["requestBody"]["content"]["application/json"]
_FORM_CREATE = {
    "schema": {
        "title": "VideoCreateForm",
        "type": "object",
        "required": ["prompt"],
        "properties": {
            "prompt": {"type": "string", "minLength": 1},
            "model": {"type": "string"},
            "seconds": {"type": "string", "enum": list(SECONDS)},
            "size": {"type": "string", "enum": list(SIZES)},
            "input_reference": {
                "type": "string",
                "format": "binary",
                "description": "The first frame, as an image file (PNG, JPEG, WebP).",
            },
            "seed": {"type": "string", "pattern": "^[0-9]{1,10}$"},
            "webhook_url": {"type": "string"},
        },
    }
}
VIDEO_CREATE_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": _JSON_CREATE, "multipart/form-data": _FORM_CREATE},
    }
}
REMIX_REQUEST_BODY = json_request_body(RemixBody)
