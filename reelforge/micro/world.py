"""The synthetic world the micro model learns: one flat shape moving across a plain background.

Everything here is procedural and seeded: `Scene` names what a clip shows, `render_clip`
draws it (anti-aliased by 2x supersampling), and the prompt helpers write it in English,
canonically ("a red circle moving left on a black background") or in paraphrase ("a crimson
ball drifting to the left"). The paraphrase vocabulary is split in two: words the trainer sees
and held-out words that only the evaluator uses, so paraphrase scores measure what the text
encoder generalises rather than what the model memorised.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BACKGROUNDS",
    "CLIP_FRAMES",
    "CLIP_SECONDS",
    "CLIP_SIZE",
    "COLOURS",
    "DIRECTIONS",
    "LONGEST_CLIP_SECONDS",
    "SHAPES",
    "Scene",
    "all_scenes",
    "article",
    "canonical_prompt",
    "clip_frames_for",
    "paraphrases",
    "render_clip",
]

CLIP_SIZE = 32
"""Native frame side in pixels (square; the media layer crops to the requested ratio)."""
CLIP_FRAMES = 16
"""Native frames of a 5 s clip, played over the requested duration; a longer request gets
proportionally more frames (`clip_frames_for`), so that 10 s show 10 s of motion."""
CLIP_SECONDS = 5
"""The duration `CLIP_FRAMES` frames stand for."""
# How far the shape moves per frame, as a share of the frame: half the frame per 5 s clip.
_STEP = 0.5 / (CLIP_FRAMES - 1)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 230),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "purple": (150, 60, 200),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"black": (8, 8, 8), "gray": (128, 128, 128)}
SHAPES = ("circle", "square", "triangle")
# How far a clip's path may be shifted, as a share of the frame (see `render_clip`).
_PLACE_JITTER = 1 / 64
# Unit motion per direction in image coordinates (x right, y down).
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
}

# Paraphrase vocabulary: (words used in training, words held out for evaluation).
_COLOUR_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "red": (("scarlet", "bright red"), ("crimson",)),
    "green": (("emerald", "bright green"), ("lime",)),
    "blue": (("azure", "deep blue"), ("cobalt",)),
    "yellow": (("golden", "bright yellow"), ("lemon",)),
    "white": (("snow white", "pale white"), ("ivory",)),
    "purple": (("violet", "deep purple"), ("lavender",)),
}
_SHAPE_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "circle": (("disc", "round dot"), ("ball",)),
    "square": (("block", "box"), ("tile",)),
    "triangle": (("triangular shape", "wedge"), ("pyramid",)),
}
_DIRECTION_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "left": (("sliding to the left", "moving leftward"), ("drifting to the left",)),
    "right": (("sliding to the right", "moving rightward"), ("drifting to the right",)),
    "up": (("rising upward", "moving upward"), ("floating up",)),
    "down": (("falling downward", "moving downward"), ("sinking down",)),
}
_BACKGROUND_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "black": (("on a dark background", "against black"), ("over a pitch-black backdrop",)),
    "gray": (("on a grey background", "against gray"), ("over a slate-grey backdrop",)),
}


@dataclass(frozen=True)
class Scene:
    """What one clip shows; every combination of the four attributes is a valid scene."""

    colour: str
    shape: str
    direction: str
    background: str


def all_scenes() -> list[Scene]:
    """Every scene of the world, in a fixed order (6 x 3 x 4 x 2 = 144)."""
    return [Scene(*combo) for combo in itertools.product(COLOURS, SHAPES, DIRECTIONS, BACKGROUNDS)]


def canonical_prompt(scene: Scene) -> str:
    return (
        f"a {scene.colour} {scene.shape} moving {scene.direction} "
        f"on a {scene.background} background"
    )


def article(word: str) -> str:
    """The indefinite article before `word` ("an amber", "a red"), by its first letter."""
    return "an" if word[0] in "aeiou" else "a"


def paraphrases(scene: Scene, *, held_out: bool) -> list[str]:
    """Every paraphrase of `scene` from the training vocabulary, or from held-out words only."""
    part = 1 if held_out else 0
    prompts = []
    for colour, shape, motion, background in itertools.product(
        _COLOUR_WORDS[scene.colour][part],
        _SHAPE_WORDS[scene.shape][part],
        _DIRECTION_WORDS[scene.direction][part],
        _BACKGROUND_WORDS[scene.background][part],
    ):
        prompts.append(f"{article(colour)} {colour} {shape} {motion} {background}")
    return prompts


LONGEST_CLIP_SECONDS = 10
"""The longest clip the model draws frame for frame (it is trained on 5 s and 10 s clips);
a longer request shows the 10 s clip's frames over its duration."""


def clip_frames_for(seconds: float, frames_per_token: int = 2) -> int:
    """Native frames for a clip of `seconds`: `CLIP_FRAMES` per `CLIP_SECONDS`, rounded to a
    whole number of the model's tokens (`frames_per_token` frames each), from a 5 s clip's
    (a 2 s request gets those, shown faster) to a 10 s clip's (`LONGEST_CLIP_SECONDS`)."""
    clips = min(max(seconds, CLIP_SECONDS), LONGEST_CLIP_SECONDS) / CLIP_SECONDS
    return round(clips * CLIP_FRAMES / frames_per_token) * frames_per_token


def render_clip(
    scene: Scene,
    rng: np.random.Generator,
    *,
    size: int = CLIP_SIZE,
    frames: int = CLIP_FRAMES,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one clip of `scene`: the shape crosses the middle of the frame, from one side to
    the other, with a slightly varied size and path. It moves at one speed whatever the
    clip's length: half the frame over `CLIP_FRAMES` frames (a 5 s clip), from one edge to
    the other over twice as many (10 s), its path centred on the frame either way.

    The variation is kept small on purpose. With starting points spread over the frame, the
    best guess of a clip from the prompt alone (what the model must produce from pure noise)
    is a blur around the centre, and early versions of this model drew just that: a still
    blob in the middle. With the path nearly fixed by the direction, the prompt decides the
    clip, which a model trained for minutes on two cores can learn. The same holds for
    detail: with sizes and places spread over a few pixels, the model's best guess blurred
    every shape by as much, and a blurred square is a rounded one; squares came out as
    circles. Place therefore varies by a sixty-fourth of the frame (half a pixel at the
    model's 32), size by under 4 % either way.

    Returns (frames uint8 (T, H, W, 3), foreground coverage float32 (T, H, W) in 0..1).
    """
    radius = rng.uniform(0.13, 0.14) * size  # half the shape's extent
    dx, dy = DIRECTIONS[scene.direction]
    # Along the motion axis the path is centred on the frame, across it the shape stays in
    # the middle, each give or take a sixty-fourth of the frame.
    jitter = size * _PLACE_JITTER
    steps = np.arange(frames) - (frames - 1) / 2
    along = size / 2 + rng.uniform(-jitter, jitter) + steps * _STEP * size
    across = np.full(frames, size / 2 + rng.uniform(-jitter, jitter))
    if dx:
        centres_x = along if dx > 0 else size - along
        centres_y = across
    else:
        centres_x = across
        centres_y = along if dy > 0 else size - along

    coverage = _shape_coverage(scene.shape, centres_x, centres_y, radius, size)
    colour = np.array(COLOURS[scene.colour], dtype=np.float32)
    background = np.array(BACKGROUNDS[scene.background], dtype=np.float32)
    alpha = coverage[..., None]
    pixels = background * (1.0 - alpha) + colour * alpha
    return np.rint(pixels).astype(np.uint8), coverage


def _shape_coverage(
    shape: str, centres_x: np.ndarray, centres_y: np.ndarray, radius: float, size: int
) -> np.ndarray:
    """Fraction of each pixel the shape covers, per frame, from a 2x supersampled mask."""
    fine = size * 2
    axis = (np.arange(fine, dtype=np.float32) + 0.5) / 2.0  # sample centres in pixel units
    x = axis[None, None, :] - centres_x[:, None, None].astype(np.float32)
    y = axis[None, :, None] - centres_y[:, None, None].astype(np.float32)
    if shape == "circle":
        inside = x * x + y * y <= radius * radius
    elif shape == "square":
        inside = (np.abs(x) <= radius) & (np.abs(y) <= radius)
    elif shape == "triangle":
        # Apex up: the half-width grows linearly from 0 at the top to `radius` at the base.
        depth = (y + radius) / 2.0
        inside = (y >= -radius) & (y <= radius) & (np.abs(x) <= depth)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    mask = inside.astype(np.float32)
    frames = mask.shape[0]
    return mask.reshape(frames, size, 2, size, 2).mean(axis=(2, 4))
