"""`reelforge micro train`: train the micro model from scratch on the synthetic world, seeded.

Every batch is rendered fresh (`world.render_clip`), so there is no data set to store; prompts
are the canonical sentence or a training-vocabulary paraphrase, embedded once up front. The
loss weights the moving shape's pixels and a band around them (see
`diffusion.diffusion_loss`); an exponential moving average of the weights is what gets saved.
The defaults reproduce the shipped checkpoint on two CPU cores in about 40 minutes (4500
steps of 32 clips, 40 % of them 10 s clips at half the batch); `--steps 2` is the suite's
smoke run.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from reelforge.micro.checkpoint import save_checkpoint
from reelforge.micro.diffusion import diffusion_loss
from reelforge.micro.network import MicroNet, MicroNetConfig
from reelforge.micro.text import TextEncoder, TextFeatures
from reelforge.micro.vocabulary import vocabulary_paraphrase
from reelforge.micro.world import (
    BACKGROUNDS,
    CLIP_FRAMES,
    COLOURS,
    DIRECTIONS,
    LONGEST_CLIP_SECONDS,
    SHAPES,
    Scene,
    all_scenes,
    canonical_prompt,
    clip_frames_for,
    paraphrases,
    render_clip,
)

__all__ = ["TrainConfig", "train"]


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 4500
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    ema_decay: float = 0.999
    text_dropout: float = 0.1
    """Share of prompts replaced by the empty embedding, which classifier-free guidance needs."""
    canonical_share: float = 0.4
    """Share of prompts given canonically; the rest are training-vocabulary paraphrases."""
    vocabulary_paraphrases: int = 24
    """Paraphrases per scene drawn from the whole vocabulary (`vocabulary.SYNONYMS`), on top
    of the world's sixteen training ones."""
    long_share: float = 0.4
    """Share of steps that train on 10 s clips (twice the frames, at half the batch)."""
    shape_weight: float = 9.0
    """Extra loss weight on pixels the shape covers."""
    halo_band: int = 2
    """Pixels around the shape that get the shape's extra weight too, so that stray marks
    next to it (which make a square read as a circle) cost as much as errors on it."""
    seed: int = 0
    threads: int = 0
    """Torch CPU threads; 0 keeps torch's default (all cores)."""
    save_every: int = 250


class PromptBank:
    """Every training prompt of every scene, embedded once."""

    def __init__(
        self, scenes: list[Scene], encoder: TextEncoder, vocabulary: int = 0, seed: int = 0
    ) -> None:
        self.scenes = scenes
        self.canonical = [canonical_prompt(scene) for scene in scenes]
        rng = np.random.default_rng([seed, 1])  # a stream of its own: batches are unchanged
        self.paraphrases = [
            paraphrases(scene, held_out=False)
            + [vocabulary_paraphrase(scene, rng) for _ in range(vocabulary)]
            for scene in scenes
        ]
        # One row per prompt: every scene's canonical prompt, then its paraphrases in order.
        flat = self.canonical + [p for group in self.paraphrases for p in group]
        self.features = encoder.encode(flat)
        self.per_scene = len(self.paraphrases[0])
        self.empty = TextFeatures.empty(1)

    def paraphrase_index(self, scene_index: int, choice: int) -> int:
        return len(self.scenes) + scene_index * self.per_scene + choice


def train(
    out: Path,
    config: TrainConfig,
    *,
    net_config: MicroNetConfig | None = None,
    log: bool = True,
) -> Path:
    """Train from scratch and write the checkpoint to `out`; returns `out`."""
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    bank = PromptBank(all_scenes(), TextEncoder(), config.vocabulary_paraphrases, config.seed)
    mean, projection = fit_attribute_projection(bank)
    net_config = replace(net_config or MicroNetConfig(), attribute_dim=projection.shape[1])
    net = MicroNet(net_config)
    net.set_attribute_projection(mean, projection)
    ema = copy.deepcopy(net).requires_grad_(False)
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, betas=(0.9, 0.99), weight_decay=0.0
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config))
    record: dict[str, object] = {"train": asdict(config), "samples": 0}
    started = time.monotonic()
    smoothed_loss = None
    for step in range(1, config.steps + 1):
        long = rng.random() < config.long_share
        clips, weights, texts = _batch(bank, config, rng, long=long)
        loss = diffusion_loss(net, clips, texts, weights, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        decay = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for averaged, live in zip(ema.parameters(), net.parameters(), strict=True):
                averaged.lerp_(live, 1.0 - decay)
            for averaged_buffer, live_buffer in zip(ema.buffers(), net.buffers(), strict=True):
                averaged_buffer.copy_(live_buffer)

        value = float(loss.detach())
        smoothed_loss = value if smoothed_loss is None else 0.98 * smoothed_loss + 0.02 * value
        if log and (step % 25 == 0 or step == config.steps):
            elapsed = time.monotonic() - started
            print(
                f"step {step}/{config.steps} loss {smoothed_loss:.4f} "
                f"lr {schedule.get_last_lr()[0]:.2e} "
                f"{step * config.batch_size / elapsed:.1f} clips/s {elapsed / 60:.1f} min",
                flush=True,
            )
        if step % config.save_every == 0 or step == config.steps:
            record.update(
                steps_done=step,
                samples=step * config.batch_size,
                loss=smoothed_loss,
                minutes=(time.monotonic() - started) / 60,
            )
            save_checkpoint(ema, out, record)
    return out


def fit_attribute_projection(bank: PromptBank) -> tuple[torch.Tensor, torch.Tensor]:
    """A linear map from pooled prompt embeddings to the world's attributes, in closed form.

    Per attribute (colour, shape, direction, background) it is Fisher's linear discriminant
    over every training prompt, canonical and paraphrased: the n_classes - 1 directions that
    best separate the attribute's values relative to how much paraphrasing moves a prompt
    (so they carry over to new wording as far as the encoder allows). Columns are scaled to
    unit variance over the bank. Returns (mean (D,), projection (D, 11)).
    """
    pooled = bank.features.pooled.double()
    labels = bank.scenes + [s for s in bank.scenes for _ in range(bank.per_scene)]
    mean = pooled.mean(dim=0)
    centred = pooled - mean
    eye = torch.eye(pooled.shape[1], dtype=torch.float64)
    blocks = []
    for attribute, values in (
        ("colour", COLOURS),
        ("shape", SHAPES),
        ("direction", DIRECTIONS),
        ("background", BACKGROUNDS),
    ):
        names = list(values)
        index = torch.tensor([names.index(getattr(scene, attribute)) for scene in labels])
        means = torch.stack([centred[index == k].mean(dim=0) for k in range(len(names))])
        within = centred - means[index]
        scatter_within = within.T @ within / len(centred) + 1e-4 * eye
        scatter_between = means.T @ means / len(names)
        # Whiten by the within-class scatter, then take the top between-class directions.
        whiten = torch.linalg.inv(torch.linalg.cholesky(scatter_within))
        _, vectors = torch.linalg.eigh(whiten @ scatter_between @ whiten.T)
        blocks.append(whiten.T @ vectors[:, -(len(names) - 1) :])
    projection = torch.cat(blocks, dim=1)
    projection = projection / (centred @ projection).std(dim=0)
    return mean.float(), projection.float()


def _lr_factor(config: TrainConfig):  # type: ignore[no-untyped-def]
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1.0 + float(np.cos(np.pi * min(1.0, progress))))

    return factor


def _batch(
    bank: PromptBank, config: TrainConfig, rng: np.random.Generator, *, long: bool = False
) -> tuple[torch.Tensor, torch.Tensor, TextFeatures]:
    """A fresh batch: clips (B, 3, T, H, W) in [-1, 1], loss weights, prompt features; with
    `long`, half as many 10 s clips (twice the frames) as 5 s ones."""
    clips, weights, texts = [], [], []
    frames_per_clip = clip_frames_for(LONGEST_CLIP_SECONDS) if long else CLIP_FRAMES
    for _ in range(config.batch_size // 2 if long else config.batch_size):
        index = int(rng.integers(len(bank.scenes)))
        frames, coverage = render_clip(bank.scenes[index], rng, frames=frames_per_clip)
        clips.append(frames)
        weights.append(coverage)
        draw = rng.random()
        if draw < config.text_dropout:
            texts.append(bank.empty)
        elif draw < config.text_dropout + config.canonical_share:
            texts.append(bank.features[index])  # canonical prompts come first
        else:
            choice = int(rng.integers(bank.per_scene))
            texts.append(bank.features[bank.paraphrase_index(index, choice)])
    pixels = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
    emphasis = torch.from_numpy(np.stack(weights))[:, None]
    if config.halo_band:
        band = config.halo_band
        # Each pixel takes the largest coverage within `band` pixels (a square neighbourhood).
        emphasis = F.max_pool3d(emphasis, (1, 2 * band + 1, 2 * band + 1), 1, (0, band, band))
    weight = 1.0 + config.shape_weight * emphasis
    return pixels, weight, TextFeatures.cat(texts)
