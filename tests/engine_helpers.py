"""Helpers shared by the engine tests: a step callback that ignores progress, the exception a
worker's callback raises to cancel, and a test picture."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image


class Cancelled(Exception):
    """What a worker's step callback raises to stop a job."""


def ignore_steps(done: int, total: int) -> None:
    pass


def picture(colour: tuple[int, int, int], size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A horizontal ramp tinted `colour`; 4:3 by default, so an engine has to cover-crop it."""
    width, height = size
    ramp = np.linspace(0, 255, width, dtype=np.uint8)[None, :, None]
    pixels = np.broadcast_to(ramp, (height, width, 3)) // 2 + np.array(colour) // 2
    return Image.fromarray(pixels.astype(np.uint8))


def plain_diffusers_frames(pipeline: Any, seed: int, **call: Any) -> np.ndarray:
    """What plain diffusers renders: `pipeline(**call)` with the usual prompt, negative prompt
    and a CPU generator seeded `seed`, as uint8 frames the way engines round them."""
    import torch

    pipeline.set_progress_bar_config(disable=True)
    video = pipeline(
        prompt="a red kite",
        negative_prompt="",
        generator=torch.Generator().manual_seed(seed),
        output_type="np",
        **call,
    ).frames[0]
    return (np.clip(video, 0.0, 1.0) * 255.0).round().astype(np.uint8)
