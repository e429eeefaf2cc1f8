"""Tiny random-weight LTX-Video checkpoints, built offline, for tests without a download.

`build_tiny_ltx` assembles an `LTXConditionPipeline` (the class of the LTX-Video 0.9.7
releases, distilled ones included, which serves text- and image-to-video with one set of
weights) from small local configs and `save_pretrained`s it, so the folder loads back through
exactly the `from_pretrained` path a released checkpoint takes. The frames are noise: this
exercises the plumbing (shapes, steps, seeds, progress, the image condition), never quality.

What is kept from the released model, because the pipeline's arithmetic depends on it: the
VAE's compression (32x spatial through a 4x4 pixel patch and three 2x stages, 8x temporal),
so sizes are multiples of 32 and frame counts 8k+1 as on the real model; its timestep
conditioning (the decode takes `decode_timestep` and noise, as 0.9.1+ do); the transformer's
1x1x1 patch. The text encoder is a two-layer T5 with the byte-level ByT5 tokenizer, which needs
no vocabulary file (the real one is T5-XXL with a SentencePiece vocabulary).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reelforge.testing.tiny import tiny_t5_encoder

__all__ = ["build_tiny_ltx"]

# 96x64 is the smallest 3:2 size in whole latent pixels; LTX renders 24-30 fps.
NATIVE_SIZE = (96, 64)
NATIVE_FPS = 30
_LATENT_CHANNELS = 8
_TEXT_DIM = 32


def build_tiny_ltx(directory: Path, seed: int = 0) -> Path:
    """Build a tiny random-weight LTX-Video pipeline and save it into `directory`.

    The same `seed` gives byte-identical weights. Returns `directory`.
    """
    # Imported here so that importing reelforge.engines stays free of torch.
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, LTXConditionPipeline
    from transformers import ByT5Tokenizer

    directory = Path(directory)
    tokenizer = ByT5Tokenizer()
    torch.manual_seed(seed)
    text_encoder = tiny_t5_encoder(len(tokenizer), _TEXT_DIM, layers=2)
    torch.manual_seed(seed + 1)
    vae = _vae()
    torch.manual_seed(seed + 2)
    transformer = _transformer()
    pipeline: Any = LTXConditionPipeline(
        # The condition pipeline sets its own timesteps (or takes the card's list), so the
        # scheduler runs unshifted, as in the 0.9.7 releases.
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
    )
    pipeline.save_pretrained(directory)
    return directory


def _vae() -> Any:
    from diffusers import AutoencoderKLLTXVideo

    levels = 4
    return AutoencoderKLLTXVideo(
        latent_channels=_LATENT_CHANNELS,
        block_out_channels=(8,) * levels,
        decoder_block_out_channels=(8,) * levels,
        layers_per_block=(1,) * (levels + 1),
        decoder_layers_per_block=(1,) * (levels + 1),
        # Three space-time 2x stages after the 4x4 patch: 32x spatial, 8x temporal.
        spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False),
        decoder_inject_noise=(False,) * (levels + 1),
        upsample_residual=(False,) * levels,
        upsample_factor=(1,) * levels,
        timestep_conditioning=True,
        patch_size=4,
        patch_size_t=1,
    )


def _transformer() -> Any:
    from diffusers import LTXVideoTransformer3DModel

    return LTXVideoTransformer3DModel(
        in_channels=_LATENT_CHANNELS,
        out_channels=_LATENT_CHANNELS,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        num_layers=2,
        caption_channels=_TEXT_DIM,
    )
