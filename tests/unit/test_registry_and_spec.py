"""The model registry file and overrides, and the AI/ML API's camera moves in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelforge.api.aimlapi.vocabulary import camera_move
from reelforge.engines import Registry, RegistryError
from reelforge.engines.testsrc import TestSourceEngine
from reelforge.spec import GenerationSpec
from tests.conftest import make_spec


def test_defaults_serve_both_kling_ids_with_the_micro_model() -> None:
    registry = Registry.load()
    assert {(e.id, e.engine) for e in registry} == {
        ("reelforge/micro", "micro"),
        ("klingai/v2-master-text-to-video", "micro"),
        ("klingai/v2-master-image-to-video", "micro"),
    }


def test_override_replaces_an_entry_and_keeps_the_rest(tmp_path: Path) -> None:
    registry = Registry.load(None, ["klingai/v2-master-text-to-video=wan:/models/wan"])
    entry = registry.get("klingai/v2-master-text-to-video")
    assert entry is not None and (entry.engine, entry.checkpoint) == ("wan", "/models/wan")
    assert len(registry) == 3


def test_file_resolves_relative_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    path = tmp_path / "models.toml"
    path.write_text('[models."a/b"]\nengine = "wan"\ncheckpoint = "ckpt"\noptions = {steps = 4}\n')
    entry = Registry.load(path).get("a/b")
    assert entry is not None
    assert entry.checkpoint == str(tmp_path / "ckpt")
    assert entry.options == {"steps": 4}


def test_engine_by_import_path(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[models."x"]\nengine = "reelforge.engines.testsrc:TestSourceEngine"\n')
    from reelforge.engines import engine_class

    entry = Registry.load(path).get("x")
    assert entry is not None and engine_class(entry.engine) is TestSourceEngine


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[models."x"]\nengine = "nope"\n', "unknown engine"),
        ('[models."x"]\ncheckpoint = "c"\n', "needs engine"),
        ("[models\n", "models.toml"),
    ],
)
def test_bad_registry_file_fails_at_start_up(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(text)
    with pytest.raises(RegistryError, match=problem):
        Registry.load(path)


def test_import_path_must_name_an_engine_class() -> None:
    from reelforge.engines import engine_class

    with pytest.raises(RegistryError, match="not a reelforge Engine"):
        engine_class("json:loads")
    with pytest.raises(RegistryError, match="cannot be imported"):
        engine_class("no_such_module:Engine")


def test_api_side_parsing_does_not_import_engines(tmp_path: Path) -> None:
    path = tmp_path / "models.toml"
    path.write_text('[models."x"]\nengine = "no_such_module:Engine"\n')
    assert Registry.load(path).get("x") is not None


@pytest.mark.parametrize("override", ["no-equals", "x=", "x=unknown-engine"])
def test_bad_override_is_refused(override: str) -> None:
    with pytest.raises(RegistryError):
        Registry.load(None, [override])


def phrase(preset: str | None = None, axes: dict[str, float] | None = None) -> str | None:
    move = camera_move(preset, axes)
    return None if move is None else move.description


def test_kling_camera_moves_in_words() -> None:
    assert phrase() is None
    assert phrase(axes={"zoom": 0.0}) is None  # a still camera is no move
    assert phrase("down_back") == "the camera descends and pulls back"
    assert phrase(axes={"zoom": 9}) == "the camera quickly zooms in"
    assert phrase(axes={"pan": -2, "tilt": 5}) == "the camera slowly pans left, the camera tilts up"


def test_a_first_release_spec_with_kling_camera_still_loads() -> None:
    """Jobs stored before the camera became words carry {"preset", "axes"}; they load."""
    base = make_spec().model_dump(mode="json")
    moved = GenerationSpec.model_validate({**base, "camera": {"preset": None, "axes": {"pan": 5}}})
    assert moved.camera is not None and moved.camera.description == "camera move: pan +5"
    preset = GenerationSpec.model_validate({**base, "camera": {"preset": "down_back", "axes": {}}})
    assert preset.camera is not None and "down back" in preset.camera.description
    still = GenerationSpec.model_validate({**base, "camera": {"preset": None, "axes": {"zoom": 0}}})
    assert still.camera is None


def test_dialect_names_come_from_the_registry(tmp_path: Path) -> None:
    defaults = Registry.load()
    assert defaults.alias("openai", "sora-2") == "klingai/v2-master-text-to-video"
    assert defaults.alias("kling.image2video", "kling-v1-5") == "klingai/v2-master-image-to-video"
    assert defaults.alias("openai", "no-such-name") is None
    path = tmp_path / "models.toml"
    path.write_text(
        '[models."my/t2v"]\nengine = "testsrc"\n'
        '[names."kling.text2video"]\n"kling-v2-master" = "my/t2v"\n'
    )
    mine = Registry.load(path)
    assert mine.names("kling.text2video") == {"kling-v2-master": "my/t2v"}
    # Namespaces the file leaves out keep the defaults' names of ids it serves: none here.
    assert mine.names("openai") == {}
    path.write_text('[models."my/t2v"]\nengine = "testsrc"\n[names.openai]\n"x" = "other/id"\n')
    with pytest.raises(RegistryError, match="other/id"):
        Registry.load(path)
