"""The `wan` engine through the whole service: tiny random-weight checkpoints built offline,
loaded by a real `reelforge serve` through `from_pretrained`, driven over HTTP.

The frames are noise; what is checked is the contract: the exact output size and length for
the requested ratio and duration, for text-to-video and image-to-video.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from reelforge.engines.tiny import build_tiny_wan
from reelforge.media import probe_video
from tests.e2e.conftest import LiveServer
from tests.e2e.test_service import I2V, T2V, create, wait_terminal

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wan_models_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wan-service")
    t2v = build_tiny_wan(root / "t2v", "t2v")
    i2v = build_tiny_wan(root / "i2v", "i2v")
    path = root / "models.toml"
    path.write_text(
        f'[models."{T2V}"]\nengine = "wan"\ncheckpoint = "{t2v}"\noptions = {{ steps = 2 }}\n'
        f'[models."{I2V}"]\nengine = "wan"\ncheckpoint = "{i2v}"\noptions = {{ steps = 2 }}\n'
    )
    return path


@pytest.fixture
def wan_server(server_factory: Callable[..., LiveServer], wan_models_file: Path) -> LiveServer:
    return server_factory(models_file=wan_models_file)


def _download_info(url: str, path: Path) -> tuple[int, int, int, float]:
    response = httpx.get(url)
    assert response.status_code == 200
    path.write_bytes(response.content)
    info = probe_video(path)
    assert (info.codec, info.pix_fmt, info.faststart) == ("h264", "yuv420p", True)
    return info.width, info.height, info.num_frames, info.fps


def test_models_endpoint_names_the_wan_engine(wan_server: LiveServer) -> None:
    listed = httpx.get(wan_server.base_url + "/v1/models").json()
    engines = {model["id"]: model["engine"] for model in listed["data"]}
    assert engines == {T2V: "wan", I2V: "wan"}


@pytest.mark.parametrize(
    ("ratio", "duration", "expected"),
    [("16:9", 5, (1280, 720, 120)), ("9:16", 10, (720, 1280, 240))],
)
def test_text_to_video_with_tiny_wan_has_the_exact_size_and_length(
    wan_server: LiveServer,
    tmp_path: Path,
    ratio: str,
    duration: int,
    expected: tuple[int, int, int],
) -> None:
    body = {"model": T2V, "prompt": "a red kite", "aspect_ratio": ratio, "duration": duration}
    final = wait_terminal(wan_server, create(wan_server, {**body, "seed": 11})["id"], 300)
    assert final["status"] == "completed", final
    assert final["engine"] == "wan"
    assert final["seed"] == 11
    assert _download_info(final["video"]["url"], tmp_path / "t2v.mp4") == (*expected, 24.0)
    with Image.open(io.BytesIO(httpx.get(final["preview"]["url"]).content)) as preview:
        assert preview.format == "GIF"
        assert preview.width <= 480


def test_image_to_video_with_tiny_wan_has_the_exact_size_and_length(
    wan_server: LiveServer, tmp_path: Path
) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (200, 150), (30, 90, 220)).save(picture, format="PNG")
    data_uri = "data:image/png;base64," + base64.b64encode(picture.getvalue()).decode()
    body = {"model": I2V, "image_url": data_uri, "prompt": "it drifts", "aspect_ratio": "1:1"}
    final = wait_terminal(wan_server, create(wan_server, body)["id"], 300)
    assert final["status"] == "completed", final
    assert final["engine"] == "wan"
    assert _download_info(final["video"]["url"], tmp_path / "i2v.mp4") == (960, 960, 120, 24.0)
