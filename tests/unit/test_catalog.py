"""The model catalog: native formats, presence on this machine, registry entries, `models list`,
and the verification step of `models pull` (the download itself needs the hub; see pull.py)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from reelforge.cli.main import main
from reelforge.engines import Registry, RegistryError
from reelforge.engines.diffusers.core import VideoOptions
from reelforge.testing.tiny import TINY_ARCHS
from reelforge.weights.catalog import (
    CATALOG,
    DEFAULT_MODEL,
    PULLED_MARKER,
    local_checkpoint,
    pull_folder,
)
from reelforge.weights.pull import (
    PARTIAL_SUFFIX,
    PULLING_MARKER,
    ExpectedFile,
    PullError,
    verify_folder,
)

T2V, I2V = "klingai/v2-master-text-to-video", "klingai/v2-master-image-to-video"


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "pulled"
    monkeypatch.setenv("REELFORGE_MODELS_DIR", str(root))
    return root


def _fake_pull(name: str, models_dir: Path) -> Path:
    """The folder `models pull` leaves: the files (here only the index) and the marker."""
    folder = pull_folder(CATALOG[name], models_dir)
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text('{"_class_name": "WanPipeline"}')
    (folder / PULLED_MARKER).write_text("{}")
    return folder


def test_every_catalog_model_has_a_tiny_architecture_and_valid_engine_options() -> None:
    for model in CATALOG.values():
        assert model.tiny_arch in TINY_ARCHS
        arch = TINY_ARCHS[model.tiny_arch]
        assert (arch.engine, arch.text_to_video, arch.image_to_video) == (
            model.engine,
            model.text_to_video,
            model.image_to_video,
        )
        options = VideoOptions.from_mapping(model.engine_options(), model.engine)
        # The API's default cfg_scale of 0.5 gives the model card's guidance.
        assert options.guidance_scale(0.5) == pytest.approx(model.guidance)
        assert model.max_frames % model.frame_multiple == 1


def test_wan22_ti2v_renders_five_seconds_at_1280x704_and_24_fps() -> None:
    model = CATALOG[DEFAULT_MODEL]
    assert (model.width, model.height, model.fps, model.max_frames) == (1280, 704, 24, 121)
    assert model.tasks == "t2v+i2v"


def test_nothing_is_present_on_a_fresh_machine(models_dir: Path) -> None:
    assert all(local_checkpoint(model, models_dir) is None for model in CATALOG.values())
    assert {entry.engine for entry in Registry.load(models_dir=models_dir)} == {"micro"}


def test_a_pull_without_its_marker_does_not_count(models_dir: Path) -> None:
    folder = _fake_pull(DEFAULT_MODEL, models_dir)
    (folder / PULLED_MARKER).unlink()
    assert local_checkpoint(CATALOG[DEFAULT_MODEL], models_dir) is None


def test_defaults_serve_wan22_ti2v_for_both_kling_ids_once_pulled(models_dir: Path) -> None:
    folder = _fake_pull(DEFAULT_MODEL, models_dir)
    registry = Registry.load(models_dir=models_dir)
    for model_id in (T2V, I2V):
        entry = registry.get(model_id)
        assert entry is not None
        assert (entry.engine, entry.checkpoint, entry.catalog) == (
            "wan",
            str(folder),
            DEFAULT_MODEL,
        )
        assert entry.options["native_width"] == 1280
        assert entry.options["max_native_frames"] == 121
    micro = registry.get("reelforge/micro")
    assert micro is not None and micro.engine == "micro"


def test_hub_cache_snapshot_counts_as_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_dir: Path
) -> None:
    import huggingface_hub.constants

    model = CATALOG["wan2.1-t2v-1.3b"]
    revision = "1" * 40
    repo = tmp_path / "hub" / ("models--" + model.repo.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    # No model_index.json yet: not a complete snapshot.
    assert local_checkpoint(model, models_dir) is None
    (snapshot / "model_index.json").write_text("{}")
    assert local_checkpoint(model, models_dir) == snapshot


def test_registry_file_names_a_catalog_model_with_overrides(
    tmp_path: Path, models_dir: Path
) -> None:
    path = tmp_path / "models.toml"
    path.write_text(f'[models."{T2V}"]\ncatalog = "wan2.2-t2v-a14b"\noptions = {{ steps = 8 }}\n')
    entry = Registry.load(path, models_dir=models_dir).get(T2V)
    assert entry is not None
    # Not downloaded: the entry names the repository (`serve` then refuses to start, naming
    # `reelforge models pull`, which test_configuration_errors checks).
    assert (entry.engine, entry.checkpoint) == ("wan", "Wan-AI/Wan2.2-T2V-A14B-Diffusers")
    assert entry.options["steps"] == 8
    assert entry.options["flow_shift"] == 12.0


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('catalog = "wan9"', "unknown catalog model 'wan9'"),
        ('catalog = "wan2.1-t2v-1.3b"\nengine = "wan"', "both a catalog model and an engine"),
    ],
)
def test_bad_catalog_entries_fail_at_start_up(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "models.toml"
    path.write_text(f'[models."x"]\n{body}\n')
    with pytest.raises(RegistryError, match=problem):
        Registry.load(path)


def test_override_may_name_a_catalog_model(models_dir: Path) -> None:
    entry = Registry.load(
        None, [f"{T2V}=wan2.1-t2v-1.3b:/models/wan13"], models_dir=models_dir
    ).get(T2V)
    assert entry is not None
    assert (entry.engine, entry.checkpoint, entry.catalog) == (
        "wan",
        "/models/wan13",
        "wan2.1-t2v-1.3b",
    )
    assert (entry.options["native_width"], entry.options["native_height"]) == (832, 480)


def test_models_list_shows_presence_size_and_what_each_serves(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _fake_pull(DEFAULT_MODEL, models_dir)
    (folder / "weights.bin").write_bytes(b"\0" * 2_500_000)
    assert main(["models", "list"]) == 0
    # Columns are three spaces apart; cells may hold single spaces ("2.5 MB").
    header, *rows = [re.split(r" {3,}", line) for line in capsys.readouterr().out.splitlines()]
    assert header == [
        "MODEL", "ENGINE", "TASKS", "NATIVE", "PRESENT", "SIZE", "DOWNLOAD", "SERVES"
    ]  # fmt: skip
    by_name = {row[0]: row for row in rows}
    assert set(CATALOG) <= set(by_name)
    # The hub is offline in the tests: DOWNLOAD is the catalog's estimate, marked "~".
    assert by_name[DEFAULT_MODEL][3:] == [
        "1280x704@24 121f", "yes", "2.5 MB", "~46 GB", f"{T2V}, {I2V}"
    ]  # fmt: skip
    assert by_name["wan2.1-t2v-1.3b"][4:] == ["no", "-", "~29 GB", "-"]
    assert by_name["(micro)"][4:] == ["built in", "-", "-", "reelforge/micro"]


def test_every_catalog_model_has_a_download_estimate() -> None:
    for model in CATALOG.values():
        assert model.download_gb is not None and model.download_gb > 1, model.name


def _hub_cache_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    """A complete snapshot of catalog model `name` in a Hugging Face cache, as `hf download`
    leaves it."""
    import huggingface_hub.constants

    revision = "1" * 40
    repo = tmp_path / "hub" / ("models--" + CATALOG[name].repo.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return snapshot


def test_models_rm_deletes_a_pulled_model(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _fake_pull(DEFAULT_MODEL, models_dir)
    (folder / "weights.bin").write_bytes(b"\0" * 2_500_000)
    assert main(["models", "rm", DEFAULT_MODEL]) == 0
    assert capsys.readouterr().out == f"removed {DEFAULT_MODEL} from {folder} (2.5 MB)\n"
    assert not folder.exists()
    assert local_checkpoint(CATALOG[DEFAULT_MODEL], models_dir) is None


def test_models_rm_deletes_a_half_finished_pull_and_only_what_it_wrote(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = pull_folder(CATALOG[DEFAULT_MODEL], models_dir)
    (folder / "transformer").mkdir(parents=True)
    weights = "transformer/diffusion_pytorch_model.safetensors"
    (folder / PULLING_MARKER).write_text(json.dumps({"paths": ["model_index.json", weights]}))
    (folder / "model_index.json").write_text("{}")
    (folder / (weights + PARTIAL_SUFFIX)).write_bytes(b"\0" * 1000)
    (folder / "notes.txt").write_text("mine")  # the user's, not the pull's
    assert main(["models", "rm", DEFAULT_MODEL]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "kept 1 files no pull wrote: notes.txt"
    assert sorted(p.name for p in folder.rglob("*")) == ["notes.txt"]


def test_models_rm_leaves_the_hugging_face_cache_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    snapshot = _hub_cache_snapshot(tmp_path, monkeypatch, DEFAULT_MODEL)
    assert main(["models", "rm", DEFAULT_MODEL]) == 2
    error = capsys.readouterr().err
    assert f"its snapshot in the Hugging Face cache ({snapshot}) is not reelforge's" in error
    assert f"`hf cache rm model/{CATALOG[DEFAULT_MODEL].repo}`" in error
    assert (snapshot / "model_index.json").is_file()


def test_models_rm_leaves_a_folder_without_a_pull_marker_alone(
    models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _fake_pull(DEFAULT_MODEL, models_dir)
    (folder / PULLED_MARKER).unlink()  # e.g. the user's own `hf download --local-dir`
    assert main(["models", "rm", DEFAULT_MODEL]) == 2
    assert "has no pull marker: not made by `reelforge models pull`" in capsys.readouterr().err
    assert (folder / "model_index.json").is_file()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("wan9", "reelforge: unknown model 'wan9'; the catalog has wan2.1-t2v-1.3b, "),
        (DEFAULT_MODEL, f"reelforge: {DEFAULT_MODEL} is not pulled (nothing at "),
    ],
)
def test_models_rm_of_an_unknown_or_absent_model_says_so(
    name: str, message: str, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "rm", name]) == 2
    assert capsys.readouterr().err.startswith(message)


def _expected(folder: Path) -> list[ExpectedFile]:
    return [
        ExpectedFile(
            path.relative_to(folder).as_posix(),
            path.stat().st_size,
            hashlib.sha256(path.read_bytes()).hexdigest() if path.suffix == ".bin" else None,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    ]


def test_verification_accepts_an_intact_download(tmp_path: Path) -> None:
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "weights.bin").write_bytes(b"weights" * 1000)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    assert verify_folder(tmp_path, _expected(tmp_path)) == 7000 + len(
        (tmp_path / "model_index.json").read_bytes()
    )


def test_verification_names_every_damaged_or_missing_file(tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"a" * 100)
    (tmp_path / "config.json").write_text("{}")
    expected = [*_expected(tmp_path), ExpectedFile("tokenizer.json", 10, None)]
    weights.write_bytes(b"b" * 100)  # same size, other content: only the hash tells
    with pytest.raises(PullError) as caught:
        verify_folder(tmp_path, expected)
    message = str(caught.value)
    assert "weights.bin: SHA-256 differs" in message
    assert "tokenizer.json: missing" in message
    assert "config.json" not in message
