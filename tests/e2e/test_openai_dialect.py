"""OpenAI's own `openai` package against a real `reelforge serve`: text- and image-to-video,
create_and_poll, every download variant, list auto-paging, remix, delete, bad input."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reelforge.media import probe_video
from tests.e2e.conftest import REPO_ROOT, LiveServer
from tests.e2e.test_service import I2V, T2V

pytestmark = pytest.mark.slow

OPENAI_PYTHON = REPO_ROOT / ".venv-openai" / "bin" / "python"
SCRIPT = Path(__file__).parent / "openai_sdk_script.py"
KEY = "openai-e2e-key"


@pytest.fixture(scope="module")
def run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Any], Path, LiveServer]]:
    """One server, one run of the SDK script; the tests below read what it did."""
    if not OPENAI_PYTHON.exists():
        pytest.fail(f"{OPENAI_PYTHON} is missing: run `make openai-env` (make test does)")
    root = tmp_path_factory.mktemp("openai")
    server = LiveServer(root / "data", {"REELFORGE_API_KEYS": KEY}).start()
    try:
        image = root / "first.png"
        Image.new("RGB", (640, 360), (20, 160, 60)).save(image)
        out = root / "out"
        out.mkdir()
        completed = subprocess.run(
            [
                str(OPENAI_PYTHON),
                str(SCRIPT),
                "--base-url",
                server.base_url,
                "--api-key",
                KEY,
                "--image",
                str(image),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr + server.log()
        yield json.loads(completed.stdout.strip().splitlines()[-1]), out, server
    finally:
        server.stop()


def test_text_to_video_at_the_exact_size(run: tuple[dict[str, Any], Path, LiveServer]) -> None:
    summary, out, _ = run
    assert summary["queued"] == {"status": "queued", "size": "720x1280", "seconds": "4"}
    t2v = summary["t2v"]
    assert (t2v["status"], t2v["progress"], t2v["model"]) == ("completed", 100, T2V)
    assert (t2v["size"], t2v["seconds"], t2v["error"]) == ("1792x1024", "4", None)
    assert t2v["completed_at"] >= t2v["created_at"]
    info = probe_video(out / "t2v-video")
    assert (info.width, info.height, info.num_frames, info.fps, info.codec) == (
        1792,
        1024,
        96,
        24,
        "h264",
    )


def test_thumbnail_and_spritesheet(run: tuple[dict[str, Any], Path, LiveServer]) -> None:
    _, out, _ = run
    thumbnail = Image.open(out / "t2v-thumbnail")
    assert thumbnail.format == "WEBP" and thumbnail.width <= 640
    assert abs(thumbnail.width / thumbnail.height - 1792 / 1024) < 0.02
    sheet = Image.open(out / "t2v-spritesheet")
    assert sheet.format == "JPEG" and sheet.size == (5 * 256, 2 * round(256 * 1024 / 1792))


def test_image_to_video_from_an_uploaded_file(
    run: tuple[dict[str, Any], Path, LiveServer],
) -> None:
    summary, out, _ = run
    i2v = summary["i2v"]
    assert (i2v["status"], i2v["model"], i2v["size"], i2v["seconds"]) == (
        "completed",
        I2V,
        "720x1280",
        "8",
    )
    info = probe_video(out / "i2v-video")
    assert (info.width, info.height, info.num_frames, info.codec) == (720, 1280, 192, "h264")


def test_remix_keeps_the_spec_and_seed(run: tuple[dict[str, Any], Path, LiveServer]) -> None:
    summary, out, server = run
    remix, t2v = summary["remix"], summary["t2v"]
    assert remix["status"] == "completed" and remix["remixed_from_video_id"] == t2v["id"]
    assert (remix["size"], remix["seconds"]) == (t2v["size"], t2v["seconds"])
    info = probe_video(out / "remix-video")
    assert (info.width, info.height, info.num_frames) == (1792, 1024, 96)
    store = server.store()
    try:
        original, remixed = store.get_job(t2v["id"]), store.get_job(remix["id"])
        assert original is not None and remixed is not None
        assert remixed.spec.seed == original.spec.seed
        assert remixed.spec.prompt != original.spec.prompt
    finally:
        store.engine.dispose()


def test_list_auto_pages_over_every_video(run: tuple[dict[str, Any], Path, LiveServer]) -> None:
    summary, _, _ = run
    ids = summary["ids"]
    created = [ids["queued"], ids["t2v"], ids["i2v"], ids["remix"]]
    assert summary["first_page"] == [ids["remix"], ids["i2v"]]
    assert summary["listed"] == created[::-1]  # four videos, two pages of two
    assert summary["listed_asc"] == created


def test_bad_input_gets_openais_error_and_no_job(
    run: tuple[dict[str, Any], Path, LiveServer],
) -> None:
    summary, _, server = run
    for param, answer in summary["errors"].items():
        assert answer["status"] == 400
        error = answer["body"]
        assert error["param"] == param and error["type"] == "invalid_request_error"
        assert param in error["message"]
    store = server.store()
    try:
        assert sum(store.count_by_status().values()) == 3  # four made, one deleted
    finally:
        store.engine.dispose()


def test_delete(run: tuple[dict[str, Any], Path, LiveServer]) -> None:
    summary, _, _ = run
    assert summary["deleted"] == {
        "id": summary["ids"]["queued"],
        "object": "video.deleted",
        "deleted": True,
    }
    assert summary["after_delete"] == 404
