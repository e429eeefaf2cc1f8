"""Tiny random-weight HunyuanVideo-1.5 checkpoints, built offline, for tests without a download.

`build_tiny_hunyuan15` assembles the real diffusers/transformers classes from small local configs
and `save_pretrained`s the whole pipeline, so the folder loads back through exactly the
`from_pretrained` path a released checkpoint takes. The frames are noise: this exercises the
plumbing (shapes, steps, seeds, guidance, the image condition), never quality.

    >>> from pathlib import Path
    >>> from reelforge.testing.tiny_hunyuan import build_tiny_hunyuan15
    >>> build_tiny_hunyuan15(Path("/tmp/tiny-hy15"), "i2v")  # doctest: +SKIP
    PosixPath('/tmp/tiny-hy15')

Tasks mirror the layouts of hunyuanvideo-community/HunyuanVideo-1.5-480p_t2v and -480p_i2v:

- `t2v`: `HunyuanVideo15Pipeline`;
- `i2v`: `HunyuanVideo15ImageToVideoPipeline`, which adds a SigLIP image encoder and its
  feature extractor.

What is kept from the released models, because the pipelines' arithmetic depends on it:

- the VAE's compression, 16x spatial and 4x temporal, and its 32 latent channels, so frame
  counts 4k+1 and sizes in multiples of 16 behave as on the real model; the transformer's patch
  size (1x1x1) and input channels (noisy latents + first-frame latents + a mask, 2 x 32 + 1);
- two text streams: a Qwen2.5-VL text model whose third-last hidden state the pipeline reads
  (so at least two layers), and a ByT5 encoder, run only for text in quotes in the prompt;
- 729 image tokens: the t2v pipeline feeds zeros of shape (729, `image_embed_dim`) and the
  transformer takes a prompt as text-only when they are all zero; the tiny SigLIP sees 54 px in
  2 px patches (27 x 27 = 729 tokens, as 384 px in 14 px patches do in the real one) with a
  hidden size equal to the transformer's `image_embed_dim`;
- `target_size`, the side of the square whose area the pipelines' size buckets share: 640 in
  the 480p release, 64 here. It sets the t2v default size (the 16:9 bucket, 80x48 here, 848x480
  there) and the whole i2v output size, which is the bucket closest to the image's aspect ratio.

The Qwen tokenizer is built in memory: one token per byte (the GPT-2 byte alphabet, no merges)
plus Qwen's chat special tokens, and a Qwen-style chat template. So a prompt costs one token per
byte, and the pipeline's fixed crop of 108 template tokens cuts into the system message here
instead of ending exactly at it; the shapes the transformer sees are the real ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from reelforge.testing.tiny import tiny_t5_encoder

__all__ = ["TinyHunyuanTask", "build_tiny_hunyuan15"]

TinyHunyuanTask = Literal["t2v", "i2v"]

_TASKS = ("t2v", "i2v")
_TARGET_SIZE = 64
# The 16:9 bucket at `_TARGET_SIZE`: what the t2v pipeline renders when given no size.
NATIVE_SIZE = (80, 48)
NATIVE_FPS = 24
# As released for 480p: flow shift 5, classifier-free guidance 6 (the distilled ones use 1).
_FLOW_SHIFT = 5.0
_GUIDANCE_SCALE = 6.0
_LATENT_CHANNELS = 32
# Distinct widths, so that wiring one encoder's output into another's slot fails loudly.
_QWEN_DIM = 32
_BYT5_DIM = 48
_IMAGE_DIM = 24
_IMAGE_SIDE = 54
_IMAGE_PATCH = 2
# Qwen's chat markers; `<|endoftext|>` pads, `<|im_end|>` ends a turn, as in Qwen2.5-VL-Instruct.
_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# Qwen2.5-VL's template for text-only conversations (string or list-of-text contents).
_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_hunyuan15(directory: Path, task: TinyHunyuanTask = "t2v", seed: int = 0) -> Path:
    """Build a tiny random-weight HunyuanVideo-1.5 pipeline for `task` and save it into
    `directory`.

    The same `seed` gives byte-identical weights. Returns `directory`.
    """
    # Imported here so that importing reelforge.engines stays free of torch.
    import torch
    from diffusers import (
        ClassifierFreeGuidance,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideo15ImageToVideoPipeline,
        HunyuanVideo15Pipeline,
    )
    from transformers import ByT5Tokenizer

    if task not in _TASKS:
        raise ValueError(f"unknown tiny HunyuanVideo-1.5 task {task!r}; expected one of {_TASKS}")
    directory = Path(directory)
    tokenizer = _qwen_tokenizer()
    # ByT5 maps bytes to ids, so it needs no vocabulary file.
    tokenizer_2 = ByT5Tokenizer()
    torch.manual_seed(seed)
    text_encoder = _qwen_text_encoder(tokenizer)
    torch.manual_seed(seed + 1)
    text_encoder_2 = tiny_t5_encoder(len(tokenizer_2), _BYT5_DIM, layers=1, gated=True)
    torch.manual_seed(seed + 2)
    vae = _vae()
    torch.manual_seed(seed + 3)
    transformer = _transformer(task)
    components: dict[str, Any] = {
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "text_encoder_2": text_encoder_2,
        "tokenizer_2": tokenizer_2,
        "transformer": transformer,
        "vae": vae,
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=_FLOW_SHIFT),
        "guider": ClassifierFreeGuidance(guidance_scale=_GUIDANCE_SCALE),
    }
    pipeline: Any
    if task == "i2v":
        torch.manual_seed(seed + 4)
        pipeline = HunyuanVideo15ImageToVideoPipeline(
            **components, image_encoder=_image_encoder(), feature_extractor=_feature_extractor()
        )
        # Record the public class name, as the released checkpoint does: without torchvision
        # transformers may swap in a PIL-backed subclass, which would otherwise be written here.
        pipeline.register_to_config(feature_extractor=("transformers", "SiglipImageProcessor"))
    else:
        pipeline = HunyuanVideo15Pipeline(**components)

    pipeline.save_pretrained(directory)
    return directory


def _byte_symbols() -> list[str]:
    """GPT-2's byte-level alphabet: one printable character standing for each of the 256 bytes."""
    printable = {
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    }
    stand_ins = iter(range(256, 512))
    return [chr(byte) if byte in printable else chr(next(stand_ins)) for byte in range(256)]


def _qwen_tokenizer() -> Any:
    from transformers import Qwen2Tokenizer

    vocab = {symbol: index for index, symbol in enumerate(_byte_symbols())}
    for token in _SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    return Qwen2Tokenizer(
        vocab=vocab,
        merges=[],
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        # Declared special so that the template's markers stay one token each.
        extra_special_tokens=["<|im_start|>", "<|im_end|>"],
        chat_template=_CHAT_TEMPLATE,
        # The pipeline crops the template's first tokens, so padding must go on the right.
        padding_side="right",
        model_max_length=32768,
    )


def _qwen_text_encoder(tokenizer: Any) -> Any:
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel

    config = Qwen2_5_VLTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=_QWEN_DIM,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        # Multimodal rotary sections (time, rows, columns) must sum to half the head size.
        rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Qwen2_5_VLTextModel(config)


def _vae() -> Any:
    from diffusers import AutoencoderKLHunyuanVideo15

    # Five levels as released (four 2x downsamplings, the last two also halving time); the
    # deepest width must be at least twice the latent channels (mean and log-variance).
    return AutoencoderKLHunyuanVideo15(
        latent_channels=_LATENT_CHANNELS,
        block_out_channels=(16, 32, 64, 64, 64),
        layers_per_block=1,
        spatial_compression_ratio=16,
        temporal_compression_ratio=4,
    )


def _transformer(task: TinyHunyuanTask) -> Any:
    from diffusers import HunyuanVideo15Transformer3DModel

    return HunyuanVideo15Transformer3DModel(
        in_channels=2 * _LATENT_CHANNELS + 1,
        out_channels=_LATENT_CHANNELS,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=2,
        num_refiner_layers=2,
        mlp_ratio=4.0,
        patch_size=1,
        patch_size_t=1,
        qk_norm="rms_norm",
        text_embed_dim=_QWEN_DIM,
        text_embed_2_dim=_BYT5_DIM,
        image_embed_dim=_IMAGE_DIM,
        # Rotary sections (time, rows, columns) must sum to the head size, as 16 + 56 + 56 = 128.
        rope_axes_dim=(4, 6, 6),
        target_size=_TARGET_SIZE,
        task_type=task,
    )


def _image_encoder() -> Any:
    from transformers import SiglipVisionConfig, SiglipVisionModel

    config = SiglipVisionConfig(
        hidden_size=_IMAGE_DIM,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=_IMAGE_SIDE,
        patch_size=_IMAGE_PATCH,
    )
    return SiglipVisionModel(config)


def _feature_extractor() -> Any:
    from transformers import SiglipImageProcessor

    return SiglipImageProcessor(size={"height": _IMAGE_SIDE, "width": _IMAGE_SIDE})
