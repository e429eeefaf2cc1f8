"""The diffusers engines (`wan`, `ltx`, `hunyuan`) through the whole service: a tiny
random-weight checkpoint of every catalog architecture, built offline by `reelforge models
make-tiny`, loaded by a real `reelforge serve` through `from_pretrained`, driven over HTTP.

The frames are noise; what is checked is the contract: the exact output size and length for
the requested ratio and duration, for text-to-video and image-to-video.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from reelforge.media import probe_video
from reelforge.testing.tiny import TINY_ARCHS, tiny_registry_entry
from tests.conftest import TinyCheckpoints
from tests.e2e.conftest import LiveServer, ServerPool
from tests.e2e.test_service import I2V, T2V, create, png_data_uri, wait_terminal

pytestmark = pytest.mark.slow


# Architectures served together by one server: (text-to-video, image-to-video).
FAMILIES = {
    "wan2.1": ("wan2.1-t2v", "wan2.1-i2v"),
    "wan2.2-a14b": ("wan2.2-a14b-t2v", "wan2.2-a14b-i2v"),
    "wan2.2-ti2v": ("wan2.2-ti2v", "wan2.2-ti2v"),
    "ltx-video": ("ltx-video", "ltx-video"),
    "hunyuanvideo-1.5": ("hunyuanvideo-1.5-t2v", "hunyuanvideo-1.5-i2v"),
}
# Segments of a 10 s clip: the tiny Wan and Hunyuan models render at most 5 s in one pass
# (81 frames at 16 fps, 121 at 24 fps), so two full segments and a short tail; LTX's
# longest clip is 257 frames at 30 fps, so two.
TEN_SECOND_SEGMENTS = {
    "wan2.1": 3,
    "wan2.2-a14b": 3,
    "wan2.2-ti2v": 3,
    "ltx-video": 2,
    "hunyuanvideo-1.5": 3,
}


def test_families_cover_every_architecture() -> None:
    assert {arch for pair in FAMILIES.values() for arch in pair} == set(TINY_ARCHS)


@dataclass
class FamilyServer:
    """A live server with one family's tiny checkpoints behind both Kling ids."""

    family: str
    engine: str
    live: LiveServer


@pytest.fixture(scope="module", params=list(FAMILIES))
def family_server(
    request: pytest.FixtureRequest,
    tiny_checkpoints: TinyCheckpoints,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FamilyServer]:
    """One server per family, serving every test of that family (stopped before the next
    family's starts): loading the pipelines is most of a start, and each test makes and
    checks its own generations."""
    text_arch, image_arch = FAMILIES[request.param]
    engine = TINY_ARCHS[text_arch].engine
    folder = tmp_path_factory.mktemp(request.param)
    path = folder / "models.toml"
    path.write_text(
        tiny_registry_entry(T2V, text_arch, tiny_checkpoints[text_arch], steps=2)
        + tiny_registry_entry(I2V, image_arch, tiny_checkpoints[image_arch], steps=2)
    )
    pool = ServerPool(folder / "data")
    try:
        yield FamilyServer(request.param, engine, pool.start(models_file=str(path)))
    finally:
        pool.close()


def _download_info(url: str, path: Path) -> tuple[int, int, int, float]:
    response = httpx.get(url)
    assert response.status_code == 200
    path.write_bytes(response.content)
    info = probe_video(path)
    assert (info.codec, info.pix_fmt, info.faststart) == ("h264", "yuv420p", True)
    return info.width, info.height, info.num_frames, info.fps


def test_models_endpoint_names_the_engine(family_server: FamilyServer) -> None:
    listed = httpx.get(family_server.live.base_url + "/v1/models").json()
    engines = {model["id"]: model["engine"] for model in listed["data"]}
    assert engines == {T2V: family_server.engine, I2V: family_server.engine}


@pytest.mark.parametrize(
    ("ratio", "duration", "expected"),
    [("16:9", 5, (1280, 720, 120)), ("9:16", 10, (720, 1280, 240))],
)
def test_text_to_video_has_the_exact_size_and_length(
    family_server: FamilyServer,
    tmp_path: Path,
    ratio: str,
    duration: int,
    expected: tuple[int, int, int],
) -> None:
    body = {"model": T2V, "prompt": "a red kite", "aspect_ratio": ratio, "duration": duration}
    server = family_server.live
    final = wait_terminal(server, create(server, {**body, "seed": 11})["id"], 300)
    assert final["status"] == "completed", final
    assert final["engine"] == family_server.engine
    assert final["seed"] == 11
    assert _download_info(final["video"]["url"], tmp_path / "t2v.mp4") == (*expected, 24.0)
    with Image.open(io.BytesIO(httpx.get(final["preview"]["url"]).content)) as preview:
        assert preview.format == "GIF"
        assert preview.width <= 480


def test_image_to_video_has_the_exact_size_and_length(
    family_server: FamilyServer, tmp_path: Path
) -> None:
    data_uri = png_data_uri((200, 150), (30, 90, 220))
    body = {"model": I2V, "image_url": data_uri, "prompt": "it drifts", "aspect_ratio": "1:1"}
    server = family_server.live
    final = wait_terminal(server, create(server, body)["id"], 300)
    assert final["status"] == "completed", final
    assert final["engine"] == family_server.engine
    assert _download_info(final["video"]["url"], tmp_path / "i2v.mp4") == (960, 960, 120, 24.0)


def test_ten_second_image_to_video_is_chained_to_240_frames(
    family_server: FamilyServer, tmp_path: Path
) -> None:
    data_uri = png_data_uri((160, 90), (200, 40, 40))
    body = {"model": I2V, "image_url": data_uri, "prompt": "it drifts", "duration": 10}
    server = family_server.live
    final = wait_terminal(server, create(server, body)["id"], 300)
    assert final["status"] == "completed", final
    segments = TEN_SECOND_SEGMENTS[family_server.family]
    assert (final["meta"]["segments"], final["meta"]["frames_capped"]) == (segments, False)
    assert _download_info(final["video"]["url"], tmp_path / "long.mp4") == (1280, 720, 240, 24.0)
