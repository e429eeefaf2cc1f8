"""The objects the reelforge API answers with, as read by the client.

Every model ignores fields it does not know, so a newer server (or the hosted AI/ML API, which
sends fewer fields) never breaks an older client. All are frozen: they are snapshots of what
the server said at one poll.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ACTIVE_STATUSES",
    "DeletedGeneration",
    "Generation",
    "GenerationPage",
    "JobError",
    "MediaFile",
    "ModelInfo",
    "VideoFile",
]

# The AI/ML API protocol: a client keeps polling only while the status is one of these, and
# treats any other word as final ("completed" is success, everything else a failure).
ACTIVE_STATUSES = frozenset({"queued", "generating"})


class _WireModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class MediaFile(_WireModel):
    """One downloadable artifact; `url` is absolute and signed, fetchable without a key."""

    url: str
    content_type: str | None = None
    file_name: str | None = None
    file_size: int | None = None


class VideoFile(MediaFile):
    """The generated mp4, with its exact output geometry when the server reports it."""

    width: int | None = None
    height: int | None = None
    fps: int | None = None
    frames: int | None = None


class JobError(_WireModel):
    """Why a generation ended in "error": a short machine `name` and a human `message`."""

    name: str = "error"
    message: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {self.message}" if self.message else self.name


class Generation(_WireModel):
    """One generation job as the server last reported it (one poll's snapshot)."""

    id: str
    status: str
    model: str | None = None
    progress: int = Field(default=0, description="Percent done, 0..100.")
    queue_position: int | None = Field(
        default=None, description="Jobs ahead of this one (0 = next); None when not queued."
    )
    eta_seconds: float | None = Field(
        default=None,
        description="Seconds until it should be done (reelforge's guess); None when unknown.",
    )
    cancel_requested: bool = Field(
        default=False, description="A cancel was asked for; the job stops at its next step."
    )
    seed: int | None = None
    engine: str | None = None
    video: VideoFile | None = None
    preview: MediaFile | None = Field(default=None, description="Small animated GIF.")
    thumbnail: MediaFile | None = Field(default=None, description="WebP still.")
    error: JobError | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        """Whether the job has finished, one way or the other; polling it again is pointless."""
        return self.status not in ACTIVE_STATUSES

    @property
    def succeeded(self) -> bool:
        """Whether the job finished with a video."""
        return self.status == "completed"

    @property
    def failed(self) -> bool:
        """Whether the job finished without a video (`error` says why)."""
        return self.is_terminal and not self.succeeded


class GenerationPage(_WireModel):
    """One page of `GET /v2/video/generations` (reelforge's addition): newest first.

    `last_id` is what `after` takes for the next page; `has_more` says whether there is one.
    """

    data: list[Generation] = Field(default_factory=list)
    has_more: bool = False
    last_id: str | None = None


class DeletedGeneration(_WireModel):
    """The answer of `DELETE /v2/video/generations/{id}`: the generation and its files are gone."""

    id: str
    deleted: bool = True


class ModelInfo(_WireModel):
    """One model a server offers, from `GET /v1/models`."""

    id: str
    object: str = "model"
    engine: str | None = None
    task: str | None = Field(default=None, description="text-to-video or image-to-video.")
    catalog: str | None = Field(
        default=None, description="The catalog model served, e.g. wan2.2-ti2v-5b."
    )
