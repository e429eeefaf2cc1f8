"""Colour words the micro model's vocabulary lacks, read through a colour-name lexicon.

The text encoder is weakest on colour words (see `canonical.py`): its embeddings place
"lemon" next to "grape", and classifying the vocabulary's colour words by them (each from
the others) gets only 70-76 % right. What a colour word means is a colour, and lexicons of
colour names say which: matplotlib ships the xkcd colour survey's 949 names (what some
222,000 people called the colours they were shown) and the 148 CSS4 names. A name found
there is snapped to the world colour of the nearest hue (HSV); an unsaturated one is white
when light and none of the world's colours when dark (the world has no grey or black shapes).

The rule was chosen on the vocabulary's own colour words (`vocabulary.SYNONYMS`, none of the
evaluator's held-out words): of its 99 words the lexicons name, it reads 93 right (93.9 %;
xkcd's names before CSS's, saturation under 0.25 counting as unsaturated), against 84.8 % for
the nearest colour in RGB and 92.9 % for the nearest CIELAB hue. Its misses are shades
between two world colours ("olive" and "pea green" read as yellow, "mauve" as red).
"""

from __future__ import annotations

import colorsys
from functools import cache

from reelforge.micro.world import COLOURS

__all__ = ["lexicon_colour"]

_LEAST_SATURATION = 0.25
"""HSV saturation under which a colour is unsaturated: white when light, none when dark."""
_LEAST_WHITE_VALUE = 0.6
"""HSV value from which an unsaturated colour is white."""


def lexicon_colour(phrase: str) -> str | None:
    """The world colour that the colour name `phrase` ("cobalt", "sea green") denotes, or
    None when no lexicon names it or it is a dark unsaturated colour."""
    key = " ".join(phrase.lower().replace("-", " ").split())
    names = _lexicon()
    rgb = names.get(key) or names.get(key.replace(" ", ""))  # CSS runs words together
    if rgb is None:
        return None
    hue, saturation, value = colorsys.rgb_to_hsv(*rgb)
    if saturation < _LEAST_SATURATION:
        return "white" if value >= _LEAST_WHITE_VALUE else None
    hues = _world_hues()
    return min(hues, key=lambda name: abs((hue - hues[name] + 0.5) % 1.0 - 0.5))


@cache
def _lexicon() -> dict[str, tuple[float, float, float]]:
    """Colour names (lower case, words separated by one space; CSS's run-together names as
    they are) -> RGB in 0..1; xkcd's names win over CSS's where both name a colour."""
    # Imported here: matplotlib takes about 0.1 s to import, and only the micro engine reads it.
    from matplotlib.colors import CSS4_COLORS, XKCD_COLORS, to_rgb

    names = {name: to_rgb(code) for name, code in CSS4_COLORS.items()}
    for name, code in XKCD_COLORS.items():
        names[name.removeprefix("xkcd:").replace("-", " ")] = to_rgb(code)
    return names


@cache
def _world_hues() -> dict[str, float]:
    """The HSV hue (0..1) of each saturated world colour."""
    hues = {}
    for name, rgb in COLOURS.items():
        hue, saturation, _ = colorsys.rgb_to_hsv(*(channel / 255 for channel in rgb))
        if saturation >= _LEAST_SATURATION:
            hues[name] = hue
    return hues
