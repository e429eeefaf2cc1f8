"""`ltx`: LTX-Video text- and image-to-video through diffusers' LTX pipelines.

Every LTX checkpoint serves both tasks with one set of weights: the 0.9.7 releases (distilled
ones included) are an `LTXConditionPipeline`, which takes an optional first-frame image; the
earlier ones an `LTXPipeline` (or `LTXImageToVideoPipeline`), whose sibling is built from
the same components. Sizes are multiples of 32 and frame counts 8k+1 (the VAE's compression).

The decode follows the model card for the timestep-aware VAE of 0.9.1+: the latents are
decoded at timestep 0.05 with noise 0.025 (a checkpoint whose VAE takes no timestep decodes
plainly). Step-distilled releases come with their own schedule, set by the `timesteps` option
(the catalog does this for 0.9.7-distilled) and guidance 1.
"""

from __future__ import annotations

import inspect
from typing import Any

from reelforge.engines.diffusers.core import DiffusersVideoEngine, Embeddings, NativeFormat

__all__ = ["LTXEngine"]

_CONDITION = "LTXConditionPipeline"
_TEXT_TO_VIDEO = "LTXPipeline"
_IMAGE_TO_VIDEO = "LTXImageToVideoPipeline"
_DECODE_TIMESTEP = 0.05
_DECODE_NOISE_SCALE = 0.025


class LTXEngine(DiffusersVideoEngine):
    """LTX-Video through diffusers; see `VideoOptions` for the registry options it reads."""

    name = "ltx"
    family = "LTX-Video"
    pipeline_classes = (_CONDITION, _TEXT_TO_VIDEO, _IMAGE_TO_VIDEO)
    example_checkpoint = "Lightricks/LTX-Video-0.9.7-distilled"
    # The 0.9.x releases' card: 768x512 at 24 fps; clips up to 257 frames.
    default_native = NativeFormat(width=768, height=512, fps=24, max_frames=257)

    def _task_pipelines(self, pipeline: Any) -> tuple[Any, Any]:
        import diffusers

        name = type(pipeline).__name__
        if name == _CONDITION:
            return pipeline, pipeline  # the image, when given, conditions frame 0
        sibling_name = _IMAGE_TO_VIDEO if name == _TEXT_TO_VIDEO else _TEXT_TO_VIDEO
        # Built directly on the same modules (no copy, no dtype cast).
        sibling = getattr(diffusers, sibling_name)(**pipeline.components)
        if name == _TEXT_TO_VIDEO:
            return pipeline, sibling
        return sibling, pipeline

    def _encode(
        self, pipeline: Any, prompt: str, negative_prompt: str, guidance: float
    ) -> Embeddings:
        import torch

        # The pipelines differ in their text length (128 tokens, 256 for the condition one).
        length = inspect.signature(pipeline.__call__).parameters["max_sequence_length"].default
        with torch.inference_mode():
            embeds, mask, negative_embeds, negative_mask = pipeline.encode_prompt(
                prompt=prompt,
                negative_prompt=negative_prompt,
                do_classifier_free_guidance=guidance > 1.0,
                max_sequence_length=length,
                device=pipeline._execution_device,
            )
        return {
            "prompt_embeds": embeds,
            "prompt_attention_mask": mask,
            "negative_prompt_embeds": negative_embeds,
            "negative_prompt_attention_mask": negative_mask,
        }

    def _takes_timesteps(self, pipeline: Any) -> bool:
        # The older pipelines take `timesteps` but always compute sigmas too, which diffusers
        # then refuses; only the condition pipeline takes a schedule as the cards give it.
        return type(pipeline).__name__ == _CONDITION

    def _prepare_call(
        self, pipeline: Any, guidance: float, size: tuple[int, int]
    ) -> dict[str, Any]:
        assert self.native is not None
        call = super()._prepare_call(pipeline, guidance, size)
        # The transformer scales its temporal positions by the frame rate.
        call["frame_rate"] = self.native.fps
        if pipeline.vae.config.timestep_conditioning:
            call.update(decode_timestep=_DECODE_TIMESTEP, decode_noise_scale=_DECODE_NOISE_SCALE)
        return call

    def _patch_size(self, pipeline: Any) -> int:
        return int(pipeline.transformer_spatial_patch_size)

    def _size_multiple(self, pipeline: Any) -> int:
        return int(pipeline.vae_spatial_compression_ratio * self._patch_size(pipeline))

    def _temporal_factor(self, pipeline: Any) -> int:
        return int(pipeline.vae_temporal_compression_ratio)
