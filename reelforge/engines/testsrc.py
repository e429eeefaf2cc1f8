"""`testsrc`: a deterministic test-pattern renderer, not a model.

It draws the prompt, a frame counter and a bar sweeping across colour stripes, so integrators
and the test suite can drive the whole service (queue, progress, encoding, storage) without
model weights. Identical specs give identical frames.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from reelforge.engines.base import Clip, Engine, OnStep
from reelforge.spec import GenerationSpec

__all__ = ["TestSourceEngine"]

# Native render size per orientation: small, so the pattern is cheap; media scales it up.
_NATIVE_LONG_SIDE = 320
_STRIPES = np.array(
    [
        [192, 192, 192],
        [192, 192, 0],
        [0, 192, 192],
        [0, 192, 0],
        [192, 0, 192],
        [192, 0, 0],
        [0, 0, 192],
    ],
    dtype=np.uint8,
)


class TestSourceEngine(Engine):
    name = "testsrc"
    __test__ = False  # not a pytest class, despite the name

    def generate(self, spec: GenerationSpec, image: Image.Image | None, on_step: OnStep) -> Clip:
        scale = _NATIVE_LONG_SIDE / max(spec.width, spec.height)
        width = max(16, round(spec.width * scale / 2) * 2)
        height = max(16, round(spec.height * scale / 2) * 2)
        background = self._background(width, height, spec.seed, image)
        font = ImageFont.load_default()
        frames = np.empty((spec.num_frames, height, width, 3), dtype=np.uint8)
        bar_width = max(4, width // 20)
        for index in range(spec.num_frames):
            frame = background.copy()
            x = int((width - bar_width) * index / max(1, spec.num_frames - 1))
            frame[:, x : x + bar_width] = 255
            picture = Image.fromarray(frame)
            draw = ImageDraw.Draw(picture)
            draw.rectangle((0, 0, width, 14), fill=(0, 0, 0))
            draw.text((2, 1), f"{index + 1:04d}/{spec.num_frames} seed {spec.seed}", font=font)
            draw.rectangle((0, height - 14, width, height), fill=(0, 0, 0))
            draw.text((2, height - 13), (spec.prompt or "(image)")[:60], font=font)
            frames[index] = np.asarray(picture)
            on_step(index + 1, spec.num_frames)
        return Clip(frames=frames, fps=spec.fps, meta={"camera": "none"})

    @staticmethod
    def _background(width: int, height: int, seed: int, image: Image.Image | None) -> np.ndarray:
        if image is not None:
            return np.asarray(image.convert("RGB").resize((width, height)), dtype=np.uint8).copy()
        # Stripes rotated by the seed, so different seeds give visibly different clips.
        order = np.roll(np.arange(len(_STRIPES)), seed % len(_STRIPES))
        columns = (np.arange(width) * len(_STRIPES) // width)[None, :]
        return np.broadcast_to(_STRIPES[order][columns], (height, width, 3)).copy()
