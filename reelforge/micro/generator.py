"""The micro model at inference: prompts and seeds in, uint8 clips out.

Shared by the `micro` engine (one clip per job) and the evaluator (batches).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reelforge.micro.canonical import PromptCanonicaliser
from reelforge.micro.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint
from reelforge.micro.diffusion import sample
from reelforge.micro.network import MicroNet
from reelforge.micro.text import TextEncoder, TextFeatures
from reelforge.micro.world import clip_frames_for

__all__ = ["DEFAULT_GUIDANCE", "MicroGenerator"]

DEFAULT_GUIDANCE = 2.0
"""Classifier-free guidance scale at the API's default `cfg_scale` of 0.5. The shipped model
draws every canonical prompt right from 1 to 2 (on seeds apart from the evaluator's); at 3 a
few shapes blur (97.9 %)."""


class MicroGenerator:
    """A loaded micro model and its text encoder."""

    default_steps = 20

    def __init__(
        self, net: MicroNet, record: dict[str, Any], text_encoder: TextEncoder | None = None
    ) -> None:
        self.net = net
        self.record = record
        self.text_encoder = text_encoder or TextEncoder()
        self.canonicaliser = PromptCanonicaliser(self.text_encoder)
        # From the checkpoint, not the world's constants: a checkpoint trained at another
        # size (the 64-pixel ones of earlier releases) still loads and samples.
        self.clip_size = net.config.clip_size
        self.clip_frames = net.config.clip_frames
        # Checkpoints trained on 10 s clips too draw longer requests frame for frame; older
        # ones only ever drew `clip_frames`.
        self.draws_long_clips = float(record.get("train", {}).get("long_share", 0.0)) > 0

    def frames_for(self, seconds: float) -> int:
        """Native frames to draw for a clip of `seconds` (`world.clip_frames_for`), or the
        checkpoint's one length when it was trained on no other."""
        if not self.draws_long_clips:
            return self.clip_frames
        return clip_frames_for(seconds, self.net.config.frames_per_token)

    @classmethod
    def from_checkpoint(cls, path: Path = SHIPPED_CHECKPOINT) -> MicroGenerator:
        net, record = load_checkpoint(path)
        return cls(net, record)

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        steps: int | None = None,
        guidance: float = DEFAULT_GUIDANCE,
        negative_prompt: str = "",
        first_frame: np.ndarray | None = None,
        on_step: Callable[[int, int], None] | None = None,
        text: TextFeatures | None = None,
        canonicalise: bool = True,
        frames: int | None = None,
    ) -> np.ndarray:
        """Clips (B, frames, clip_size, clip_size, 3) uint8, one per prompt; `seeds[i]` fixes
        clip i; `frames` defaults to `clip_frames` (a 5 s clip's; see `frames_for`).

        `first_frame` (clip_size, clip_size, 3) uint8 pins every clip's first frame
        (image-to-video). A
        `negative_prompt` replaces the empty text as guidance's unconditional side, so
        guidance steers away from it. `text` is `prompts` already encoded (by
        `text_encoder.encode`), for a caller that needed the embedding first. Unless
        `canonicalise` is False, the model is conditioned on each prompt's canonical form
        (`canonicaliser.canonicalise`: "a crimson disc rising upward against gray" -> "a red
        circle moving up on a gray background"), which it follows far more reliably.
        """
        if text is None:
            if canonicalise:
                prompts = [self.canonicaliser.canonicalise(prompt) for prompt in prompts]
            text = self.text_encoder.encode(list(prompts))
        if negative_prompt.strip():
            null_text = self.text_encoder.encode([negative_prompt])
        else:
            null_text = TextFeatures.empty(1)
        noise = torch.stack(
            [
                torch.randn(
                    (3, frames or self.clip_frames, self.clip_size, self.clip_size),
                    generator=torch.Generator().manual_seed(int(seed) % 2**63),
                )
                for seed in seeds
            ]
        )
        pinned = None
        if first_frame is not None:
            # A copy: the caller's array may be read-only (`np.asarray` of a PIL image is),
            # which `torch.from_numpy` would share, warning (once per worker) into the server log.
            image = torch.tensor(first_frame).permute(2, 0, 1).float() / 127.5 - 1.0
            pinned = image.expand(len(prompts), -1, -1, -1)
        clips = sample(
            self.net,
            text,
            null_text,
            noise=noise,
            steps=steps or self.default_steps,
            guidance=guidance,
            first_frame=pinned,
            on_step=on_step,
        )
        pixels = ((clips + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return pixels.permute(0, 2, 3, 4, 1).numpy()
