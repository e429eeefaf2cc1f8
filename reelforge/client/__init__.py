"""The Python client for reelforge, or any server speaking the AI/ML API video protocol.

    from pathlib import Path
    from reelforge.client import ReelforgeClient, GenerationFailed

    with ReelforgeClient() as client:  # REELFORGE_BASE_URL / REELFORGE_API_KEY, or arguments
        try:
            generation = client.generate("a paper boat on a rainy street", duration=5)
        except GenerationFailed as failed:
            print("the job failed:", failed.generation.error)
        else:
            client.download(generation.video.url, Path("boat.mp4"))

`list_generations` reads one page of your generations (newest first), `iter_generations`
every one, page after page; `delete_generation` removes one and its files.
`AsyncReelforgeClient` has the same methods for asyncio. The errors are drawn as a tree in
`reelforge.client._errors`; "the call failed" (`APIError`, `ConnectionFailed`) is kept apart
from "the job failed" (`GenerationFailed`).
"""

from reelforge.client._async import AsyncReelforgeClient
from reelforge.client._common import (
    DEFAULT_BASE_URL,
    DEFAULT_IMAGE_MODEL,
    DEFAULT_TEXT_MODEL,
    default_model,
    image_to_data_uri,
)
from reelforge.client._errors import (
    APIError,
    AuthenticationError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    GenerationFailed,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ReelforgeClientError,
    ServerError,
    UnexpectedResponse,
    WaitTimeout,
)
from reelforge.client._models import (
    DeletedGeneration,
    Generation,
    GenerationPage,
    JobError,
    MediaFile,
    ModelInfo,
    VideoFile,
)
from reelforge.client._sync import ReelforgeClient

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_IMAGE_MODEL",
    "DEFAULT_TEXT_MODEL",
    "APIError",
    "AsyncReelforgeClient",
    "AuthenticationError",
    "BadRequest",
    "Conflict",
    "ConnectionFailed",
    "DeletedGeneration",
    "Generation",
    "GenerationFailed",
    "GenerationPage",
    "JobError",
    "MediaFile",
    "ModelInfo",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "ReelforgeClient",
    "ReelforgeClientError",
    "ServerError",
    "UnexpectedResponse",
    "VideoFile",
    "WaitTimeout",
    "default_model",
    "image_to_data_uri",
]
