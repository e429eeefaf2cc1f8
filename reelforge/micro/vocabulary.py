"""The micro model's enlarged vocabulary: common English synonyms of each attribute value.

`SYNONYMS` is what `canonical.PromptCanonicaliser` compares a prompt's words with. It was
written as a user would word the world, from general English: the basic colour terms and
their common shade names (the kind a thesaurus entry for "red" or "blue" lists, and the
everyday X11/CSS colour names grouped by hue), everyday names for a round, four-sided and
three-sided flat shape, direction adverbs and verbs of rising and falling, and words for a
dark or grey backdrop. It holds the canonical word and the training paraphrase words of
`world.py`, and none of the held-out words (nor any compound of them, nor the other words of
the held-out phrases: "pitch", "slate", "drifting", "floating", "sinking", "backdrop"): those
only the evaluator uses, so that `reelforge micro eval` measures what the encoder generalises.
Multi-word entries are matched as word pairs; hyphens count as spaces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reelforge.micro.world import article

if TYPE_CHECKING:
    import numpy as np

    from reelforge.micro.world import Scene

__all__ = [
    "ATTRIBUTES",
    "DEFINITION_SHAPE_WORDS",
    "SYNONYMS",
    "Vocabulary",
    "vocabulary_paraphrase",
]

ATTRIBUTES = ("colour", "shape", "direction", "background")

_WORDS: dict[str, dict[str, str]] = {
    "colour": {
        "red": (
            "red, scarlet, bright red, ruby, cherry, vermilion, carmine, cardinal, maroon, "
            "burgundy, claret, cerise, garnet, rose, ruddy, reddish, blood red, brick red, fire "
            "red, ruby red, cherry red, tomato red, wine red"
        ),
        "green": (
            "green, emerald, bright green, jade, olive, mint, sage, moss, verdant, viridian, "
            "greenish, pine, fern, shamrock, clover, grassy, leafy, forest green, grass green, "
            "leaf green, kelly green, bottle green, sea green, apple green, pea green, jungle "
            "green"
        ),
        "blue": (
            "blue, azure, deep blue, navy, sapphire, cerulean, ultramarine, denim, cornflower, "
            "bluish, sky blue, royal blue, baby blue, powder blue, steel blue, midnight blue, "
            "navy blue, ocean blue, sea blue, electric blue, sapphire blue"
        ),
        "yellow": (
            "yellow, golden, bright yellow, gold, amber, canary, mustard, saffron, sunflower, "
            "butter, honey, buttercup, daffodil, dandelion, goldenrod, maize, blond, flaxen, "
            "straw, yellowish, sunny, sunshine yellow"
        ),
        "white": (
            "white, snow white, pale white, snowy, snow, milky, milk white, pearl, pearly, cream, "
            "creamy, alabaster, chalk, chalky, whitish, frost, frosty, porcelain, linen, bone "
            "white, off white, pure white, paper white"
        ),
        "purple": (
            "purple, violet, deep purple, mauve, plum, magenta, amethyst, lilac, orchid, grape, "
            "mulberry, aubergine, eggplant, purplish, heliotrope, fuchsia, royal purple, plum "
            "purple, grape purple"
        ),
    },
    "shape": {
        "circle": (
            "circle, disc, round dot, disk, dot, ring, orb, sphere, globe, round, spot, hoop, "
            "bubble, circular, round shape, circular shape"
        ),
        "square": (
            "square, block, box, cube, rectangle, quadrilateral, quad, boxy, squared, square "
            "shape, boxy shape, four-sided shape"
        ),
        "triangle": (
            "triangle, triangular shape, wedge, delta, trigon, arrowhead, triangular, three-sided "
            "shape"
        ),
    },
    "direction": {
        "left": ("left, leftward, leftwards, westward, westwards"),
        "right": ("right, rightward, rightwards, eastward, eastwards"),
        "up": (
            "up, upward, upwards, rising, ascending, climbing, lifting, soaring, skyward, going up"
        ),
        "down": (
            "down, downward, downwards, falling, descending, dropping, plunging, plummeting, "
            "going down"
        ),
    },
    "background": {
        "black": ("black, dark, ebony, jet, jet black, inky, coal, night, blackness"),
        "gray": (
            "gray, grey, silver, ash, ashen, pewter, smoky, greyish, grayish, dove grey, mid "
            "grey, neutral grey"
        ),
    },
}

DEFINITION_SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("spherical",),
    "square": ("rectangular",),
}
"""Words dictionary definitions describe a shape with that `SYNONYMS` lacks ("rectangular
block of clay", "an object with a spherical shape"), which `canonical.PromptCanonicaliser`
reads definitions with besides it. They are kept out of `SYNONYMS` because the trainer draws
its paraphrases from it: a word added there changes the training prompts, and so what
`reelforge micro train` reproduces. With them, 19 rather than 16 of the vocabulary's 28
one-word shape synonyms are read by their definitions (each left out in turn, all right),
and 34 rather than 28 of 45 everyday objects are read right, definitions then embeddings."""

Vocabulary = dict[str, dict[str, tuple[str, ...]]]
"""Per attribute, per value: its words, the canonical one first."""

SYNONYMS: Vocabulary = {
    attribute: {
        value: tuple(word.strip() for word in words.split(",")) for value, words in values.items()
    }
    for attribute, values in _WORDS.items()
}
"""The micro world's vocabulary: what the canonicaliser reads and the trainer words from."""


# Verbs of motion for direction words that are not verbs themselves ("moving leftward");
# none of the evaluator's held-out ones ("drifting", "floating", "sinking").
_MOTION_VERBS = ("moving", "sliding", "gliding", "heading", "travelling", "going")
_BACKGROUND_PHRASES = ("on a {} background", "against {}", "on {}", "against a {} background")


def vocabulary_paraphrase(scene: Scene, rng: np.random.Generator, *, keep: float = 0.5) -> str:
    """One random wording of `scene` from `SYNONYMS`: each attribute keeps its canonical word
    with probability `keep` (so the trainer sees what the canonicaliser hands the model when
    it reads all but one word of a prompt: canonical words around an unread one), else takes
    a random synonym; the motion and background are phrased in one of a few ways."""

    def word(attribute: str) -> str:
        words = SYNONYMS[attribute][getattr(scene, attribute)]
        return words[0] if rng.random() < keep else words[int(rng.integers(len(words)))]

    colour, shape, direction, background = (word(a) for a in ATTRIBUTES)
    if direction.endswith("ing") or direction.startswith("going "):
        motion = direction  # "rising", "going up"
    else:
        verb = _MOTION_VERBS[int(rng.integers(len(_MOTION_VERBS)))]
        to_the = direction in ("left", "right") and rng.random() < 0.5
        motion = f"{verb} to the {direction}" if to_the else f"{verb} {direction}"
    place = _BACKGROUND_PHRASES[int(rng.integers(len(_BACKGROUND_PHRASES)))]
    place = place.replace("a {}", f"{article(background)} {{}}").format(background)
    return f"{article(colour)} {colour} {shape} {motion} {place}"
