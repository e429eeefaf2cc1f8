"""What a succeeded job produced: written by the worker, read by every renderer.

Stored as JSON in `jobs.result`; the two processes share this one type instead of a dict.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Artifact", "JobResult", "StageTimings", "VideoArtifact"]


class Artifact(BaseModel):
    """One stored file."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(description="Storage key (see `storage.keys`).")
    size: int = Field(description="Bytes.")
    content_type: str


class VideoArtifact(Artifact):
    width: int
    height: int
    fps: float
    frames: int


class StageTimings(BaseModel):
    """Seconds each stage of the run took in the worker."""

    model_config = ConfigDict(frozen=True)

    engine_s: float = Field(description="The engine rendering frames (prompt to decoded frames).")
    encode_s: float = Field(description="Encoding the mp4, GIF and WebP.")
    store_s: float = Field(description="Writing them to the artifact store.")


class JobResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    video: VideoArtifact
    preview: Artifact
    thumbnail: Artifact
    engine: str = Field(description="The engine that rendered it, e.g. `wan`.")
    meta: dict[str, Any] = Field(
        default_factory=dict, description="The engine's own notes (steps, warnings, ...)."
    )
    timings: StageTimings

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        return (self.video, self.preview, self.thumbnail)
