"""Tiny random-weight checkpoints, built offline, for tests and demos without a download.

`TINY_ARCHS` names every architecture of the catalog (`reelforge models make-tiny ARCH DIR`);
`build_tiny` builds one. Wan's are built here, LTX-Video's in `tiny_ltx` and
HunyuanVideo-1.5's in `tiny_hunyuan`.

`build_tiny_wan` assembles the real diffusers/transformers classes from small local configs and
`save_pretrained`s the whole pipeline, so the folder loads back through exactly the
`from_pretrained` path a real checkpoint takes. The frames are noise-like: this exercises the
plumbing (shapes, steps, seeds, progress, cancellation), never quality.

    >>> from pathlib import Path
    >>> from reelforge.testing.tiny import build_tiny_wan
    >>> build_tiny_wan(Path("/tmp/tiny-wan"))  # doctest: +SKIP
    PosixPath('/tmp/tiny-wan')

Tasks mirror the released checkpoints' layouts:

- `t2v`: Wan2.1-T2V (`WanPipeline`, 16-channel VAE with 8x spatial compression);
- `i2v`: Wan2.1-I2V (`WanImageToVideoPipeline` with a CLIP vision encoder);
- `ti2v`: Wan2.2-TI2V-5B (`WanPipeline` with `expand_timesteps`, the 48-channel VAE with 16x
  spatial compression), which serves both text and image to video;
- `a14b-t2v`, `a14b-i2v`: Wan2.2-T2V-A14B / I2V-A14B, two experts (`transformer` for high
  noise, `transformer_2` for low noise, switched at the pipeline's `boundary_ratio`) over the
  Wan2.1 VAE; the image-to-video one has no CLIP image encoder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from reelforge.testing.tiny_hunyuan import TinyHunyuanTask

__all__ = [
    "TINY_ARCHS",
    "TinyArch",
    "TinyTask",
    "build_tiny",
    "build_tiny_lora",
    "build_tiny_wan",
    "tiny_options",
    "tiny_registry_entry",
    "tiny_t5_encoder",
    "tiny_wan_options",
]

TinyTask = Literal["t2v", "i2v", "ti2v", "a14b-t2v", "a14b-i2v"]
"""The Wan layouts `build_tiny_wan` builds."""


@dataclass(frozen=True)
class TinyArch:
    """One architecture `reelforge models make-tiny` builds: its engine and what it serves."""

    engine: str
    task: str
    """The layout within the engine's family (`TinyTask` for Wan; t2v or i2v for Hunyuan)."""
    text_to_video: bool
    image_to_video: bool
    released_as: str


TINY_ARCHS: dict[str, TinyArch] = {
    "wan2.1-t2v": TinyArch("wan", "t2v", True, False, "Wan-AI/Wan2.1-T2V-1.3B-Diffusers, -14B"),
    "wan2.1-i2v": TinyArch("wan", "i2v", False, True, "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers"),
    "wan2.2-ti2v": TinyArch("wan", "ti2v", True, True, "Wan-AI/Wan2.2-TI2V-5B-Diffusers"),
    "wan2.2-a14b-t2v": TinyArch("wan", "a14b-t2v", True, False, "Wan-AI/Wan2.2-T2V-A14B-Diffusers"),
    "wan2.2-a14b-i2v": TinyArch("wan", "a14b-i2v", False, True, "Wan-AI/Wan2.2-I2V-A14B-Diffusers"),
    "ltx-video": TinyArch("ltx", "ti2v", True, True, "Lightricks/LTX-Video-0.9.7-distilled"),
    "hunyuanvideo-1.5-t2v": TinyArch(
        "hunyuan", "t2v", True, False, "hunyuanvideo-community/HunyuanVideo-1.5-480p_t2v"
    ),
    "hunyuanvideo-1.5-i2v": TinyArch(
        "hunyuan", "i2v", False, True, "hunyuanvideo-community/HunyuanVideo-1.5-480p_i2v"
    ),
}
"""Architecture name -> how to build it; the names `reelforge models make-tiny` accepts."""


def build_tiny(arch: str, directory: Path, seed: int = 0) -> Path:
    """Build the tiny random-weight checkpoint of `arch` (a `TINY_ARCHS` name) in `directory`."""
    if arch not in TINY_ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(TINY_ARCHS)}")
    layout = TINY_ARCHS[arch]
    if layout.engine == "ltx":
        from reelforge.testing.tiny_ltx import build_tiny_ltx

        return build_tiny_ltx(directory, seed)
    if layout.engine == "hunyuan":
        from reelforge.testing.tiny_hunyuan import build_tiny_hunyuan15

        return build_tiny_hunyuan15(directory, cast("TinyHunyuanTask", layout.task), seed)
    return build_tiny_wan(directory, cast(TinyTask, layout.task), seed)


def tiny_options(arch: str) -> dict[str, Any]:
    """The registry options that serve the tiny `arch` checkpoint at its own small native
    size and rate (the engine's family defaults are the real model's, far too big for a CPU)."""
    layout = TINY_ARCHS[arch]
    if layout.engine == "ltx":
        from reelforge.testing import tiny_ltx

        return _native_options(tiny_ltx.NATIVE_SIZE, tiny_ltx.NATIVE_FPS)
    if layout.engine == "hunyuan":
        from reelforge.testing import tiny_hunyuan

        return _native_options(tiny_hunyuan.NATIVE_SIZE, tiny_hunyuan.NATIVE_FPS)
    return tiny_wan_options(cast(TinyTask, layout.task))


def tiny_wan_options(task: TinyTask) -> dict[str, Any]:
    """`tiny_options` of the tiny Wan checkpoint `build_tiny_wan` builds for `task`."""
    return _native_options(_NATIVE_SIZE[task], _NATIVE_FPS[task])


def tiny_registry_entry(model_id: str, arch: str, checkpoint: Path, **options: Any) -> str:
    """A registry file's entry (TOML) serving the tiny `arch` checkpoint in `checkpoint` as
    `model_id`, with its `tiny_options` and any other `options` (numbers, strings, booleans)."""
    merged = {**tiny_options(arch), **options}
    inline = ", ".join(f"{name} = {json.dumps(value)}" for name, value in merged.items())
    return (
        f"[models.{json.dumps(model_id)}]\n"
        f'engine = "{TINY_ARCHS[arch].engine}"\n'
        f"checkpoint = {json.dumps(str(checkpoint))}\n"
        f"options = {{ {inline} }}\n"
    )


def _native_options(size: tuple[int, int], fps: float) -> dict[str, Any]:
    return {"native_width": size[0], "native_height": size[1], "native_fps": fps}


# Native sizes small enough for CPU tests, multiples of the VAE x patch factor (16 or 32).
_NATIVE_SIZE = {
    "t2v": (64, 48),
    "i2v": (64, 48),
    "ti2v": (96, 64),
    "a14b-t2v": (64, 48),
    "a14b-i2v": (64, 48),
}
# Wan2.1 and Wan2.2-A14B render 16 fps, Wan2.2-TI2V-5B 24 fps.
_NATIVE_FPS = {"t2v": 16, "i2v": 16, "ti2v": 24, "a14b-t2v": 16, "a14b-i2v": 16}
# Where the A14B pipelines hand over from the high-noise to the low-noise expert, as released.
_BOUNDARY_RATIO = {"a14b-t2v": 0.875, "a14b-i2v": 0.9}
_TEXT_DIM = 32
_IMAGE_SIDE = 32  # the CLIP encoder's input size (224 in the real one)
# Rotary tables must cover the largest latent grid tested (frames, rows or columns per patch).
_ROPE_MAX_SEQ_LEN = 256


def build_tiny_wan(directory: Path, task: TinyTask = "t2v", seed: int = 0) -> Path:
    """Build a tiny random-weight Wan pipeline for `task` and save it into `directory`.

    The same `seed` gives byte-identical weights. Returns `directory`.
    """
    # Imported here so that importing reelforge.engines stays free of torch.
    import torch
    from diffusers import WanImageToVideoPipeline, WanPipeline
    from transformers import ByT5Tokenizer

    if task not in _NATIVE_SIZE:
        raise ValueError(f"unknown tiny Wan task {task!r}; expected one of {sorted(_NATIVE_SIZE)}")
    directory = Path(directory)
    # ByT5 maps bytes to ids, so it needs no vocabulary file (the real UMT5 tokenizer does).
    tokenizer = ByT5Tokenizer()
    torch.manual_seed(seed)
    text_encoder = _text_encoder(vocab_size=len(tokenizer))
    torch.manual_seed(seed + 1)
    vae = _vae(wan22=task == "ti2v")
    z_dim = vae.config.z_dim
    components: dict[str, Any] = {
        "tokenizer": tokenizer,
        "text_encoder": text_encoder,
        "vae": vae,
        "scheduler": _scheduler(),
    }
    pipeline: Any
    if task in _BOUNDARY_RATIO:
        in_channels = z_dim if task == "a14b-t2v" else 2 * z_dim + 4
        torch.manual_seed(seed + 3)
        high_noise = _transformer(in_channels, z_dim, image_dim=None)
        torch.manual_seed(seed + 4)
        low_noise = _transformer(in_channels, z_dim, image_dim=None)
        experts = {
            **components,
            "transformer": high_noise,
            "transformer_2": low_noise,
            "boundary_ratio": _BOUNDARY_RATIO[task],
        }
        if task == "a14b-t2v":
            pipeline = WanPipeline(**experts)
        else:
            pipeline = WanImageToVideoPipeline(**experts, image_encoder=None, image_processor=None)
    elif task == "i2v":
        torch.manual_seed(seed + 2)
        image_encoder = _image_encoder()
        # Wan2.1-I2V's transformer sees the noisy latents, the encoded first frame and a
        # 4-channel frame mask (one per frame folded into each latent frame).
        torch.manual_seed(seed + 3)
        transformer = _transformer(2 * z_dim + 4, z_dim, image_dim=image_encoder.config.hidden_size)
        pipeline = WanImageToVideoPipeline(
            **components,
            transformer=transformer,
            image_encoder=image_encoder,
            image_processor=_image_processor(),
        )
        # Record the public class name, as the released checkpoint does: without torchvision
        # transformers swaps in CLIPImageProcessorPil, which would otherwise be written here.
        pipeline.register_to_config(image_processor=("transformers", "CLIPImageProcessor"))
    else:
        torch.manual_seed(seed + 3)
        transformer = _transformer(z_dim, z_dim, image_dim=None)
        pipeline = WanPipeline(
            **components, transformer=transformer, expand_timesteps=task == "ti2v"
        )

    pipeline.save_pretrained(directory)
    return directory


def build_tiny_lora(checkpoint: Path, path: Path, seed: int = 0, rank: int = 4) -> Path:
    """A random LoRA (rank `rank`, on every attention projection) for the transformer of the
    tiny checkpoint in `checkpoint`, saved as `path` in the diffusers LoRA format: a stand-in
    for a step-distilled "fast" LoRA, to exercise loading and fusing."""
    import torch
    from diffusers import WanPipeline, WanTransformer3DModel
    from peft import LoraConfig, get_peft_model_state_dict

    transformer = WanTransformer3DModel.from_pretrained(Path(checkpoint) / "transformer")
    torch.manual_seed(seed)
    transformer.add_adapter(
        LoraConfig(
            r=rank,
            lora_alpha=rank,
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
            init_lora_weights=False,  # random on both sides, so the LoRA changes the output
        )
    )
    WanPipeline.save_lora_weights(
        save_directory=str(Path(path).parent),
        transformer_lora_layers=get_peft_model_state_dict(transformer),
        weight_name=Path(path).name,
    )
    return Path(path)


def tiny_t5_encoder(vocab_size: int, width: int, layers: int, *, gated: bool = False) -> Any:
    """A small `T5EncoderModel` (LTX's text encoder is T5-XXL, HunyuanVideo-1.5's glyph encoder
    a ByT5 with gated feed-forward layers)."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=vocab_size,
        d_model=width,
        d_kv=8,
        d_ff=64,
        num_layers=layers,
        num_heads=4,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu" if gated else "relu",
    )
    return T5EncoderModel(config)


def _text_encoder(vocab_size: int) -> Any:
    from transformers import UMT5Config, UMT5EncoderModel

    config = UMT5Config(
        vocab_size=vocab_size,
        d_model=_TEXT_DIM,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
    )
    return UMT5EncoderModel(config)


def _vae(wan22: bool) -> Any:
    from diffusers import AutoencoderKLWan

    if wan22:
        # Wan2.2's VAE: 2x2 pixel patches folded into channels (12 = 3 x 2 x 2), residual
        # blocks, 16x spatial compression overall.
        z_dim = 48
        extra: dict[str, Any] = {
            "in_channels": 12,
            "out_channels": 12,
            "is_residual": True,
            "patch_size": 2,
            "scale_factor_spatial": 16,
        }
    else:
        z_dim = 4
        extra = {}
    return AutoencoderKLWan(
        base_dim=8,
        z_dim=z_dim,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        # The defaults are the real VAE's 16 per-channel statistics; a tiny one has z_dim.
        latents_mean=[0.0] * z_dim,
        latents_std=[1.0] * z_dim,
        **extra,
    )


def _scheduler() -> Any:
    from diffusers import UniPCMultistepScheduler

    # The released Wan2.x diffusers checkpoints ship exactly this flow-matching UniPC setup.
    return UniPCMultistepScheduler(
        prediction_type="flow_prediction",
        use_flow_sigmas=True,
        num_train_timesteps=1000,
        flow_shift=3.0,
    )


def _transformer(in_channels: int, out_channels: int, image_dim: int | None) -> Any:
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=in_channels,
        out_channels=out_channels,
        text_dim=_TEXT_DIM,
        freq_dim=32,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        image_dim=image_dim,
        rope_max_seq_len=_ROPE_MAX_SEQ_LEN,
    )


def _image_encoder() -> Any:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    # CLIPVisionModel, not ...WithProjection: it is what the pipeline and Wan2.1-I2V declare.
    config = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=_IMAGE_SIDE,
        patch_size=8,
    )
    return CLIPVisionModel(config)


def _image_processor() -> Any:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size=_IMAGE_SIDE, crop_size=_IMAGE_SIDE)
