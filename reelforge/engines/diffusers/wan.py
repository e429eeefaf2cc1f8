"""`wan`: Wan 2.x text- and image-to-video through diffusers' `WanPipeline` family.

One engine serves one checkpoint folder in the diffusers layout (`model_index.json` at its
root, e.g. Wan-AI/Wan2.1-T2V-1.3B-Diffusers or Wan2.2-TI2V-5B-Diffusers). It renders at the
model's native size and rate; the media layer scales and resamples to the requested output.
The machinery (options, chaining, progress, memory and speed settings) is
`diffusers_video.DiffusersVideoEngine`; this module says what is Wan's own.

    >>> engine = WanEngine("/models/Wan2.1-T2V-1.3B-Diffusers", "auto", {"steps": 30})
    >>> engine.load()  # doctest: +SKIP
    >>> clip = engine.generate(spec, None, on_step=print)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reelforge.engines.diffusers.core import DiffusersVideoEngine, Embeddings, NativeFormat

__all__ = ["WanEngine"]

_TEXT_TO_VIDEO = "WanPipeline"
_IMAGE_TO_VIDEO = "WanImageToVideoPipeline"


class WanEngine(DiffusersVideoEngine):
    """Wan 2.x through diffusers; see `VideoOptions` for the registry options it reads.

    Wan2.2-TI2V-5B (the 16x VAE) renders 1280x704 at 24 fps up to 121 frames, Wan2.1 and
    Wan2.2-A14B 832x480 at 16 fps up to 81 frames. The default guidance range 1..9 puts the
    API's cfg_scale 0.5 at Wan's recommended 5.0.
    """

    name = "wan"
    family = "Wan"
    pipeline_classes = (_TEXT_TO_VIDEO, _IMAGE_TO_VIDEO)
    example_checkpoint = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    default_native = NativeFormat(width=832, height=480, fps=16, max_frames=81)
    guidance_passes_apart = True

    def _load_pipeline(self, folder: Path, class_name: str, device: str) -> Any:
        import torch
        from diffusers import WanImageToVideoPipeline, WanPipeline

        dtype: Any = torch.float32
        if device.startswith("cuda"):
            # bfloat16 for the transformer and text encoder; the VAE and CLIP stay float32 as
            # the Wan model cards advise, since they are small and lose detail in bfloat16.
            dtype = {
                "default": torch.bfloat16,
                "vae": torch.float32,
                "image_encoder": torch.float32,
            }
        pipeline_class = WanPipeline if class_name == _TEXT_TO_VIDEO else WanImageToVideoPipeline
        return pipeline_class.from_pretrained(folder, dtype=dtype)

    def _task_pipelines(self, pipeline: Any) -> tuple[Any, Any]:
        from diffusers import WanImageToVideoPipeline

        if type(pipeline).__name__ == _IMAGE_TO_VIDEO:
            return None, pipeline
        # Wan2.2-TI2V-5B is one set of weights for both tasks, told apart per call.
        if not pipeline.config.get("expand_timesteps", False):
            return pipeline, None
        # Built directly, not with from_pipe: that casts the shared modules in place (to
        # float32 unless told otherwise), which would undo the bfloat16 load.
        image_pipeline = WanImageToVideoPipeline(
            **pipeline.components,
            boundary_ratio=pipeline.config.get("boundary_ratio"),
            expand_timesteps=True,
        )
        return pipeline, image_pipeline

    def _encode(
        self, pipeline: Any, prompt: str, negative_prompt: str, guidance: float
    ) -> Embeddings:
        import torch

        with torch.inference_mode():
            positive, negative = pipeline.encode_prompt(
                prompt=prompt,
                negative_prompt=negative_prompt,
                do_classifier_free_guidance=guidance > 1.0,
                max_sequence_length=512,  # what the pipeline's own call uses
                device=pipeline._execution_device,
            )
        return {"prompt_embeds": positive, "negative_prompt_embeds": negative}

    def _patch_size(self, pipeline: Any) -> int:
        transformer = pipeline.transformer or pipeline.transformer_2  # A14B may drop one
        patch = transformer.config.patch_size
        return int(max(patch[1], patch[2]))

    def _family_native(self, pipeline: Any) -> NativeFormat:
        if pipeline.vae_scale_factor_spatial >= 16:  # Wan2.2's high-compression VAE (TI2V-5B)
            return NativeFormat(width=1280, height=704, fps=24, max_frames=121)
        return self.default_native
