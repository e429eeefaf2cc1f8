"""What a model can do: declared by its registry entry, checked when a request is parsed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reelforge.api.aimlapi.protocol import parse_create_request
from reelforge.engines import Registry, RegistryError
from reelforge.engines.capabilities import Capabilities
from reelforge.errors import InvalidRequest

T2V, I2V = "klingai/v2-master-text-to-video", "klingai/v2-master-image-to-video"
IMAGE = "data:image/png;base64,iVBORw0KGgo="  # only parsed here, never decoded


def registry_file(tmp_path: Path, text: str) -> Registry:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return Registry.load(path)


def field_errors(body: dict[str, Any], registry: Registry) -> dict[str, str]:
    with pytest.raises(InvalidRequest) as caught:
        parse_create_request(body, registry)
    return {error.field: error.problem for error in caught.value.errors}


def test_the_kling_ids_keep_their_tasks_whatever_serves_them(tmp_path: Path) -> None:
    defaults = Registry.load()
    overridden = Registry.load(None, [f"{I2V}=testsrc", f"{T2V}=wan:/models/wan"])
    from_file = registry_file(
        tmp_path, f'[models."{T2V}"]\nengine = "testsrc"\n[models."{I2V}"]\nengine = "testsrc"\n'
    )
    for registry in (defaults, overridden, from_file):
        t2v, i2v = registry.get(T2V), registry.get(I2V)
        assert t2v is not None and t2v.capabilities.tasks == {"t2v"}
        assert i2v is not None and i2v.capabilities.tasks == {"i2v"} and i2v.needs_image


def test_other_ids_get_their_engines_defaults() -> None:
    registry = Registry.load(None, ["a/testsrc=testsrc", "a/wan=wan:/models/wan"])
    testsrc, wan = registry.get("a/testsrc"), registry.get("a/wan")
    assert testsrc is not None and wan is not None
    assert testsrc.capabilities == Capabilities(camera_moves=False, negative_prompt=False)
    assert wan.capabilities == Capabilities()
    micro = registry.get("reelforge/micro")
    assert micro is not None and micro.capabilities == Capabilities(camera_moves=False)


def test_an_entry_declares_its_capabilities(tmp_path: Path) -> None:
    registry = registry_file(
        tmp_path,
        '[models."x"]\nengine = "wan"\ntasks = ["i2v"]\nmax_seconds = 5\n'
        "camera_moves = false\nnegative_prompt = false\n"
        f'[models."{I2V}"]\nengine = "testsrc"\ntasks = ["t2v", "i2v"]\n',
    )
    entry = registry.get("x")
    assert entry is not None
    assert entry.capabilities == Capabilities(frozenset({"i2v"}), 5.0, False, False)
    # A file that declares tasks for a Kling id is taken at its word.
    kling = registry.get(I2V)
    assert kling is not None and kling.capabilities.tasks == {"t2v", "i2v"}


def test_catalog_entries_serve_their_models_tasks(tmp_path: Path) -> None:
    registry = registry_file(
        tmp_path,
        '[models."a/t2v"]\ncatalog = "wan2.1-t2v-1.3b"\n'
        '[models."a/ti2v"]\ncatalog = "wan2.2-ti2v-5b"\n'
        '[models."a/ltx"]\ncatalog = "ltx-video-0.9.7-distilled"\n',
    )
    tasks = {entry.id: entry.capabilities.tasks for entry in registry}
    assert tasks == {"a/t2v": {"t2v"}, "a/ti2v": {"t2v", "i2v"}, "a/ltx": {"t2v", "i2v"}}
    # Guidance-distilled: no classifier-free guidance, so no negative prompt.
    ltx = registry.get("a/ltx")
    assert ltx is not None and ltx.capabilities.negative_prompt is False


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('engine = "wan"\ntasks = ["v2v"]', "tasks must be a non-empty list of t2v and i2v"),
        ('engine = "wan"\ntasks = []', "tasks must be a non-empty list"),
        ('engine = "wan"\nmax_seconds = 0', "max_seconds must be a positive number"),
        ('engine = "wan"\ncamera_moves = "no"', "camera_moves must be true or false"),
        ('catalog = "wan2.1-t2v-1.3b"\ntasks = ["i2v"]', "serves only t2v"),
    ],
)
def test_bad_capabilities_fail_at_start_up(tmp_path: Path, body: str, problem: str) -> None:
    with pytest.raises(RegistryError, match=problem):
        registry_file(tmp_path, f'[models."x"]\n{body}\n')


def test_image_to_video_models_need_an_image() -> None:
    registry = Registry.load()
    assert field_errors({"model": I2V}, registry) == {
        "image_url": "is required for image-to-video models"
    }
    _, spec = parse_create_request({"model": I2V, "image_url": IMAGE}, registry)
    assert spec.prompt == ""


def test_text_to_video_models_refuse_an_image() -> None:
    errors = field_errors({"model": T2V, "prompt": "x", "image_url": IMAGE}, Registry.load())
    assert errors == {"image_url": f"is not accepted by {T2V}; use an image-to-video model"}


def test_a_model_serving_both_tasks_takes_an_image_or_a_prompt(tmp_path: Path) -> None:
    registry = registry_file(tmp_path, '[models."both"]\nengine = "wan"\n')
    parse_create_request({"model": "both", "image_url": IMAGE}, registry)
    parse_create_request({"model": "both", "prompt": "x"}, registry)
    assert field_errors({"model": "both"}, registry) == {"prompt": "is required"}


def test_a_longer_clip_than_the_model_renders_is_refused(tmp_path: Path) -> None:
    registry = registry_file(tmp_path, '[models."short"]\nengine = "wan"\nmax_seconds = 5\n')
    parse_create_request({"model": "short", "prompt": "x", "duration": 5}, registry)
    errors = field_errors({"model": "short", "prompt": "x", "duration": "10"}, registry)
    assert errors == {"duration": "must be at most 5 seconds for short"}


def test_an_unknown_model_is_checked_as_text_to_video() -> None:
    errors = field_errors({"model": "nope", "image_url": IMAGE}, Registry.load())
    assert set(errors) == {"model", "image_url", "prompt"}


def ignored(body: dict[str, Any], registry: Registry) -> tuple[str, ...]:
    return parse_create_request(body, registry)[1].ignored


def test_nothing_is_ignored_by_a_model_that_honours_everything(tmp_path: Path) -> None:
    registry = registry_file(tmp_path, '[models."wan"]\nengine = "wan"\n')
    body = {
        "model": "wan",
        "prompt": "a fox",
        "negative_prompt": "blur",
        "camera_control": "down_back",
        "enhance_prompt": False,
    }
    assert ignored(body, registry) == ()


def test_fields_the_model_does_not_honour_are_named(tmp_path: Path) -> None:
    registry = registry_file(
        tmp_path,
        '[models."plain"]\nengine = "wan"\ncamera_moves = false\nnegative_prompt = false\n',
    )
    body = {
        "model": "plain",
        "prompt": "a fox",
        "negative_prompt": "blur",
        "advanced_camera_control": {"movement_type": "pan", "movement_value": 4},
        "enhance_prompt": True,
        "tail_image_url": "https://example.com/last.png",
    }
    assert ignored(body, registry) == (
        "enhance_prompt",
        "tail_image_url",
        "negative_prompt",
        "advanced_camera_control",
    )


def test_what_asks_for_nothing_is_not_reported_as_ignored(tmp_path: Path) -> None:
    registry = registry_file(
        tmp_path,
        '[models."plain"]\nengine = "wan"\ncamera_moves = false\nnegative_prompt = false\n',
    )
    body = {
        "model": "plain",
        "prompt": "a fox",
        "negative_prompt": "  ",
        "camera_control": {"type": "simple", "config": {"zoom": 0}},  # a still camera
        "tail_image_url": None,
    }
    assert ignored(body, registry) == ()


def test_the_micro_model_ignores_camera_moves() -> None:
    body = {"model": T2V, "prompt": "a red ball", "camera_control": "forward_up"}
    assert ignored(body, Registry.load()) == ("camera_control",)
