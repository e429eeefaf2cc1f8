"""The internal description of one generation, shared by every dialect, the queue and engines.

A dialect router parses its own wire format into a `GenerationSpec`; the job store keeps it as
JSON; a worker hands it to an engine. Nothing here knows about HTTP.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CAMERA_AXES",
    "CAMERA_PRESETS",
    "OUTPUT_FPS",
    "OUTPUT_SIZES",
    "AspectRatio",
    "CameraMotion",
    "GenerationSpec",
    "camera_phrase",
    "frames_for_seconds",
]

OUTPUT_FPS = 24
"""Every output video plays at 24 frames per second, whatever the engine's native rate."""


class AspectRatio(StrEnum):
    """The aspect ratios the AI/ML API accepts; each maps to one exact output size."""

    LANDSCAPE = "16:9"
    PORTRAIT = "9:16"
    SQUARE = "1:1"


# The same pixel budget (about 0.9 MP) for each ratio, as the hosted service returns.
OUTPUT_SIZES: dict[AspectRatio, tuple[int, int]] = {
    AspectRatio.LANDSCAPE: (1280, 720),
    AspectRatio.PORTRAIT: (720, 1280),
    AspectRatio.SQUARE: (960, 960),
}

# Kling's named camera presets (string `camera_control`, or the object's `type`).
CAMERA_PRESETS: dict[str, str] = {
    "down_back": "the camera descends and pulls back",
    "forward_up": "the camera moves forward and tilts up",
    "right_turn_forward": "the camera turns right while moving forward",
    "left_turn_forward": "the camera turns left while moving forward",
}

# Kling's six camera axes, each -10..10; the phrase pair is (negative, positive) direction.
CAMERA_AXES: dict[str, tuple[str, str]] = {
    "horizontal": ("the camera trucks left", "the camera trucks right"),
    "vertical": ("the camera moves down", "the camera moves up"),
    "pan": ("the camera pans left", "the camera pans right"),
    "tilt": ("the camera tilts down", "the camera tilts up"),
    "roll": ("the camera rolls counter-clockwise", "the camera rolls clockwise"),
    "zoom": ("the camera zooms out", "the camera zooms in"),
}


def frames_for_seconds(seconds: int, fps: int = OUTPUT_FPS) -> int:
    """Return the output frame count for a clip: 5 s at 24 fps is exactly 120 frames."""
    return seconds * fps


class CameraMotion(BaseModel):
    """A camera move: either one named preset or amounts (-10..10) on Kling's six axes."""

    model_config = ConfigDict(frozen=True)

    preset: str | None = None
    axes: dict[str, float] = Field(default_factory=dict)

    @property
    def is_still(self) -> bool:
        return self.preset is None and not any(self.axes.values())


def camera_phrase(motion: CameraMotion | None) -> str:
    """Describe a camera move in words, for engines without camera conditioning."""
    if motion is None or motion.is_still:
        return ""
    if motion.preset is not None:
        return CAMERA_PRESETS[motion.preset]
    parts = []
    for axis, value in motion.axes.items():
        if value:
            negative, positive = CAMERA_AXES[axis]
            strength = "slowly " if abs(value) <= 3 else ("" if abs(value) <= 7 else "quickly ")
            words = positive if value > 0 else negative
            parts.append(words.replace("the camera ", f"the camera {strength}", 1))
    return ", ".join(parts)


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
    camera: CameraMotion | None = Field(default=None, description="Requested camera move.")
    seed: int = Field(description="Random seed; always set (chosen at random when absent).")
    image_key: str | None = Field(
        default=None, description="Storage key of the input image, for image-to-video."
    )
    remixed_from: str | None = Field(
        default=None,
        description="The generation this one remixes (its inputs and seed, a new prompt); "
        "engines ignore it.",
    )

    @property
    def seconds(self) -> float:
        return self.num_frames / self.fps
