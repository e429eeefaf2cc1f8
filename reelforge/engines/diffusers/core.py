"""The engine core shared by every diffusers video model: options, loading, chaining, progress.

A family engine (`wan`, `ltx`, `hunyuan`) says which pipeline classes it loads and how its
pipelines differ: how a prompt is encoded, what else a call needs, which size multiple and
native format the model has. Everything else is here, once: checkpoint resolution (a folder
or a hub id already in the local cache; nothing downloads), memory modes and speed settings
(`acceleration`), the request's size and length mapped to the model's native ones, long
clips chained in segments through the image-to-video path (`chaining`), progress over
prompt encoding, every denoising step and the decode, and cancellation by the step callback.
"""

from __future__ import annotations

import json
import math
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image, ImageOps

from reelforge.engines.base import Clip, Engine, OnStep
from reelforge.engines.diffusers.acceleration import (
    MEMORY_MODES,
    BatchedGuidance,
    apply_memory_mode,
    apply_speed_settings,
)
from reelforge.engines.diffusers.chaining import Segment, append_segment, plan_segments
from reelforge.errors import GenerationError
from reelforge.spec import GenerationSpec

__all__ = [
    "DiffusersVideoEngine",
    "NativeFormat",
    "VideoOptions",
    "native_frame_count",
    "native_size",
]


@dataclass(frozen=True)
class VideoOptions:
    """A registry entry's `options` for a diffusers video model; every field may be left out.

    Size, rate and length default to the checkpoint's family (see each engine); these options
    override them (the catalog sets them per model; a tiny test checkpoint's come from
    `reelforge.testing.tiny.tiny_options`).
    """

    native_width: int | None = None
    """The model's native landscape width; portrait swaps it with the height."""
    native_height: int | None = None
    native_fps: float | None = None
    max_native_frames: int | None = None
    """Longest clip rendered in one pass; longer requests are chained (see `chain_overlap`)."""
    chain_overlap: int = 5
    """Frames shared by consecutive segments of a long clip, cross-faded at the seam (1: the
    next segment starts from the last frame, with no cross-fade)."""
    steps: int = 50
    timesteps: tuple[float, ...] | None = None
    """An explicit denoising schedule (0-1000, descending) for step-distilled models whose
    card gives one, e.g. LTX-Video 0.9.7-distilled; replaces `steps`."""
    guidance_min: float = 1.0
    """Guidance at cfg_scale 0; 1.0 turns classifier-free guidance off (half the compute)."""
    guidance_max: float = 9.0
    """Guidance at cfg_scale 1; with guidance_min 1.0, cfg_scale 0.5 gives Wan's default 5.0."""
    flow_shift: float | None = None
    """Replaces the scheduler's shift: Wan recommends 3.0 for 480p and 5.0 for 720p."""
    memory: str = "auto"
    """Where the weights live: auto, device, model_offload, group_offload or
    sequential_offload (see `acceleration`); auto picks by free device memory."""
    vae_tiling: bool = False
    """Decode in overlapping tiles (less memory); always on in the offload modes."""
    cache_threshold: float = 0.0
    """First-block cache threshold (0: off; about 0.05-0.2 trades detail for speed)."""
    compile: bool = False
    """Compile the transformer's repeated block with torch.compile, warmed up at load."""
    fp8: bool = False
    """Store the transformer weights in float8, computing in the load dtype (less memory)."""
    attention: str = "native"
    """diffusers attention backend: native (PyTorch SDPA), flash, _flash_3, sage, ..."""
    lora: str | None = None
    """A LoRA to fuse into the transformer(s) at load: a local .safetensors file, e.g. a
    step-distilled "fast" LoRA (then also set steps = 4 and guidance_max = 1.0)."""
    lora_scale: float = 1.0
    batch_guidance: bool | None = None
    """Run classifier-free guidance's two passes per step as one batch (Wan's pipelines run
    them apart; LTX's always batch them; HunyuanVideo-1.5's guider runs them apart and is left
    so). None: on for CUDA devices."""

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], engine: str) -> VideoOptions:
        """Validate a registry entry's options, naming the culprit of any mistake."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown option(s) for the {engine} engine: {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        for name, value in options.items():
            _check_type(engine, name, value)
        names = ("native_width", "native_height", "native_fps", "max_native_frames", "steps")
        for name in (*names, "chain_overlap"):
            value = options.get(name)
            if value is not None and value <= 0:
                raise ValueError(f"{engine} option {name} must be positive, got {value!r}")
        if options.get("cache_threshold", 0) < 0:
            raise ValueError(f"{engine} option cache_threshold must be 0 (off) or positive")
        if ("native_width" in options) != ("native_height" in options):
            raise ValueError(
                f"{engine} options native_width and native_height go together; set both"
            )
        values = dict(options)
        if values.get("timesteps") is not None:
            values["timesteps"] = tuple(float(t) for t in values["timesteps"])
        return cls(**values)

    def guidance_scale(self, cfg_scale: float) -> float:
        """Map the request's cfg_scale (0..1) linearly onto [guidance_min, guidance_max]."""
        return self.guidance_min + cfg_scale * (self.guidance_max - self.guidance_min)

    @property
    def step_count(self) -> int:
        return len(self.timesteps) if self.timesteps else self.steps


def _check_type(engine: str, name: str, value: Any) -> None:
    """TOML gives real numbers, booleans, strings and arrays; a quoted "30" or a misspelt mode
    is a typo worth catching at start-up."""
    if name == "memory":
        if value not in MEMORY_MODES:
            raise ValueError(f"{engine} option memory must be one of {', '.join(MEMORY_MODES)}")
    elif name == "attention":
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{engine} option attention must be a backend name, got {value!r}")
    elif name == "lora":
        if not isinstance(value, str) or not value.strip():
            raise ValueError(
                f"{engine} option lora must be a path to a .safetensors file, got {value!r}"
            )
    elif name in ("vae_tiling", "compile", "fp8", "batch_guidance"):
        if not isinstance(value, bool):
            raise ValueError(f"{engine} option {name} must be true or false, got {value!r}")
    elif name == "timesteps":
        numbers = isinstance(value, list | tuple) and all(
            isinstance(t, int | float) and not isinstance(t, bool) for t in value
        )
        if not numbers or not value or list(value) != sorted(value, reverse=True):
            raise ValueError(
                f"{engine} option timesteps must be a descending list of numbers, got {value!r}"
            )
    elif value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError(f"{engine} option {name} must be a number, got {value!r}")


@dataclass(frozen=True)
class NativeFormat:
    """What the loaded model renders: its landscape size, frame rate and longest clip."""

    width: int
    height: int
    fps: float
    max_frames: int


def native_size(
    spec_width: int, spec_height: int, native_width: int, native_height: int, multiple: int
) -> tuple[int, int]:
    """The native pixel budget arranged to the request's aspect ratio, as (width, height).

    Landscape requests get the native landscape size, portrait ones the swapped size, square
    ones a square of about the same area; whichever shape is closest to the requested ratio.
    """
    long_side, short_side = max(native_width, native_height), min(native_width, native_height)
    square = max(multiple, round(math.sqrt(long_side * short_side) / multiple) * multiple)
    shapes = [(long_side, short_side), (short_side, long_side), (square, square)]
    wanted = math.log(spec_width / spec_height)
    return min(shapes, key=lambda shape: abs(math.log(shape[0] / shape[1]) - wanted))


def native_frame_count(
    seconds: float, fps: float, temporal_factor: int, max_frames: int
) -> tuple[int, bool]:
    """Frames for `seconds` at `fps` as the VAE needs them (k * factor + 1), at most
    `max_frames`; returns (frames, capped)."""
    # The VAE folds `temporal_factor` frames into one latent frame after the first.
    latent_frames = max(1, round((seconds * fps - 1) / temporal_factor))
    cap = max(1, (max_frames - 1) // temporal_factor) * temporal_factor + 1
    frames = latent_frames * temporal_factor + 1
    return min(frames, cap), frames > cap


Embeddings = dict[str, Any]
"""A pipeline call's prompt keyword arguments (prompt_embeds, masks, ...), computed once."""


class DiffusersVideoEngine(Engine):
    """One diffusers video checkpoint behind the engine interface; see `VideoOptions`.

    `cfg_scale` maps linearly onto [guidance_min, guidance_max]. Camera moves become a phrase
    appended to the prompt (none of these models has camera conditioning), reported as
    meta["camera"] == "prompt".
    """

    family: ClassVar[str]
    """The model family's name in messages, e.g. "Wan"."""
    pipeline_classes: ClassVar[tuple[str, ...]]
    """The `model_index.json` class names this engine loads."""
    example_checkpoint: ClassVar[str]
    """A released checkpoint in the diffusers layout, named in error messages."""
    guidance_passes_apart: ClassVar[bool] = False
    """Whether the pipelines call the transformer once per guidance pass with the
    `prompt_embeds` / `negative_prompt_embeds` they are given (what `BatchedGuidance` joins)."""
    default_native: ClassVar[NativeFormat]

    def __init__(
        self, checkpoint: str | None, device: str = "cpu", options: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(checkpoint, device, options)
        self.video_options = VideoOptions.from_mapping(self.options, self.name)
        self.native: NativeFormat | None = None
        """The size, rate and length the model renders at; known after `load()`."""
        self._text_pipeline: Any = None
        self._image_pipeline: Any = None
        self._torch_device = "cpu"
        self.memory_mode = "device"
        """The memory mode in use, `auto` resolved; known after `load()`."""
        self._batchers: list[BatchedGuidance] = []

    # ---- what a family says about itself -------------------------------------------------

    def _load_pipeline(self, folder: Path, class_name: str, device: str) -> Any:
        """`from_pretrained` the checkpoint in the dtypes the family wants on `device`: here
        all in bfloat16 on CUDA (what the LTX and HunyuanVideo cards advise), float32 else."""
        import diffusers
        import torch

        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        return getattr(diffusers, class_name).from_pretrained(folder, dtype=dtype)

    def _takes_timesteps(self, pipeline: Any) -> bool:
        """Whether the pipeline's call takes an explicit schedule (the `timesteps` option)."""
        return False

    @abstractmethod
    def _task_pipelines(self, pipeline: Any) -> tuple[Any, Any]:
        """(text-to-video pipeline or None, image-to-video pipeline or None) for the loaded
        one; a checkpoint that serves both builds its sibling from the same components."""

    @abstractmethod
    def _encode(
        self, pipeline: Any, prompt: str, negative_prompt: str, guidance: float
    ) -> Embeddings:
        """The prompt keyword arguments of a call, exactly as the pipeline's own call would
        compute them."""

    def _prepare_call(
        self, pipeline: Any, guidance: float, size: tuple[int, int]
    ) -> dict[str, Any]:
        """Set `pipeline` up for one call at `guidance` and `size` (width, height); returns
        the call's keyword arguments for both."""
        width, height = size
        return {"guidance_scale": guidance, "width": width, "height": height}

    def _progress_options(self, pipeline: Any, report: OnStep, units: int) -> dict[str, Any]:
        """Keyword arguments that make the call report each denoising step to `report`."""

        def report_step(
            pipe: Any, index: int, timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            report(index + 1, units)  # may raise: that is how the worker cancels
            return {}

        return {
            "callback_on_step_end": report_step,
            "callback_on_step_end_tensor_inputs": [],
        }

    def _size_multiple(self, pipeline: Any) -> int:
        """Width and height must divide into whole latent pixels, then transformer patches."""
        return int(pipeline.vae_scale_factor_spatial * self._patch_size(pipeline))

    def _patch_size(self, pipeline: Any) -> int:
        patch = pipeline.transformer.config.patch_size
        return int(max(patch[1], patch[2]) if isinstance(patch, list | tuple) else patch)

    def _temporal_factor(self, pipeline: Any) -> int:
        return int(pipeline.vae_scale_factor_temporal)

    def _family_native(self, pipeline: Any) -> NativeFormat:
        """The native format when the options do not say."""
        return self.default_native

    # ---- the shared machinery ------------------------------------------------------------

    def load(self) -> None:
        """Load the checkpoint's pipeline onto the device and fill in defaults from it."""
        # Checked before importing torch, so a misconfigured registry fails in milliseconds.
        folder = resolve_checkpoint(self.checkpoint, self.name, self.example_checkpoint)
        class_name = self._check_pipeline_class(folder)

        import diffusers
        import torch

        options = self.video_options
        if options.lora is not None and not hasattr(
            getattr(diffusers, class_name), "load_lora_weights"
        ):
            # Refused before loading gigabytes of weights.
            raise ValueError(f"{self.name} option lora: {class_name} cannot load LoRAs")
        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._torch_device = device
        pipeline = self._load_pipeline(folder, class_name, device)
        if options.timesteps is not None and not self._takes_timesteps(pipeline):
            raise ValueError(
                f"{self.name} option timesteps: {class_name} takes no explicit schedule; "
                f"set steps instead"
            )
        if options.lora is not None:
            fuse_lora(pipeline, Path(options.lora).expanduser(), options.lora_scale, self.name)
        self.memory_mode = apply_memory_mode(pipeline, options.memory, device)
        if options.vae_tiling:
            pipeline.vae.enable_tiling()
        apply_speed_settings(
            pipeline,
            cache_threshold=options.cache_threshold,
            compile_blocks=options.compile,
            attention=options.attention,
            fp8=options.fp8,
        )
        batch = options.batch_guidance
        if batch is None:
            batch = device.startswith("cuda")
        if batch and self.guidance_passes_apart:
            experts = (pipeline.transformer, getattr(pipeline, "transformer_2", None))
            self._batchers = [BatchedGuidance(expert) for expert in experts if expert is not None]
        if options.flow_shift is not None:
            pipeline.scheduler = shifted_scheduler(
                pipeline.scheduler, options.flow_shift, self.name
            )
        self._text_pipeline, self._image_pipeline = self._task_pipelines(pipeline)
        for task_pipeline in (self._text_pipeline, self._image_pipeline):
            if task_pipeline is not None:
                task_pipeline.set_progress_bar_config(disable=True)
        self.supports_text_to_video = self._text_pipeline is not None  # type: ignore[misc]
        self.supports_image_to_video = self._image_pipeline is not None  # type: ignore[misc]
        self.native = self._native_format(folder, pipeline)
        if options.compile:
            self._warm_up()

    def _check_pipeline_class(self, folder: Path) -> str:
        index = folder / "model_index.json"
        if not index.is_file():
            raise ValueError(
                f"{folder} is not a diffusers pipeline (no model_index.json); the {self.name} "
                f"engine needs the diffusers layout, e.g. {self.example_checkpoint} (not an "
                f"original single-file release)"
            )
        try:
            class_name = json.loads(index.read_text()).get("_class_name")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise ValueError(f"{index} is not a valid model_index.json: {exc}") from exc
        if class_name not in self.pipeline_classes:
            raise ValueError(
                f"{folder} holds a {class_name} pipeline, not a {self.family} one; the "
                f"{self.name} engine loads {' or '.join(self.pipeline_classes)} checkpoints"
            )
        return str(class_name)

    def _warm_up(self) -> None:
        """Run the compiled transformer once at the native size and longest clip, so the
        first request does not pay for compilation (other lengths compile on first use)."""
        native = self.native
        assert native is not None
        pipeline = self._text_pipeline or self._image_pipeline
        image = None if self._text_pipeline is not None else Image.new("RGB", (64, 64))
        guidance = self.video_options.guidance_scale(0.5)
        self._render(
            pipeline,
            self._encode(pipeline, "warm-up", "", guidance),
            image=image,
            size=(native.width, native.height),
            num_frames=native.max_frames,
            guidance=guidance,
            seed=0,
            on_step=lambda done, total: None,
            steps=2,
        )

    def generate(self, spec: GenerationSpec, image: Image.Image | None, on_step: OnStep) -> Clip:
        """Render `spec` at the native size and rate; `on_step` runs after each unit of work.

        A request longer than the model's longest clip is rendered as a chain of segments (see
        `chaining`), each after the first conditioned on the clip so far through the
        image-to-video path; a model without one renders its longest clip (meta
        `frames_capped`), which the media layer then stretches to the requested length.
        """
        pipeline = self._pipeline_for(image)
        native, options = self.native, self.video_options
        assert native is not None  # set by load(), which _pipeline_for has checked
        width, height = native_size(
            spec.width, spec.height, native.width, native.height, self._size_multiple(pipeline)
        )
        temporal = self._temporal_factor(pipeline)
        wanted, _ = native_frame_count(spec.seconds, native.fps, temporal, 10**9)
        can_chain = self._image_pipeline is not None
        if can_chain:
            segments = plan_segments(wanted, native.max_frames, options.chain_overlap, temporal)
        else:
            capped, _ = native_frame_count(spec.seconds, native.fps, temporal, native.max_frames)
            segments = [Segment(0, capped)]
        phrase = spec.camera.description if spec.camera is not None else ""
        prompt = ", ".join(part for part in (spec.prompt.strip(), phrase) if part)
        guidance = options.guidance_scale(spec.cfg_scale)
        # Progress units: the prompt encoded, then per segment each denoising step and the decode.
        units = options.step_count + 1
        total_units = 1 + units * len(segments)
        # One encoding serves every segment: the prompt is the same, and so is the text encoder
        # (a chain's image-to-video pipeline shares the text-to-video one's components).
        embeddings = self._encode(pipeline, prompt, spec.negative_prompt, guidance)
        on_step(1, total_units)

        video: np.ndarray | None = None
        condition = image
        for index, segment in enumerate(segments):
            if video is not None:
                condition = _frame_image(video[segment.start])
            frames = self._render(
                self._pipeline_for(condition),
                embeddings,
                image=condition,
                size=(width, height),
                num_frames=segment.frames,
                guidance=guidance,
                # Each segment its own noise, all fixed by the request's seed.
                seed=(spec.seed + index) % 2**64,
                on_step=_offset_progress(on_step, 1 + index * units, total_units),
            )
            video = frames if video is None else append_segment(video, frames, segment.start)
        assert video is not None
        video = video[:wanted]  # the last segment may run past the end
        pixels = _to_uint8(video)
        meta = {
            "camera": "prompt" if phrase else "none",
            "native_width": width,
            "native_height": height,
            "native_frames": int(pixels.shape[0]),
            "native_fps": native.fps,
            "frames_capped": pixels.shape[0] < wanted,
            "segments": len(segments),
            "steps": options.step_count,
            "guidance_scale": guidance,
            "memory_mode": self.memory_mode,
            "cache_threshold": options.cache_threshold,
            "compiled": options.compile,
            "lora": options.lora,
            "fp8": options.fp8,
            "attention": options.attention,
            "batched_guidance": bool(self._batchers) and guidance > 1.0,
        }
        return Clip(frames=pixels, fps=native.fps, meta=meta)

    def _render(
        self,
        pipeline: Any,
        embeddings: Embeddings,
        *,
        image: Image.Image | None,
        size: tuple[int, int],
        num_frames: int,
        guidance: float,
        seed: int,
        on_step: OnStep,
        steps: int | None = None,
    ) -> np.ndarray:
        """One pipeline call on encoded prompts: float frames (T, H, W, 3) in [0, 1].

        Reports `steps + 1` progress units: each denoising step, then the decode.
        """
        import torch

        options = self.video_options
        schedule: dict[str, Any]
        if steps is None and options.timesteps:
            schedule = {"timesteps": list(options.timesteps)}
            units = len(options.timesteps) + 1
        else:
            schedule = {"num_inference_steps": steps or options.steps}
            units = schedule["num_inference_steps"] + 1
        call: dict[str, Any] = {
            **embeddings,
            **schedule,
            **self._prepare_call(pipeline, guidance, size),
            **self._progress_options(pipeline, on_step, units),
            "num_frames": num_frames,
            "generator": torch.Generator(device=self._torch_device).manual_seed(seed),
            "output_type": "np",
        }
        if image is not None:
            call["image"] = ImageOps.fit(image.convert("RGB"), size, Image.Resampling.LANCZOS)
        negative = embeddings.get("negative_prompt_embeds")
        for batcher in self._batchers:
            batcher.pair = None if negative is None else (embeddings["prompt_embeds"], negative)
        try:
            with torch.inference_mode():
                frames = np.asarray(pipeline(**call).frames[0], dtype=np.float32)
        finally:
            for batcher in self._batchers:
                batcher.pair = None
        on_step(units, units)
        return frames

    def _pipeline_for(self, image: Image.Image | None) -> Any:
        if self._text_pipeline is None and self._image_pipeline is None:
            raise RuntimeError(f"{type(self).__name__}.generate called before load()")
        if image is None and self._text_pipeline is None:
            raise GenerationError(
                "this model is image-to-video only: send an input image", name="image_required"
            )
        if image is not None and self._image_pipeline is None:
            raise GenerationError(
                "this model is text-to-video only and cannot take an input image",
                name="image_not_supported",
            )
        return self._text_pipeline if image is None else self._image_pipeline

    def _native_format(self, folder: Path, pipeline: Any) -> NativeFormat:
        default = self._family_native(pipeline)
        options = self.video_options
        native = NativeFormat(
            width=options.native_width or default.width,
            height=options.native_height or default.height,
            fps=options.native_fps or default.fps,
            max_frames=options.max_native_frames or default.max_frames,
        )
        if native.max_frames <= options.chain_overlap + 1:
            raise ValueError(
                f"{self.name} option chain_overlap = {options.chain_overlap} must be below "
                f"max_native_frames - 1 = {native.max_frames - 1}"
            )
        multiple = self._size_multiple(pipeline)
        for name, value in (("native_width", native.width), ("native_height", native.height)):
            if value % multiple:
                raise ValueError(
                    f"{self.name} option {name} = {value} must be a multiple of {multiple} for "
                    f"{folder} (its VAE compression x transformer patch size)"
                )
        return native


def fuse_lora(pipeline: Any, path: Path, scale: float, engine: str) -> None:
    """Fuse the LoRA at `path` into the pipeline's transformer (both experts of Wan2.2-A14B,
    when the file has weights for the second), then drop the adapter: fused, it costs nothing
    per step."""
    if not path.is_file():
        raise ValueError(f"{engine} option lora: {path} is not a file")
    components = ["transformer"]
    pipeline.load_lora_weights(str(path), adapter_name="reelforge")
    if getattr(pipeline, "transformer_2", None) is not None:
        pipeline.load_lora_weights(
            str(path), adapter_name="reelforge_2", load_into_transformer_2=True
        )
        components.append("transformer_2")
    pipeline.fuse_lora(components=components, lora_scale=scale)
    pipeline.unload_lora_weights()


def _offset_progress(on_step: OnStep, before: int, total: int) -> OnStep:
    """Report one segment's steps as part of the whole chain's."""

    def report(done: int, _segment_total: int) -> None:
        on_step(before + done, total)

    return report


def _frame_image(frame: np.ndarray) -> Image.Image:
    """A float frame (H, W, 3) in [0, 1] as the RGB image a pipeline takes."""
    return Image.fromarray(_to_uint8(frame))


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] (a pipeline's "np" output) as uint8, rounded."""
    return (np.clip(pixels, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def resolve_checkpoint(checkpoint: str | None, engine: str, example: str) -> Path:
    """The local folder of `checkpoint`: a path, or a hub id already in the local HF cache."""
    if not checkpoint:
        folder_name = example.split("/")[-1]
        raise ValueError(
            f'the {engine} engine needs a checkpoint: set checkpoint = "/path/to/{folder_name}" '
            f"in the registry file, or --model ID={engine}:/path/to/checkpoint"
        )
    folder = Path(checkpoint).expanduser()
    if folder.is_dir():
        return folder
    if checkpoint.count("/") == 1 and not folder.exists():
        from huggingface_hub import snapshot_download

        try:
            # Never downloads: fetching weights is an explicit step for the operator.
            return Path(snapshot_download(checkpoint, local_files_only=True))
        except Exception as exc:
            raise ValueError(
                f"{engine} checkpoint {checkpoint!r} is neither a local folder nor in the Hugging "
                f"Face cache; download it first (`reelforge models pull` for a catalog model, "
                f"or `hf download {checkpoint}`) or point checkpoint at a local folder"
            ) from exc
    if folder.exists():
        raise ValueError(f"{engine} checkpoint {checkpoint!r} is a file; point it at the folder")
    raise ValueError(f"{engine} checkpoint folder {checkpoint!r} does not exist")


def shifted_scheduler(scheduler: Any, shift: float, engine: str) -> Any:
    # UniPC (Wan's checkpoints) calls it flow_shift; flow-match Euler calls it shift.
    for key in ("flow_shift", "shift"):
        if key in scheduler.config:
            return type(scheduler).from_config(scheduler.config, **{key: shift})
    raise ValueError(f"{engine} option flow_shift: {type(scheduler).__name__} has no shift setting")
