"""Kling's vocabulary, as the AI/ML API speaks it: model ids, aspect ratios and their output
sizes, camera presets and the six camera axes, and how a move is put in words.

The rest of reelforge speaks in its own terms (`spec.GenerationSpec`: pixels, frames, a
camera move described in words); this module is where Kling's names become those terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from reelforge.spec import CameraMove

__all__ = [
    "CAMERA_AXES",
    "CAMERA_PRESETS",
    "IMAGE_TO_VIDEO_MODEL",
    "OUTPUT_SIZES",
    "TEXT_TO_VIDEO_MODEL",
    "AspectRatio",
    "KlingCameraConfig",
    "KlingCameraControl",
    "camera_move",
]

TEXT_TO_VIDEO_MODEL = "klingai/v2-master-text-to-video"
IMAGE_TO_VIDEO_MODEL = "klingai/v2-master-image-to-video"
"""The hosted API's model ids, which reelforge serves under the same names (their tasks are
declared in `engines/defaults.toml`)."""


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


def camera_move(
    preset: str | None = None, axes: Mapping[str, float] | None = None
) -> CameraMove | None:
    """A Kling camera move (one preset, or amounts -10..10 on the six axes) in words; None
    for a still camera."""
    if preset is not None:
        return CameraMove(description=CAMERA_PRESETS[preset])
    parts = []
    for axis, value in (axes or {}).items():
        if value:
            negative, positive = CAMERA_AXES[axis]
            strength = "slowly " if abs(value) <= 3 else ("" if abs(value) <= 7 else "quickly ")
            words = positive if value > 0 else negative
            parts.append(words.replace("the camera ", f"the camera {strength}", 1))
    return CameraMove(description=", ".join(parts)) if parts else None


# Strict numbers: in lax mode pydantic reads `true` as 1, which no client means.
_AXIS = Field(default=0.0, ge=-10, le=10, strict=True)


class KlingCameraConfig(BaseModel):
    """Amounts (-10..10) on Kling's six camera axes."""

    model_config = ConfigDict(extra="forbid")
    horizontal: float = _AXIS
    vertical: float = _AXIS
    pan: float = _AXIS
    tilt: float = _AXIS
    roll: float = _AXIS
    zoom: float = _AXIS


class KlingCameraControl(BaseModel):
    """Kling's camera object (the AI/ML API page's and Kling's own API's): a preset `type`,
    or `simple` with one axis in `config`."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward"]
    config: KlingCameraConfig | None = None
