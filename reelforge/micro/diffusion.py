"""Gaussian diffusion for the micro model: shifted cosine schedule, x0-prediction, DDIM with CFG.

Time is continuous, t in [0, 1]: x_t = alpha(t) x0 + sigma(t) eps, on a cosine schedule whose
signal-to-noise ratio is divided by SHIFT^2 ("simple diffusion", Hoogeboom et al., 2023). The
shift is large because these clips are redundant: a flat shape covers about a thousand pixels
over sixteen frames, so even at a per-pixel SNR of 1/100 its place can be read off x_t. On
the plain cosine schedule (and at SHIFT = 4) the model therefore almost never had to decide
the layout from the prompt alone; it learnt to copy whatever layout the noise hinted at, and
from pure noise it drew the average clip, a still blob in the middle. At SHIFT = 16 a good
share of training happens where x_t says nothing about the layout, and the prompt must.
SHIFT was tuned on 64-pixel frames; the 32-pixel model, whose clips hold a quarter of the
pixels, kept it without a retune (it scores 100 % on canonical prompts as it is).

The network predicts the clean clip x0 itself, not the noise or v: a clean clip of flat
shapes is simple, per-pixel noise is not (the argument of Li and He, "Back to Basics: Let
Denoising Generative Models Denoise", 2025). With v-prediction an earlier version, whose
packed tokens held four times more values than it had channels, left speckle noise over every
sample. The noise then follows exactly from x_t and x0, and deterministic DDIM steps from
t = 1 to 0 need no extra noise, so a seed fixes the clip. Classifier-free guidance runs the
conditional and unconditional passes as one batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from reelforge.micro.network import MicroNet
from reelforge.micro.text import TextFeatures

__all__ = ["SHIFT", "diffusion_loss", "sample", "schedule", "unshifted_time"]

# Keep t away from exactly 0 and 1, where alpha or sigma vanish.
_T_MIN, _T_MAX = 1e-3, 0.999
# The x0 loss is weighted by 1 + SNR = 1 / sigma^2 (what a v-loss weights it by), capped so
# that nearly clean inputs, where copying the input is almost enough, do not dominate.
_MAX_LOSS_WEIGHT = 5.0


SHIFT = 16.0
"""The cosine schedule's signal-to-noise ratio is divided by SHIFT^2."""


def schedule(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, sigma) for diffusion time `t`, with alpha^2 + sigma^2 = 1."""
    angle = t * (math.pi / 2)
    cos, sin = torch.cos(angle), SHIFT * torch.sin(angle)
    norm = torch.sqrt(cos * cos + sin * sin)
    return cos / norm, sin / norm


def unshifted_time(u: torch.Tensor) -> torch.Tensor:
    """The time t of this schedule with the noise level that the unshifted cosine schedule
    has at time u (the same SNR, cot^2(pi u / 2))."""
    return torch.atan(torch.tan(u * (math.pi / 2)) / SHIFT) * (2 / math.pi)


def diffusion_loss(
    net: MicroNet,
    clean: torch.Tensor,
    text: TextFeatures,
    weight: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Weighted x0-prediction MSE for a batch of clean clips (B, 3, T, H, W) in [-1, 1].

    `weight` (B, 1, T, H, W) emphasises the pixels that matter (the moving shape): on these
    clips the background is most of the image, and an unweighted loss is satisfied long before
    the shape is right.
    """
    batch = clean.shape[0]
    uniform = torch.rand(batch, generator=generator) * (_T_MAX - _T_MIN) + _T_MIN
    # Half the batch at the noise levels of the unshifted cosine schedule, which are mostly
    # low: the shift moves training to where the layout is decided, and without these the
    # model never learnt the shapes' corners (squares came out as circles).
    fine = torch.rand(batch, generator=generator) < 0.5
    t = torch.where(fine, unshifted_time(uniform), uniform)
    noise = torch.randn(clean.shape, generator=generator)
    alpha, sigma = (s.view(batch, 1, 1, 1, 1) for s in schedule(t))
    noisy = alpha * clean + sigma * noise
    by_time = sigma.pow(-2).clamp(max=_MAX_LOSS_WEIGHT)
    predicted = net(noisy, t, text)
    return ((predicted - clean).pow(2) * weight * by_time).mean()


@torch.inference_mode()
def sample(
    net: MicroNet,
    text: TextFeatures,
    null_text: TextFeatures,
    *,
    noise: torch.Tensor,
    steps: int,
    guidance: float,
    first_frame: torch.Tensor | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Denoise `noise` (B, 3, T, H, W) into clips in [-1, 1] for the prompts `text`;
    `null_text` (a batch of one) is guidance's unconditional side.

    `first_frame` (B, 3, H, W), when given, pins frame 0 by replacement: after every step that
    frame is reset to the given image noised to the current level, and the model fills in the
    rest of the clip around it (image-to-video without image-conditioned training).
    `on_step(done, steps)` is called after each denoising step; it may raise to stop.
    """
    batch = noise.shape[0]
    x = noise
    # Step times halfway between uniform in t (coarse steps where the layout is decided) and
    # uniform on the unshifted schedule (fine steps where the shapes' edges are drawn).
    uniform = torch.linspace(_T_MAX, 0.0, steps + 1)
    times = (uniform + unshifted_time(uniform)) / 2
    both_text = TextFeatures.cat([text, null_text.expand(batch)])
    for index in range(steps):
        t_now, t_next = times[index], times[index + 1]
        alpha, sigma = schedule(t_now)
        x0_both = net(torch.cat([x, x]), t_now.repeat(2 * batch), both_text)
        x0_cond, x0_uncond = x0_both.chunk(2)
        x0 = (x0_uncond + guidance * (x0_cond - x0_uncond)).clamp(-1.0, 1.0)
        eps = (x - alpha * x0) / sigma
        alpha_next, sigma_next = schedule(t_next)
        x = alpha_next * x0 + sigma_next * eps
        if first_frame is not None:
            x[:, :, 0] = alpha_next * first_frame + sigma_next * noise[:, :, 0]
        if on_step is not None:
            on_step(index + 1, steps)
    return x.clamp(-1.0, 1.0)
