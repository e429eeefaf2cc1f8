"""How far a prompt is from the micro model's world, measured with the model's own text encoder.

The micro model only knows its synthetic world (`world.py`); given "a city skyline at night"
it still draws a coloured shape moving across a plain background. `WorldReference` holds the
pooled embeddings of the world's prompts, and a prompt whose best cosine similarity to them
is under `FAMILIAR_SIMILARITY` gets a warning (`far_from_world_warning`). The check reuses the
prompt's embedding that generation computes anyway: one (1, 384) x (384, 576) product, well
under a millisecond.

Calibration (all-MiniLM-L6-v2, the shipped encoder), best cosine similarity to the reference:

- canonical prompts and held-out paraphrases (both in the reference): 1.000;
- 288 new mixes of the world's words (per slot a canonical, training or held-out word; two
  per scene, e.g. "a lime circle floating up against black"): 0.622 .. 0.995, 1st
  percentile 0.651, median 0.792;
- 22 hand-written prompts near the world ("a red ball going right", "a square", "blue box
  sliding down on black"): 0.592 .. 0.940;
- 42 foreign prompts ("a cat sleeping on a sofa", "fireworks over a city", "hello", ...):
  0.126 .. 0.540, median 0.326; "A cheerful white raccoon in a library" 0.327, "A red fox in
  the snow" 0.435, "a city skyline at night" 0.346; the nearest, "a red car driving to the
  left" and "a red balloon rising upward in a blue sky", 0.540.

The threshold sits in the gap, at 0.57. It measures wording, not the world's rules: a prompt
in the world's own phrasing with one attribute it lacks ("an orange circle moving left on a
black background", 0.87) passes. Why the held-out paraphrases are in the reference: against
the canonical and training prompts alone they score only 0.460 .. 0.593 (every slot reworded
at once moves a sentence far), which overlaps foreign prompts that reuse the world's words
("A red fox in the snow" 0.470, "a red car driving to the left" 0.540); the model follows
them (see `reelforge micro eval`), so they belong to what it knows. Two training
paraphrases per scene (all first words, all second words) give the reference the training
vocabulary at a fifth of the cost of all sixteen (576 prompts to embed at load, not 2,592;
with all sixteen the mixes' minimum is 0.651 rather than 0.622). The attribute projection
(`MicroNet.attribute_projection`) was tried too and does not separate them: held-out
paraphrases land up to 2.05 (colour) and 2.95 (direction) from the nearest attribute
centre, foreign prompts 1.1 .. 2.0.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from reelforge.micro.world import (
    BACKGROUNDS,
    COLOURS,
    DIRECTIONS,
    SHAPES,
    all_scenes,
    canonical_prompt,
    paraphrases,
)

if TYPE_CHECKING:  # the engine module imports this without torch, which loads in `load`
    import torch

    from reelforge.micro.text import TextEncoder

__all__ = ["FAMILIAR_SIMILARITY", "WorldReference", "far_from_world_warning", "reference_prompts"]

FAMILIAR_SIMILARITY = 0.57
"""A prompt whose best cosine similarity to the world's prompts is below this is far from
what the model knows (see the calibration above)."""

_REAL_MODEL = "wan2.2-ti2v-5b"
_PROMPT_SHOWN_CHARS = 80


def reference_prompts() -> list[str]:
    """The world's prompts the check compares against: per scene, the canonical prompt, its
    held-out paraphrase and two training paraphrases (576 in all)."""
    prompts = []
    for scene in all_scenes():
        training = paraphrases(scene, held_out=False)
        prompts += [canonical_prompt(scene), *paraphrases(scene, held_out=True)]
        prompts += [training[0], training[-1]]
    return prompts


class WorldReference:
    """The pooled embeddings of the world's prompts; built once per engine."""

    def __init__(self, embeddings: torch.Tensor) -> None:
        self.embeddings = embeddings  # (N, 384) unit vectors

    @classmethod
    def build(cls, encoder: TextEncoder) -> WorldReference:
        return cls(encoder.embed(reference_prompts()))

    def similarity(self, pooled: torch.Tensor) -> float:
        """The best cosine similarity of one pooled prompt embedding (384,) to the world's."""
        return float((self.embeddings @ pooled).max())


def far_from_world_warning(prompt: str, similarity: float) -> str | None:
    """What to tell the user when `prompt` (of that `similarity`) is far from the world;
    None when it is not."""
    if similarity >= FAMILIAR_SIMILARITY:
        return None
    shown = " ".join(prompt.split())
    if len(shown) > _PROMPT_SHOWN_CHARS:
        shown = shown[: _PROMPT_SHOWN_CHARS - 3] + "..."
    return (
        f"the micro model knows one {_listed(COLOURS)} {_listed(SHAPES)} moving "
        f"{'/'.join(DIRECTIONS)} on a {_listed(BACKGROUNDS)} background; {shown!r} is far "
        f"from that (similarity {similarity:.2f}, below {FAMILIAR_SIMILARITY}): the result "
        f"will not follow it; a real model (`reelforge models pull {_REAL_MODEL}`) renders "
        "free-form prompts"
    )


def _listed(names: Iterable[str]) -> str:
    words = list(names)
    return ", ".join(words[:-1]) + f" or {words[-1]}"
