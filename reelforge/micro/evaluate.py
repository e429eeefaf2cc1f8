"""`reelforge micro eval`: measure what generated clips show, by pixel analysis alone.

For each clip: the background is the median border colour; the foreground is every pixel far
from it; the colour is the foreground's median, snapped to the nearest world colour; the
direction is the dominant axis and sign of the foreground centroid's path; the shape comes from
the foreground's fill of its bounding box (square ~1, circle ~0.79, triangle ~0.5) and the
triangle's narrow top. Clips under 64 pixels a side (the model's are 32) are first scaled up
bilinearly, so that fill is measured finely enough. Held-out seeds (never used in training,
which draws from one seeded stream) and held-out paraphrase vocabulary make the score honest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from reelforge.micro.world import (
    BACKGROUNDS,
    CLIP_SECONDS,
    COLOURS,
    LONGEST_CLIP_SECONDS,
    Scene,
    all_scenes,
    canonical_prompt,
    paraphrases,
)

__all__ = ["ClipReading", "EvalReport", "evaluate", "read_clip"]

# Foreground threshold: Euclidean RGB distance from the background colour.
_FOREGROUND_DISTANCE = 60.0
# A frame's foreground must cover at least this many pixels to count for shape and motion.
_MIN_PIXELS = 12
LONG_TRAVEL = 0.75
"""Least share of the frame a 10 s clip's shape must cross (1.5 times a 5 s clip's)."""
# Clips are read at no less than this size. The fill of a shape's bounding box, which tells
# shapes apart, is too coarse on the model's 32-pixel frames: thresholded there, 3 of 432
# rendered (ground-truth) circles read as squares or triangles; bilinearly doubled, none do.
_READ_SIZE = 64


@dataclass(frozen=True)
class ClipReading:
    """What pixel analysis saw in one clip; None where it could not tell. `travel` is how
    far the shape moved, first to last frame, along its direction, as a share of the frame;
    `halves` are the directions read in the clip's first and second halves."""

    colour: str | None
    shape: str | None
    direction: str | None
    background: str
    travel: float = 0.0
    halves: tuple[str | None, str | None] = (None, None)

    def matches(self, scene: Scene) -> dict[str, bool]:
        return {
            "colour": self.colour == scene.colour,
            "shape": self.shape == scene.shape,
            "direction": self.direction == scene.direction,
        }

    def matches_long(self, scene: Scene) -> dict[str, bool]:
        """`matches` for a 10 s clip, whose direction counts only when the shape moves that
        way in both halves and at least `LONG_TRAVEL` of the frame in all (the world's 10 s
        clips cross 0.86-0.92 of it; a 5 s clip, slowed down or not, crosses 0.5)."""
        hits = self.matches(scene)
        hits["direction"] = (
            hits["direction"]
            and self.halves == (scene.direction, scene.direction)
            and self.travel >= LONG_TRAVEL
        )
        return hits


def read_clip(frames: np.ndarray) -> ClipReading:
    """Analyse a uint8 clip (T, H, W, 3); clips under 64 pixels a side are first scaled up."""
    pixels = _scaled_up(frames.astype(np.float32), _READ_SIZE)
    border = np.concatenate(
        [pixels[:, 0], pixels[:, -1], pixels[:, :, 0], pixels[:, :, -1]], axis=1
    ).reshape(-1, 3)
    background_rgb = np.median(border, axis=0)
    background = _nearest(background_rgb, BACKGROUNDS)
    distance = np.linalg.norm(pixels - background_rgb, axis=-1)
    foreground = distance > _FOREGROUND_DISTANCE  # (T, H, W)
    counts = foreground.sum(axis=(1, 2))
    usable = counts >= _MIN_PIXELS
    if not usable.any():
        return ClipReading(None, None, None, background)

    colour = _nearest(np.median(pixels[foreground], axis=0), COLOURS)
    shape = _read_shape(foreground[usable])
    direction = _read_direction(foreground, usable)
    half = len(frames) // 2
    halves = (
        _read_direction(foreground[:half], usable[:half]),
        _read_direction(foreground[half:], usable[half:]),
    )
    return ClipReading(colour, shape, direction, background, _travel(foreground, usable), halves)


def _travel(foreground: np.ndarray, usable: np.ndarray) -> float:
    """How far the foreground's centroid moves from the first usable frame to the last, along
    the axis it moves most on, as a share of the frame's side."""
    first, last = np.flatnonzero(usable)[[0, -1]]
    start = np.array(np.nonzero(foreground[first])).mean(axis=1)
    end = np.array(np.nonzero(foreground[last])).mean(axis=1)
    return float(np.abs(end - start).max() / foreground.shape[1])


def _scaled_up(pixels: np.ndarray, size: int) -> np.ndarray:
    """`pixels` (T, H, W, 3) scaled up bilinearly by the smallest whole factor that makes the
    shorter side at least `size`; unchanged if it already is."""
    factor = -(-size // min(pixels.shape[1:3]))
    if factor <= 1:
        return pixels
    frames = torch.from_numpy(pixels).permute(0, 3, 1, 2)
    scaled = F.interpolate(frames, scale_factor=factor, mode="bilinear", align_corners=False)
    return scaled.clamp(0, 255).round().permute(0, 2, 3, 1).numpy()


def _nearest(rgb: np.ndarray, table: dict[str, tuple[int, int, int]]) -> str:
    names = list(table)
    distances = [float(np.linalg.norm(rgb - np.array(table[name]))) for name in names]
    return names[int(np.argmin(distances))]


def _read_shape(masks: np.ndarray) -> str:
    fills, asymmetries = [], []
    for mask in masks:
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        box = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        if min(box.shape) < 4:
            continue
        fills.append(box.mean())
        quarter = max(1, box.shape[0] // 4)
        asymmetries.append(box[-quarter:].mean() - box[:quarter].mean())
    if not fills:
        return "unknown"
    fill, asymmetry = float(np.median(fills)), float(np.median(asymmetries))
    if asymmetry > 0.3:
        return "triangle"
    if fill > 0.89:
        return "square"
    return "circle"


def _read_direction(foreground: np.ndarray, usable: np.ndarray) -> str | None:
    frames = np.flatnonzero(usable)
    if len(frames) < 2:
        return None
    ys, xs = [], []
    for index in frames:
        rows, cols = np.nonzero(foreground[index])
        ys.append(rows.mean())
        xs.append(cols.mean())
    # Least-squares slope of the centroid path, in pixels per frame.
    slope_x = float(np.polyfit(frames, xs, 1)[0])
    slope_y = float(np.polyfit(frames, ys, 1)[0])
    if max(abs(slope_x), abs(slope_y)) < 0.2:
        return "still"
    if abs(slope_x) >= abs(slope_y):
        return "right" if slope_x > 0 else "left"
    return "down" if slope_y > 0 else "up"


@dataclass
class EvalReport:
    """Accuracy per attribute and all three together, for one prompt set."""

    name: str
    clips: int = 0
    colour: int = 0
    shape: int = 0
    direction: int = 0
    all_three: int = 0

    def add(self, hits: dict[str, bool]) -> None:
        self.clips += 1
        self.colour += hits["colour"]
        self.shape += hits["shape"]
        self.direction += hits["direction"]
        self.all_three += all(hits.values())

    def line(self) -> str:
        def pct(value: int) -> str:
            return f"{100.0 * value / max(1, self.clips):5.1f} %"

        return (
            f"{self.name:<22} {self.clips:4d} clips  colour {pct(self.colour)}  "
            f"shape {pct(self.shape)}  direction {pct(self.direction)}  "
            f"all three {pct(self.all_three)}"
        )

    @property
    def all_three_share(self) -> float:
        return self.all_three / max(1, self.clips)


GenerateBatch = Callable[[Sequence[str], Sequence[int], float], np.ndarray]
"""(prompts, seeds, seconds) -> uint8 clips (B, T, H, W, 3) of that duration."""


def evaluate(
    generate: GenerateBatch,
    *,
    seeds_per_scene: int = 1,
    first_seed: int = 1_000_000,
    batch_size: int = 16,
    paraphrase: bool = True,
    long_clips: bool = True,
) -> list[EvalReport]:
    """Score every canonical prompt (and one held-out paraphrase per scene) on held-out seeds,
    as 5 s clips; with `long_clips`, every canonical prompt as a 10 s clip too, scored by
    `ClipReading.matches_long`."""
    scenes = all_scenes()
    canonical = [(scene, canonical_prompt(scene)) for scene in scenes]
    sets: list[tuple[str, list[tuple[Scene, str]], float]] = [
        ("canonical", canonical, CLIP_SECONDS)
    ]
    if paraphrase:
        rng = np.random.default_rng(first_seed)
        held_out = []
        for scene in scenes:
            options = paraphrases(scene, held_out=True)
            held_out.append((scene, options[int(rng.integers(len(options)))]))
        sets.append(("held-out paraphrases", held_out, CLIP_SECONDS))
    if long_clips:
        sets.append(("canonical, 10 s", canonical, LONGEST_CLIP_SECONDS))

    reports = []
    seed = first_seed
    for name, items, seconds in sets:
        report = EvalReport(name)
        jobs = [(scene, prompt) for scene, prompt in items for _ in range(seeds_per_scene)]
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            seeds = list(range(seed, seed + len(chunk)))
            seed += len(chunk)
            clips = generate([prompt for _, prompt in chunk], seeds, seconds)
            for (scene, _), clip in zip(chunk, clips, strict=True):
                reading = read_clip(clip)
                report.add(
                    reading.matches_long(scene)
                    if seconds > CLIP_SECONDS
                    else reading.matches(scene)
                )
        reports.append(report)
    return reports
