"""The micro model's denoiser: a small factorised space-time U-Net over packed pixel patches.

Why this shape: on two CPU cores (about 50 GFLOP/s) a latent autoencoder is the training
bottleneck, so the model works in pixel space, made cheap by lossless packing instead of a
learned VAE: each 2-frame x 4x4-pixel block of the clip becomes one 96-value token, so a
16x32x32 clip is an 8x8x8 grid.

Why 32 pixels and not 64: a token holds no more values than the first level has channels
(96), so the input's detail can pass through the network. The first version packed 2x8x8
blocks of 64-pixel frames into 384-value tokens at the same width; it never learnt to read
its input's detail (its error along a shape's outline was 0.13 both on pure noise and on a
nearly clean input), so it drew every shape as a template blurred by 2-3 pixels, and its
squares read as circles: 68.8 % of canonical prompts right after 2000 steps, against 79 % for
this one after 1000 and 100 % after 4000.

Convolutions are factorised into a spatial (1x3x3) and a temporal (3x1x1) part, and one
space-time attention layer at the coarsest level (8 x 4x4 tokens) lets every frame see the
whole clip, which is what consistent motion needs. The pooled prompt embedding and diffusion
time condition every block by scale and shift (FiLM); cross-attention to the prompt's tokens,
at both levels, carries the words that the pooled vector blurs (see `text.py`); fixed
coordinate features tell each token its frame and place. About 0.5 GMAC per clip.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from reelforge.micro.text import TextFeatures
from reelforge.micro.world import CLIP_FRAMES, CLIP_SIZE

__all__ = ["MicroNet", "MicroNetConfig"]


@dataclass(frozen=True)
class MicroNetConfig:
    """Architecture hyper-parameters; stored next to the weights in the checkpoint."""

    text_dim: int = 384
    patch: int = 4
    """Pixels per side packed into one token."""
    frames_per_token: int = 2
    """Consecutive frames packed into one token."""
    channels: tuple[int, ...] = (96, 160)
    cond_dim: int = 256
    attention_heads: int = 4
    groups: int = 16
    clip_frames: int = CLIP_FRAMES
    clip_size: int = CLIP_SIZE
    """Frames and frame side the model is trained on: the world's, unless a caller builds
    another (the generator and engine read them from the checkpoint)."""
    attribute_dim: int = 0
    """Width of the fixed linear projection of the pooled prompt onto the world's attributes
    (`set_attribute_projection`, fitted by the trainer); 0 for none."""
    head_hidden: int = 384
    """Width of the hidden layer of the per-token output head; 0 for a linear head."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> MicroNetConfig:
        values = dict(data)
        values["channels"] = tuple(values["channels"])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


def _zero(layer: nn.Conv3d | nn.Linear) -> None:
    """Start `layer` at zero, so the residual branch it ends begins as the identity."""
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of diffusion time `t` in [0, 1], shaped (batch, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device) / half)
    angles = t[:, None].float() * 1000.0 * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def coordinate_features(grid: tuple[int, int, int], base_frames: int | None = None) -> torch.Tensor:
    """(1, 23, T, H, W): where each token is, as fixed features.

    Per axis (frame, row, column) the coordinate u in [-1, 1] and sin/cos(pi k u), k = 1, 2;
    the frame's u is measured from the clip's middle in units of half a `base_frames`-token
    clip (the 5 s clip's, which spans -1..1), so that a longer clip's tokens reach further
    out (a 10 s clip's -2.1..2.1) and each token's time from the middle means the same
    whatever the clip's length; the shape's place depends on nothing else;
    then the products of the frame's odd features (u, sin(pi u)) with the rows' and columns'.
    Those products are what motion needs: "right" and "left" put the shape at the same
    places, in opposite order, so only a feature odd in both time and space tells them apart
    (a model without them, on a less shifted noise schedule, learnt which axis a prompt moves
    along but not the sign).
    """
    axes = [torch.linspace(-1.0, 1.0, size) for size in grid]
    base = base_frames or grid[0]
    axes[0] = (
        (torch.arange(grid[0], dtype=torch.float32) - (grid[0] - 1) / 2) * 2 / max(1, base - 1)
    )
    frame, row, column = torch.meshgrid(*axes, indexing="ij")
    features = []
    for u in (frame, row, column):
        features.append(u)
        for k in (1, 2):
            features += [torch.sin(math.pi * k * u), torch.cos(math.pi * k * u)]
    for time_odd in (frame, torch.sin(math.pi * frame)):
        for space in (row, column):
            features += [time_odd * space, time_odd * torch.sin(math.pi * space)]
    return torch.stack(features)[None]


class ResBlock(nn.Module):
    """Spatial conv, FiLM by the condition, temporal conv; residual."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, in_ch), in_ch)
        self.spatial = nn.Conv3d(in_ch, out_ch, (1, 3, 3), padding=(0, 1, 1))
        self.film = nn.Linear(cond_dim, out_ch * 2)
        self.norm2 = nn.GroupNorm(min(groups, out_ch), out_ch)
        self.temporal = nn.Conv3d(out_ch, out_ch, (3, 1, 1), padding=(1, 0, 0))
        self.skip = nn.Conv3d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        _zero(self.temporal)  # each block starts as a purely spatial one

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.spatial(F.silu(self.norm1(x)))
        scale, shift = self.film(cond)[:, :, None, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1.0 + scale) + shift
        h = h + self.temporal(F.silu(h))
        return self.skip(x) + h


class SpaceTimeAttention(nn.Module):
    """Self-attention over every (frame, y, x) position of a small feature map."""

    def __init__(self, channels: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.qkv = nn.Linear(channels, channels * 3)
        self.out = nn.Linear(channels, channels)
        _zero(self.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, N, C)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(-1, (self.heads, channels // self.heads)).transpose(1, 2)

        attended = F.scaled_dot_product_attention(split(q), split(k), split(v))
        attended = attended.transpose(1, 2).flatten(2)
        update = self.out(attended).transpose(1, 2).reshape(x.shape)
        return x + update


class CrossAttention(nn.Module):
    """Every position of a feature map attends to the prompt's tokens, plus a learned null
    token that keeps the softmax defined for the empty prompt."""

    def __init__(self, channels: int, text_dim: int, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(text_dim, channels * 2)
        self.null = nn.Parameter(torch.randn(1, 1, text_dim) * 0.02)
        self.out = nn.Linear(channels, channels)
        _zero(self.out)

    def forward(self, x: torch.Tensor, text: TextFeatures) -> torch.Tensor:
        batch, channels = x.shape[:2]
        queries = self.q(self.norm(x).flatten(2).transpose(1, 2))  # (B, N, C)
        keys_in = torch.cat([self.null.expand(batch, -1, -1), text.tokens], dim=1)
        keep = torch.cat([torch.ones_like(text.mask[:, :1]), text.mask], dim=1)
        k, v = self.kv(keys_in).chunk(2, dim=-1)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(-1, (self.heads, channels // self.heads)).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            split(queries), split(k), split(v), attn_mask=keep[:, None, None, :]
        )
        update = self.out(attended.transpose(1, 2).flatten(2)).transpose(1, 2)
        return x + update.reshape(x.shape)


class MicroNet(nn.Module):
    """Predicts the clean clip x0 for a noisy clip (B, 3, T, 32, 32) in [-1, 1]: T is 16 for
    a 5 s clip, the trained length, or any other even count (32 for 10 s)."""

    # Buffers (fixed, saved with the weights), declared for the type checker.
    coordinates: torch.Tensor
    text_mean: torch.Tensor
    attribute_projection: torch.Tensor

    def __init__(self, config: MicroNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MicroNetConfig()
        cond_dim, groups = config.cond_dim, config.groups
        pixels = 3 * config.frames_per_token * config.patch**2
        widths = config.channels
        self.time_mlp = nn.Sequential(
            nn.Linear(cond_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim)
        )
        self.text_mlp = nn.Sequential(
            nn.Linear(config.text_dim + config.attribute_dim, cond_dim),
            nn.SiLU(),
            nn.Linear(cond_dim, cond_dim),
        )
        # Sentence embeddings of prompts that differ only in "left" and "right" are 0.98
        # cosine-similar. A projection fitted in closed form on the training prompts
        # (`train.py`) spreads each attribute over unit-variance features, so a direction is
        # as plain to the model as a colour; it is part of the checkpoint.
        self.register_buffer("text_mean", torch.zeros(config.text_dim))
        self.register_buffer(
            "attribute_projection", torch.zeros(config.text_dim, config.attribute_dim)
        )
        grid = (
            config.clip_frames // config.frames_per_token,
            config.clip_size // config.patch,
            config.clip_size // config.patch,
        )
        # Every token's (frame, y, x) as fixed features, projected on a path of their own and
        # added to the pixels' projection: from pure noise, the model's best guess of the clip
        # depends only on the prompt and on where and when each token is, so these must not
        # be drowned by the noise in the pixels' projection.
        self.register_buffer("coordinates", coordinate_features(grid), persistent=False)
        self.position = nn.Conv3d(self.coordinates.shape[1], widths[0], 1)
        self.stem = nn.Conv3d(pixels, widths[0], 1)
        self.down_blocks = nn.ModuleList()
        self.down_cross = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        for index, width in enumerate(widths):
            previous = widths[max(0, index - 1)]
            self.down_blocks.append(ResBlock(previous, width, cond_dim, groups))
            self.down_cross.append(
                CrossAttention(width, config.text_dim, config.attention_heads, groups)
            )
            if index < len(widths) - 1:
                self.downsamples.append(
                    nn.Conv3d(width, width, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
                )
        self.mid_block = ResBlock(widths[-1], widths[-1], cond_dim, groups)
        self.attention = SpaceTimeAttention(widths[-1], config.attention_heads, groups)
        self.mid_cross = CrossAttention(widths[-1], config.text_dim, config.attention_heads, groups)
        self.mid_block2 = ResBlock(widths[-1], widths[-1], cond_dim, groups)
        self.up_blocks = nn.ModuleList()
        for index in reversed(range(len(widths))):
            above = widths[min(len(widths) - 1, index + 1)]
            self.up_blocks.append(ResBlock(above + widths[index], widths[index], cond_dim, groups))
        self.head_norm = nn.GroupNorm(min(groups, widths[0]), widths[0])
        # The head turns each token's features into its 2x4x4 pixels. It has a hidden layer
        # because the 384-value tokens of the first version needed one (a linear head could
        # draw no more pixel patterns per token than it had input features); at 96 values it
        # is kept, for about a twelfth of the compute.
        output = nn.Conv3d(config.head_hidden or widths[0], pixels, 1)
        _zero(output)
        self.head: nn.Module = output
        if config.head_hidden:
            self.head = nn.Sequential(
                nn.Conv3d(widths[0], config.head_hidden, 1), nn.SiLU(), output
            )

    def set_attribute_projection(self, mean: torch.Tensor, projection: torch.Tensor) -> None:
        """Install the fitted projection: (text_dim,) mean and (text_dim, attribute_dim)."""
        self.text_mean.copy_(mean)
        self.attribute_projection.copy_(projection)

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: TextFeatures) -> torch.Tensor:
        time = self.time_mlp(timestep_embedding(t, self.config.cond_dim))
        attributes = (text.pooled - self.text_mean) @ self.attribute_projection
        cond = F.silu(time + self.text_mlp(torch.cat([text.pooled, attributes], dim=1)))
        h = self.stem(self.pack(x)) + self.position(self._coordinates(x.shape[2]))

        skips = []
        for index, (block, cross) in enumerate(zip(self.down_blocks, self.down_cross, strict=True)):
            h = cross(block(h, cond), text)
            skips.append(h)
            if index < len(self.downsamples):
                h = self.downsamples[index](h)
        h = self.mid_block(h, cond)
        h = self.mid_cross(self.attention(h), text)
        h = self.mid_block2(h, cond)
        for block in self.up_blocks:
            skip = skips.pop()
            if h.shape[-1] != skip.shape[-1]:
                h = F.interpolate(h, size=skip.shape[2:], mode="nearest")
            h = block(torch.cat([h, skip], dim=1), cond)

        return self.unpack(self.head(F.silu(self.head_norm(h))))

    def _coordinates(self, frames: int) -> torch.Tensor:
        """The coordinate features of a clip of `frames` frames: the buffer's for the trained
        length, computed for another (a 10 s clip's)."""
        tokens = frames // self.config.frames_per_token
        if tokens == self.coordinates.shape[2]:
            return self.coordinates
        grid = (tokens, *self.coordinates.shape[3:])
        base = self.coordinates.shape[2]
        return coordinate_features(grid, base).to(self.coordinates.device)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, 3*k*p*p, T/k, H/p, W/p), losslessly."""
        p, k = self.config.patch, self.config.frames_per_token
        b, c, t, h, w = x.shape
        x = x.reshape(b, c, t // k, k, h // p, p, w // p, p)
        x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)  # channel-like axes first
        return x.reshape(b, c * k * p * p, t // k, h // p, w // p)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of `pack`."""
        p, k = self.config.patch, self.config.frames_per_token
        b, _, tt, hh, ww = x.shape
        x = x.reshape(b, 3, k, p, p, tt, hh, ww)
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
        return x.reshape(b, 3, tt * k, hh * p, ww * p)
