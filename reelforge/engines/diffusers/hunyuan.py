"""`hunyuan`: HunyuanVideo-1.5 text- and image-to-video through diffusers.

The release has separate checkpoints per task (and resolution): a text-to-video one
(`HunyuanVideo15Pipeline`) and an image-to-video one (`HunyuanVideo15ImageToVideoPipeline`),
so one engine serves one task; text-to-video requests longer than the model's clip are
rendered at its longest and stretched (meta `frames_capped`), since chaining needs the
image-to-video weights. Sizes are multiples of 16 and frame counts 4k+1.

Three things these pipelines do differently from Wan's and LTX's, handled here:

- guidance lives in a guider object, not a call argument: each call gets a fresh guider at the
  request's scale (the loaded one stays as it was);
- there is no step callback, so progress and cancellation hook the scheduler's `step`, which
  runs once per denoising step;
- the image-to-video pipeline takes no size: it picks the size bucket nearest the image's
  aspect ratio at the transformer's `target_size`. The engine pins that choice to the size it
  computed, so the output is exactly the native size the request maps to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reelforge.engines.base import OnStep
from reelforge.engines.diffusers.core import DiffusersVideoEngine, Embeddings, NativeFormat

__all__ = ["HunyuanEngine"]

_TEXT_TO_VIDEO = "HunyuanVideo15Pipeline"
_IMAGE_TO_VIDEO = "HunyuanVideo15ImageToVideoPipeline"


class HunyuanEngine(DiffusersVideoEngine):
    """HunyuanVideo-1.5 through diffusers; see `VideoOptions` for the registry options."""

    name = "hunyuan"
    family = "HunyuanVideo-1.5"
    pipeline_classes = (_TEXT_TO_VIDEO, _IMAGE_TO_VIDEO)
    example_checkpoint = "hunyuanvideo-community/HunyuanVideo-1.5-480p_t2v"
    # The 480p release: 848x480 at 24 fps, 121 frames.
    default_native = NativeFormat(width=848, height=480, fps=24, max_frames=121)

    def __init__(
        self, checkpoint: str | None, device: str = "cpu", options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(checkpoint, device, options)
        self._loaded_guider: Any = None
        """The guider the checkpoint ships; each call gets a copy at the request's scale."""

    def _load_pipeline(self, folder: Path, class_name: str, device: str) -> Any:
        pipeline = super()._load_pipeline(folder, class_name, device)
        self._loaded_guider = pipeline.guider
        return pipeline

    def _task_pipelines(self, pipeline: Any) -> tuple[Any, Any]:
        if type(pipeline).__name__ == _IMAGE_TO_VIDEO:
            return None, pipeline
        return pipeline, None

    def _encode(
        self, pipeline: Any, prompt: str, negative_prompt: str, guidance: float
    ) -> Embeddings:
        import torch

        device, dtype = pipeline._execution_device, pipeline.transformer.dtype
        names = ("prompt_embeds", "prompt_embeds_mask", "prompt_embeds_2", "prompt_embeds_mask_2")
        with torch.inference_mode():
            positive = pipeline.encode_prompt(prompt=prompt, device=device, dtype=dtype)
            embeddings = dict(zip(names, positive, strict=True))
            # The guider's own rule: any scale but 1 runs the unconditional pass too.
            if not math.isclose(guidance, 1.0):
                negative = pipeline.encode_prompt(
                    prompt=negative_prompt, device=device, dtype=dtype
                )
                embeddings |= {
                    f"negative_{name}": value for name, value in zip(names, negative, strict=True)
                }
        return embeddings

    def _prepare_call(
        self, pipeline: Any, guidance: float, size: tuple[int, int]
    ) -> dict[str, Any]:
        pipeline.guider = self._loaded_guider.new(guidance_scale=guidance)
        if type(pipeline).__name__ == _IMAGE_TO_VIDEO:
            # An instance attribute over the processor's method: the bucket is our size.
            pinned = (size[1], size[0])
            pipeline.video_processor.calculate_default_height_width = (
                lambda height, width, target_size: pinned
            )
            return {}
        return {"width": size[0], "height": size[1]}

    def _render(self, pipeline: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._render(pipeline, *args, **kwargs)
        finally:
            # Drop this call's overrides (the step counter holds the job's callback).
            pipeline.scheduler.__dict__.pop("step", None)
            pipeline.video_processor.__dict__.pop("calculate_default_height_width", None)

    def _progress_options(self, pipeline: Any, report: OnStep, units: int) -> dict[str, Any]:
        scheduler = pipeline.scheduler
        step = type(scheduler).step
        done = 0

        def counted_step(*args: Any, **kwargs: Any) -> Any:
            nonlocal done
            result = step(scheduler, *args, **kwargs)
            done += 1
            report(done, units)  # may raise: that is how the worker cancels
            return result

        scheduler.step = counted_step  # this call's counter replaces the previous one's
        return {}
