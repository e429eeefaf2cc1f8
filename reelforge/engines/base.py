"""The one interface every engine implements: load once per worker process, then generate.

An engine renders frames at its native size and rate; the media layer resizes (cover,
centre-crop) and resamples them to the exact output the request asked for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from reelforge.spec import GenerationSpec

__all__ = ["Clip", "Engine", "OnStep"]

OnStep = Callable[[int, int], None]
"""Called as `on_step(done, total)` after each unit of work. It may raise to stop the engine
(the worker uses that for cancellation and lost leases), so engines must not swallow it."""


@dataclass
class Clip:
    """Frames an engine produced: uint8 array shaped (frames, height, width, 3) at `fps`."""

    frames: np.ndarray
    fps: float
    meta: dict[str, Any] = field(default_factory=dict)
    """What the engine did that a user may want to know, e.g. {"camera": "prompt"}."""

    def __post_init__(self) -> None:
        if self.frames.dtype != np.uint8 or self.frames.ndim != 4 or self.frames.shape[-1] != 3:
            raise ValueError(
                f"Clip frames must be uint8 (frames, height, width, 3), got "
                f"{self.frames.dtype} {self.frames.shape}"
            )


class Engine(ABC):
    """A video generator behind one interface; one instance per worker process, one job at a time.

    `checkpoint` is a local folder (or None for engines that need none); `options` are the
    per-model settings from the registry entry.
    """

    name: ClassVar[str]
    supports_text_to_video: ClassVar[bool] = True
    supports_image_to_video: ClassVar[bool] = True

    def __init__(
        self, checkpoint: str | None, device: str = "cpu", options: Mapping[str, Any] | None = None
    ) -> None:
        self.checkpoint = checkpoint
        self.device = device
        self.options = dict(options or {})

    def load(self) -> None:  # noqa: B027 - optional hook: engines without weights skip it
        """Load weights; called once when the worker starts, before the first job."""

    @abstractmethod
    def generate(self, spec: GenerationSpec, image: Image.Image | None, on_step: OnStep) -> Clip:
        """Render the clip for `spec` (conditioned on `image` when given)."""
