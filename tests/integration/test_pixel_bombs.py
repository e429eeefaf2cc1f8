"""Pixel bombs: files of a few dozen bytes whose headers declare billions of pixels, sent to
the real app as an image_url download, a data URI, an OpenAI upload and Kling base64. Each
is a 400 naming the field and the declared size, with nothing decoded: Pillow's `load` (the
decode) is watched and never runs for a bomb, while a real image's upload does run it."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import ImageFile

from reelforge.api.app import build_context, create_app
from reelforge.engines import Registry
from reelforge.jobs import open_store
from reelforge.settings import Settings
from reelforge.storage import open_storage
from tests.fixtures.peers import Answer, PeerServer
from tests.integration.test_api_validation import I2V, data_uri, png_bytes

MAX_PIXELS = 1_000_000


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header (IHDR) declaring `width`x`height`, with one tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024, 9))
        + chunk(b"IEND", b"")
    )


def gif_bomb(width: int, height: int) -> bytes:
    """A GIF89a whose logical screen and one image descriptor declare `width`x`height`."""
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    descriptor = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + descriptor + b"\x02\x02\x4c\x01\x00" + b"\x3b"


def jpeg_bomb(width: int, height: int) -> bytes:
    """A baseline JPEG's markers (SOF0 declaring `width`x`height`, SOS) and no real scan."""

    def segment(marker: int, data: bytes) -> bytes:
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(data) + 2) + data

    sof = struct.pack(">BHHB", 8, height, width, 3) + b"".join(
        bytes([component, 0x11, 0]) for component in (1, 2, 3)
    )
    sos = b"\x03" + b"".join(bytes([component, 0]) for component in (1, 2, 3)) + b"\x00\x3f\x00"
    return b"\xff\xd8" + segment(0xC0, sof) + segment(0xDA, sos) + b"\x00" * 16 + b"\xff\xd9"


# (file, what the answer must say): past Pillow's own refusal (179 Mpx) the declared pixel
# count; below it, past ours, the declared width and height.
BOMBS = {
    "png-10Gpx": (png_bomb(100_000, 100_000), "10000000000 pixels"),
    "gif-4Gpx": (gif_bomb(65_535, 65_535), "4294836225 pixels"),
    "jpeg-4Gpx": (jpeg_bomb(65_500, 65_500), "4290250000 pixels"),
    "png-100Mpx": (png_bomb(10_000, 10_000), "10000x10000 pixels"),
}


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Pillow decode (`ImageFile.load`, which PNG, GIF and JPEG use) from now on."""
    seen: list[str] = []
    load = ImageFile.ImageFile.load

    def watched(image: ImageFile.ImageFile) -> Any:
        seen.append(f"{image.format} {image.size}")
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", watched)
    return seen


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        data_dir=tmp_path,
        allow_private_urls=True,
        image_max_pixels=MAX_PIXELS,
    )
    store = open_store(settings.resolved_database_url)
    ctx = build_context(
        settings, store, open_storage(settings.resolved_storage_url), Registry.load()
    )
    # Keyless, from loopback: every dialect serves the client without credentials.
    yield TestClient(create_app(ctx), client=("127.0.0.1", 40000), base_url="http://127.0.0.1")
    ctx.close()
    store.engine.dispose()


@pytest.fixture
def image_host() -> Iterator[PeerServer]:
    server = PeerServer().start()
    yield server
    server.close()


def queued(client: TestClient) -> int:
    answer = client.get("/v1/videos")
    assert answer.status_code == 200, answer.text
    return len(answer.json()["data"])


def aimlapi_url(client: TestClient, host: PeerServer, bomb: bytes) -> tuple[int, str]:
    host.answers["/bomb"] = Answer(body=bomb, headers={"content-type": "image/png"})
    body = {"model": I2V, "prompt": "move", "image_url": host.url("/bomb")}
    answer = client.post("/v2/video/generations", json=body)
    return answer.status_code, answer.json()["message"]


def aimlapi_data_uri(client: TestClient, host: PeerServer, bomb: bytes) -> tuple[int, str]:
    body = {"model": I2V, "prompt": "move", "image_url": data_uri(bomb)}
    answer = client.post("/v2/video/generations", json=body)
    return answer.status_code, answer.json()["message"]


def openai_upload(client: TestClient, host: PeerServer, bomb: bytes) -> tuple[int, str]:
    answer = client.post(
        "/v1/videos",
        data={"prompt": "move"},
        files={"input_reference": ("first.png", bomb, "image/png")},
    )
    if answer.status_code == 200:
        return 200, answer.text
    error = answer.json()["error"]
    assert error["param"] == "input_reference", error
    return answer.status_code, error["message"]


def kling_base64(client: TestClient, host: PeerServer, bomb: bytes) -> tuple[int, str]:
    body = {"model_name": "kling-v2-master", "image": base64.b64encode(bomb).decode()}
    answer = client.post("/v1/videos/image2video", json=body)
    return answer.status_code, answer.json()["message"]


ROUTES: dict[str, tuple[Callable[[TestClient, PeerServer, bytes], tuple[int, str]], str]] = {
    "aimlapi-url": (aimlapi_url, "image_url"),
    "aimlapi-data-uri": (aimlapi_data_uri, "image_url"),
    "openai-upload": (openai_upload, "input_reference"),
    "kling-base64": (kling_base64, "image"),
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("bomb", BOMBS)
def test_a_pixel_bomb_is_refused_from_its_header(
    client: TestClient, image_host: PeerServer, decodes: list[str], route: str, bomb: str
) -> None:
    send, field = ROUTES[route]
    data, declared = BOMBS[bomb]
    assert len(data) < 200
    status, message = send(client, image_host, data)
    assert status == 400, message
    assert message.startswith(f"{field}: ") and declared in message, message
    assert f"limit of {MAX_PIXELS}" in message
    assert decodes == []
    assert queued(client) == 0


def test_a_real_image_within_the_limit_is_decoded(
    client: TestClient, image_host: PeerServer, decodes: list[str]
) -> None:
    """The control: the watch on decoding does see one."""
    status, message = openai_upload(client, image_host, png_bytes(32, 24))
    assert status == 200, message
    assert decodes and set(decodes) == {"PNG (32, 24)"}
