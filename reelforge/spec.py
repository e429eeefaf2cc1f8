"""The internal description of one generation, shared by every dialect, the queue and engines.

A dialect router parses its own wire format into a `GenerationSpec`; the job store keeps it as
JSON; a worker hands it to an engine. Nothing here knows about HTTP or any dialect's names
(aspect ratios, presets, model ids): those are each dialect's, e.g. `api/aimlapi/vocabulary`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["OUTPUT_FPS", "CameraMove", "GenerationSpec", "frames_for_seconds"]

OUTPUT_FPS = 24
"""Every output video plays at 24 frames per second, whatever the engine's native rate."""


def frames_for_seconds(seconds: int, fps: int = OUTPUT_FPS) -> int:
    """Return the output frame count for a clip: 5 s at 24 fps is exactly 120 frames."""
    return seconds * fps


class CameraMove(BaseModel):
    """A requested camera move, in words (e.g. "the camera slowly pans left").

    Each dialect phrases its own presets and axes (the AI/ML API's in
    `api/aimlapi/vocabulary.py`); an engine without camera conditioning appends the words to
    the prompt. A still camera is no move at all (`GenerationSpec.camera` None).
    """

    model_config = ConfigDict(frozen=True)

    description: str = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _from_first_release(cls, value: Any) -> Any:
        # Jobs stored by the first release carry Kling's own form, {"preset", "axes"}: read
        # them back in plain words, so that polling or running an old job still works.
        if isinstance(value, dict) and "description" not in value:
            preset, axes = value.get("preset"), value.get("axes") or {}
            moves = [f"{axis} {amount:+g}" for axis, amount in axes.items() if amount]
            words = str(preset).replace("_", " ") if preset else ", ".join(moves)
            return {"description": f"camera move: {words}"}
        return value


class GenerationSpec(BaseModel):
    """Everything an engine needs to render one clip, in the server's own units."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(description="Public model id, e.g. klingai/v2-master-text-to-video.")
    prompt: str = Field(default="", description="What to show.")
    negative_prompt: str = Field(default="", description="What to avoid.")
    width: int = Field(description="Exact output width in pixels.")
    height: int = Field(description="Exact output height in pixels.")
    num_frames: int = Field(description="Exact output frame count at `fps`.")
    fps: int = Field(default=OUTPUT_FPS, description="Output frames per second.")
    cfg_scale: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Prompt adherence 0..1; each engine maps 0.5 to its recommended guidance.",
    )
    camera: CameraMove | None = Field(default=None, description="Requested camera move.")

    @field_validator("camera", mode="before")
    @classmethod
    def _still_first_release_camera(cls, value: Any) -> Any:
        # The first release stored a still camera as {"preset": null, "axes": {...zeros}}.
        old_form = isinstance(value, dict) and "description" not in value
        if old_form and not value.get("preset") and not any((value.get("axes") or {}).values()):
            return None
        return value

    seed: int = Field(description="Random seed; always set (chosen at random when absent).")
    image_key: str | None = Field(
        default=None, description="Storage key of the input image, for image-to-video."
    )
    ignored: tuple[str, ...] = Field(
        default=(),
        description="Request fields parsed but not honoured by the served model, as the "
        "dialect names them: reported to the client (kept with the job), never read by engines.",
    )
    remixed_from: str | None = Field(
        default=None,
        description="The generation this one remixes (its inputs and seed, a new prompt); "
        "engines ignore it.",
    )

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps
