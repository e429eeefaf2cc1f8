"""`micro`: the built-in micro model, a small text-to-video diffusion model that runs on a CPU.

It was trained (`reelforge micro train`) on a synthetic world of one shape moving across a
plain background: six colours, three shapes, four directions, black or gray backgrounds (see
`reelforge.micro.world`). Within that world it follows the prompt; outside it, it still renders
a moving shape. Clips are frames of 32x32: 16 for 5 s (or less), 32 for 10 s (the shape
moves at one speed, half the frame per 5 s, so a 10 s clip shows twice the motion), played
over the requested duration; the media layer scales them to the exact output size. An input
image is fitted to 32x32 as the first frame, so detail finer than that is lost.

A prompt far from that world (by the model's own text encoder: see
`reelforge.micro.familiarity`) still renders, with a warning in the clip's meta (`warnings`),
which the worker logs and `reelforge generate` prints. The model is conditioned on the
prompt's canonical form where its words can be read (`reelforge.micro.canonical`; the clip's
meta says so in `conditioned_prompt`).

Options (registry `options`): `steps` (denoising steps, default 20), `guidance_min` /
`guidance_max` (what cfg_scale 0 and 1 map to, default 1..3, so 0.5 gives 2.0), `threads`
(torch CPU threads of the worker process, set at load, default 1: the model is small enough
that one thread loses little on an idle machine, while two collapse under contention, 0.5 to
1.2 s a clip against 2.3 to 16.5 s measured on a busy one; it is the process's setting, so
it applies to any other engine the same worker serves).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from reelforge.engines.base import Clip, Engine, OnStep
from reelforge.micro.familiarity import far_from_world_warning
from reelforge.spec import GenerationSpec

__all__ = ["MicroEngine"]

_KNOWN_OPTIONS = {"steps", "guidance_min", "guidance_max", "threads"}


class MicroEngine(Engine):
    name = "micro"

    def load(self) -> None:
        import torch

        from reelforge.micro.checkpoint import SHIPPED_CHECKPOINT
        from reelforge.micro.familiarity import WorldReference
        from reelforge.micro.generator import MicroGenerator

        unknown = sorted(set(self.options) - _KNOWN_OPTIONS)
        if unknown:
            raise ValueError(
                f"unknown option(s) for the micro engine: {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_KNOWN_OPTIONS))}"
            )
        threads = int(self.options.get("threads", 1))
        if threads < 1:
            raise ValueError(f"option threads of the micro engine must be 1 or more, not {threads}")
        torch.set_num_threads(threads)
        path = Path(self.checkpoint) if self.checkpoint else SHIPPED_CHECKPOINT
        self._generator = MicroGenerator.from_checkpoint(path)
        self._steps = int(self.options.get("steps", self._generator.default_steps))
        self._guidance = (
            float(self.options.get("guidance_min", 1.0)),
            float(self.options.get("guidance_max", 3.0)),
        )
        # Loads the text encoder now, not on the first job.
        self._world = WorldReference.build(self._generator.text_encoder)

    def generate(self, spec: GenerationSpec, image: Image.Image | None, on_step: OnStep) -> Clip:
        size = self._generator.clip_size
        frames_per_clip = self._generator.frames_for(spec.seconds)
        low, high = self._guidance
        guidance = low + spec.cfg_scale * (high - low)
        first_frame = None
        if image is not None:
            fitted = ImageOps.fit(image.convert("RGB"), (size, size), Image.Resampling.LANCZOS)
            first_frame = np.asarray(fitted, dtype=np.uint8)
        encoder = self._generator.text_encoder
        reading = self._generator.canonicaliser.read(spec.prompt)
        conditioned = self._generator.canonicaliser.canonicalise(spec.prompt, reading)
        text = encoder.encode([conditioned])
        # Familiarity is the user's wording's, unless every attribute was read from the
        # vocabulary: then the model is given the canonical prompt of that scene and follows
        # it. A guess from word embeddings does not count ("a red car driving to the left on
        # a black road" may guess the car a square, and is still far from the world).
        read_exactly = reading.scene is not None and set(reading.sources.values()) <= {
            "word",
            "lexicon",
        }
        similarity = self._world.similarity(
            text.pooled[0] if read_exactly else encoder.embed([spec.prompt])[0]
        )
        [frames] = self._generator.generate(
            [conditioned],
            [spec.seed],
            steps=self._steps,
            guidance=guidance,
            negative_prompt=spec.negative_prompt,
            first_frame=first_frame,
            on_step=on_step,
            text=text,
            frames=frames_per_clip,
        )
        meta: dict[str, Any] = {
            # The synthetic world has no camera; a requested move is not rendered.
            "camera": "none" if spec.camera is None else "unsupported",
            "native_width": size,
            "native_height": size,
            "native_frames": frames_per_clip,
            "steps": self._steps,
            "guidance_scale": guidance,
            "image_conditioning": "first-frame replacement" if image is not None else "none",
            "prompt_similarity": round(similarity, 3),
        }
        if conditioned != spec.prompt:
            meta["conditioned_prompt"] = conditioned
        warning = far_from_world_warning(spec.prompt, similarity)
        if warning is not None:
            meta["warnings"] = [warning]
        return Clip(frames=frames, fps=frames_per_clip / spec.seconds, meta=meta)
