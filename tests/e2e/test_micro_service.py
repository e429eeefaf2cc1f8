"""The embedded default registry end to end: the built-in micro model behind a real server.

A fresh `reelforge serve` with no model configured serves both Kling ids (and
`reelforge/micro`) with the micro model; a request comes back at the exact size and length,
and the clip shows what the prompt asked for.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from reelforge.media import probe_video
from reelforge.micro.evaluate import read_clip
from reelforge.micro.world import Scene
from tests.e2e.conftest import REPO_ROOT, LiveServer
from tests.e2e.test_service import I2V, T2V, create, wait_terminal

pytestmark = pytest.mark.slow

EMBEDDED_DEFAULTS = REPO_ROOT / "reelforge" / "engines" / "defaults.toml"


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[..., LiveServer]) -> LiveServer:
    """One server for the module: each test makes and checks its own generation."""
    return module_server_factory(models_file=str(EMBEDDED_DEFAULTS))


def _decode_frames(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_embedded_defaults_serve_the_micro_model(server: LiveServer, tmp_path: Path) -> None:
    listed = httpx.get(server.base_url + "/v1/models").json()
    engines = {model["id"]: model["engine"] for model in listed["data"]}
    assert engines == {"reelforge/micro": "micro", T2V: "micro", I2V: "micro"}

    prompt = "a white circle moving right on a black background"
    body = {"model": T2V, "prompt": prompt, "aspect_ratio": "16:9", "duration": 5, "seed": 4}
    final = wait_terminal(server, create(server, body)["id"], 120)
    assert final["status"] == "completed", final
    assert final["engine"] == "micro"
    video = tmp_path / "micro.mp4"
    video.write_bytes(httpx.get(final["video"]["url"]).content)
    info = probe_video(video)
    assert (info.width, info.height, info.num_frames, info.fps) == (1280, 720, 120, 24.0)
    # Read the delivered video back at the model's scale (32 pixels high; the evaluator scales
    # it up again to read it): it shows the prompt's scene.
    frames = _decode_frames(video)[::8]
    small = np.stack([np.asarray(Image.fromarray(f).resize((57, 32))) for f in frames])
    reading = read_clip(small)
    assert reading.matches(Scene("white", "circle", "right", "black")) == {
        "colour": True,
        "shape": True,
        "direction": True,
    }


def test_image_to_video_starts_from_the_image(server: LiveServer, tmp_path: Path) -> None:
    picture = Image.new("RGB", (96, 96), (128, 128, 128))
    picture.paste((240, 220, 40), (30, 30, 60, 60))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    body = {
        "model": I2V,
        "prompt": "a yellow square moving left on a gray background",
        "image_url": base64.b64encode(buffer.getvalue()).decode(),
        "aspect_ratio": "1:1",
        "duration": 5,
    }
    final = wait_terminal(server, create(server, body)["id"], 120)
    assert final["status"] == "completed", final
    video = tmp_path / "i2v.mp4"
    video.write_bytes(httpx.get(final["video"]["url"]).content)
    info = probe_video(video)
    assert (info.width, info.height, info.num_frames) == (960, 960, 120)
    first = _decode_frames(video)[0].astype(float)
    # The centre of the first frame is the picture's yellow square, the corner its gray.
    assert np.abs(first[480, 480] - (240, 220, 40)).max() < 40
    assert np.abs(first[40, 40] - (128, 128, 128)).max() < 40


def test_a_prompt_far_from_the_world_is_warned_about_in_the_answer_and_on_the_cli(
    server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reelforge.cli.main import main as cli_main

    prompt = "A red fox in the snow"
    out = tmp_path / "fox.mp4"
    code = cli_main(["generate", prompt, "-o", str(out), "--base-url", server.base_url])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.splitlines() == [str(out)] and out.stat().st_size > 0
    [warning] = [line for line in captured.err.splitlines() if "reelforge: warning:" in line]
    assert f"'{prompt}' is far from" in warning

    # The same warning is in the generation's `meta.warnings`, for any client.
    final = wait_terminal(server, create(server, {"model": T2V, "prompt": prompt})["id"], 120)
    assert final["status"] == "completed", final
    assert [f"reelforge: warning: {w}" for w in final["meta"]["warnings"]] == [warning]
    # A prompt of the world gets none.
    known = {"model": T2V, "prompt": "a golden box rising on a gray background"}
    assert "warnings" not in wait_terminal(server, create(server, known)["id"], 120)["meta"]


def test_the_worker_logs_its_device_and_torch_threads(server: LiveServer) -> None:
    # `device auto` as configured in the API process; the worker says what it resolved to.
    assert server.log_path is not None  # log() is only its tail
    log = server.log_path.read_text(errors="replace")
    assert re.search(r"worker \S+ ready for .* on cpu, 1 torch thread\(s\) ", log), log[-3000:]
