"""What a served model can do: declared by its registry entry, checked at submit time.

A registry entry may declare any of these keys next to `engine` (or `catalog`):

    [models."my/wan-i2v"]
    catalog = "wan2.1-i2v-14b-720p"
    tasks = ["i2v"]            # t2v (text to video), i2v (image to video), or both
    max_seconds = 5            # the longest clip a request may ask for
    camera_moves = false       # whether a requested camera move is honoured
    negative_prompt = true     # whether a negative prompt is honoured

A key left out comes from, first to last: the tasks the embedded defaults (`defaults.toml`)
declare for the same id (the two Kling ids are text-to-video and image-to-video whichever
engine serves them: their task is part of the public contract), the catalog model's tasks,
then the engine's defaults (`ENGINE_CAPABILITIES`). `--model` overrides declare nothing, so
they get exactly those.

A dialect reads them when it parses a request: an i2v-only model needs an input image, a
t2v-only one refuses one, a longer clip than `max_seconds` is refused, and fields the model
does not honour are reported to the client (the AI/ML API's `meta.ignored`) rather than
dropped silently. Nothing here imports an engine: the API process never imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "CAPABILITY_KEYS",
    "ENGINE_CAPABILITIES",
    "TASKS",
    "Capabilities",
    "engine_capabilities",
]

TASKS = ("t2v", "i2v")
"""Text to video, image to video."""

CAPABILITY_KEYS = ("tasks", "max_seconds", "camera_moves", "negative_prompt")
"""The registry entry keys read here."""


@dataclass(frozen=True)
class Capabilities:
    """What one served model does with a request; the defaults promise everything."""

    tasks: frozenset[str] = frozenset(TASKS)
    """A subset of `TASKS`, never empty."""
    max_seconds: float | None = None
    """The longest clip a request may ask for; None: any length the dialect allows (longer
    than one model pass is chained or stretched by the engine)."""
    camera_moves: bool = True
    """Whether a requested camera move changes the clip (by camera conditioning or a phrase
    appended to the prompt)."""
    negative_prompt: bool = True
    """Whether a negative prompt changes the clip (it acts through classifier-free guidance,
    so a guidance-distilled model ignores it)."""

    @property
    def needs_image(self) -> bool:
        """Image-to-video only: a request must carry an input image."""
        return "t2v" not in self.tasks

    @property
    def takes_image(self) -> bool:
        return "i2v" in self.tasks

    def declared(self, table: Mapping[str, Any], where: str) -> Capabilities:
        """These capabilities with the keys a registry entry declares in `table` (others are
        left alone); a `ValueError` naming `where` for a malformed one."""
        changes: dict[str, Any] = {}
        if "tasks" in table:
            changes["tasks"] = _parse_tasks(table["tasks"], where)
        if "max_seconds" in table:
            value = table["max_seconds"]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{where}: max_seconds must be a positive number, got {value!r}")
            changes["max_seconds"] = float(value)
        for name in ("camera_moves", "negative_prompt"):
            if name in table:
                if not isinstance(table[name], bool):
                    raise ValueError(f"{where}: {name} must be true or false, got {table[name]!r}")
                changes[name] = table[name]
        return replace(self, **changes)


def _parse_tasks(value: Any, where: str) -> frozenset[str]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(task, str) and task in TASKS for task in value)
    ):
        raise ValueError(
            f"{where}: tasks must be a non-empty list of {' and '.join(TASKS)}, got {value!r}"
        )
    return frozenset(value)


ENGINE_CAPABILITIES: dict[str, Capabilities] = {
    # The synthetic world has no camera; the negative prompt is guidance's unconditional side.
    "micro": Capabilities(camera_moves=False),
    # A test pattern: it draws the prompt and nothing else of the request.
    "testsrc": Capabilities(camera_moves=False, negative_prompt=False),
    # Camera moves become a phrase appended to the prompt (diffusers engines' core).
    "wan": Capabilities(),
    "ltx": Capabilities(),
    "hunyuan": Capabilities(),
}
"""Each registered engine's defaults; an engine named by import path promises everything
unless its registry entry says otherwise."""

# Engines whose negative prompt acts only through classifier-free guidance, which is off when
# the entry's guidance_max is at most 1 (a guidance-distilled model, e.g. LTX-Video
# 0.9.7-distilled). 9.0 is `VideoOptions.guidance_max`'s default.
_GUIDED_ENGINES = frozenset({"wan", "ltx", "hunyuan"})
_DEFAULT_GUIDANCE_MAX = 9.0


def engine_capabilities(engine: str, options: Mapping[str, Any]) -> Capabilities:
    """What `engine` does with a request given its registry `options`."""
    capabilities = ENGINE_CAPABILITIES.get(engine, Capabilities())
    guidance_max = options.get("guidance_max", _DEFAULT_GUIDANCE_MAX)
    if engine in _GUIDED_ENGINES and isinstance(guidance_max, int | float) and guidance_max <= 1:
        capabilities = replace(capabilities, negative_prompt=False)
    return capabilities
