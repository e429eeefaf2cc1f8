"""The whole service with its artifacts in S3: a real `reelforge serve` process storing into a
real SeaweedFS on loopback, downloads through the API's signed links (streamed from S3) and
through S3 presigned links, deletes that empty the bucket, and the store stopped under a job.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image

from reelforge.storage import S3Storage
from tests.conftest import S3Target, weed_or_skip
from tests.e2e.conftest import LiveServer, wait_for
from tests.e2e.test_service import create, wait_terminal
from tests.fixtures.seaweedfs import BUCKET, SeaweedFS

pytestmark = pytest.mark.slow

T2V = "klingai/v2-master-text-to-video"
MEDIA = ("video", "preview", "thumbnail")


def _no_local_artifacts(server: LiveServer) -> bool:
    artifacts = server.data_dir / "artifacts"
    return not artifacts.exists() or not any(p.is_file() for p in artifacts.rglob("*"))


def _check_downloads(final: dict[str, object], expect_host: str) -> None:
    """Every link of a completed generation downloads whole, from `expect_host`."""
    video, preview, thumbnail = (final[name] for name in MEDIA)
    assert isinstance(video, dict) and isinstance(preview, dict) and isinstance(thumbnail, dict)
    for item in (video, preview, thumbnail):
        assert item["url"].startswith(expect_host + "/"), item["url"]
    answer = httpx.get(video["url"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "video/mp4"
    assert len(answer.content) == video["file_size"]
    assert answer.content[4:8] == b"ftyp"  # an mp4, whole (its size checked above)
    gif = Image.open(io.BytesIO(httpx.get(preview["url"]).content))
    assert gif.format == "GIF"
    webp = Image.open(io.BytesIO(httpx.get(thumbnail["url"]).content))
    assert webp.format == "WEBP"


def test_a_generation_stored_in_s3_downloads_through_signed_links_and_deletes_its_objects(
    server_factory: Callable[..., LiveServer], s3_target: S3Target
) -> None:
    server = server_factory(**s3_target.settings())
    bucket = s3_target.storage()
    created = create(server, {"model": T2V, "prompt": "a red fox", "aspect_ratio": "1:1"})
    final = wait_terminal(server, created["id"])
    assert final["status"] == "completed", final

    _check_downloads(final, server.base_url)  # the API's own links, streamed from S3
    video_url = final["video"]["url"]
    ranged = httpx.get(video_url, headers={"range": "bytes=4-11"})
    assert ranged.status_code == 206
    assert ranged.headers["content-range"] == f"bytes 4-11/{final['video']['file_size']}"
    assert ranged.content == httpx.get(video_url).content[4:12]
    assert httpx.get(video_url, headers={"range": "bytes=999999999-"}).status_code == 416

    job = created["id"]
    stored = bucket.keys(f"jobs/{job}/")  # jobs/<id>/<run>/<file>: the one run's files
    assert sorted(key.rsplit("/", 1)[1] for key in stored) == [
        "preview.gif",
        "thumbnail.webp",
        "video.mp4",
    ]
    assert len({key.rsplit("/", 1)[0] for key in stored}) == 1, stored
    assert _no_local_artifacts(server)

    deleted = httpx.delete(f"{server.base_url}/v2/video/generations/{job}")
    assert deleted.status_code == 200
    assert bucket.keys(f"jobs/{job}/") == []
    assert httpx.get(video_url).status_code == 404


def test_presigned_links_point_at_the_store_in_every_dialect(
    server_factory: Callable[..., LiveServer], s3_target: S3Target, s3_endpoint: str
) -> None:
    server = server_factory(public_links="presigned", **s3_target.settings())
    created = create(server, {"model": T2V, "prompt": "a blue fish", "aspect_ratio": "16:9"})
    final = wait_terminal(server, created["id"])
    assert final["status"] == "completed", final
    for name in MEDIA:
        url = httpx.URL(final[name]["url"])
        assert str(url).startswith(f"{s3_endpoint}/{BUCKET}/"), url
        assert "X-Amz-Signature" in url.params
    _check_downloads(final, s3_endpoint)  # straight from SeaweedFS, signed by the server

    kling = httpx.get(f"{server.base_url}/v1/videos/text2video/{created['id']}")
    assert kling.status_code == 200, kling.text
    videos = kling.json()["data"]["task_result"]["videos"]
    assert videos and videos[0]["url"].startswith(f"{s3_endpoint}/{BUCKET}/")

    # The OpenAI dialect has no links, only its content route: streamed from S3.
    content = httpx.get(f"{server.base_url}/v1/videos/{created['id']}/content")
    assert content.status_code == 200
    assert content.content == httpx.get(final["video"]["url"]).content
    assert _no_local_artifacts(server)


def test_a_store_stopped_before_the_upload_fails_the_job_clearly_and_a_restart_heals(
    server_factory: Callable[..., LiveServer], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    models = tmp_path / "models.toml"
    models.write_text(
        f'[models."{T2V}"]\nengine = "tests.fixtures.engines:GateEngine"\ncheckpoint = "{gate}"\n'
    )
    # Its own SeaweedFS, since this test stops it.
    with SeaweedFS(tmp_path / "seaweedfs", weed_or_skip()) as weed:
        target = S3Target(weed.endpoint, f"s3://{BUCKET}/fault")
        server = server_factory(models_file=str(models), **target.settings())
        created = create(server, {"model": T2V, "prompt": "a cat", "aspect_ratio": "1:1"})
        wait_for(lambda: list(gate.glob("started-*")), 60, "the job to start rendering")

        weed.stop(kill=True)  # gone as a crash leaves it: every connection refused
        (gate / "release").touch()
        final = wait_terminal(server, created["id"])
        assert final["status"] == "error", final
        assert final["error"]["name"] == "storage_unavailable", final
        message = final["error"]["message"]
        assert "the artifact store failed: connection refused" in message, final
        assert weed.endpoint not in message and "reelforge-test" not in message
        assert final.get("video") is None

        weed.start()
        # No upload of the failed run reached the store, whole or in part.
        assert S3Storage.from_url(target.url, weed.options()).keys(f"jobs/{created['id']}/") == []
        again = create(server, {"model": T2V, "prompt": "a cat", "aspect_ratio": "1:1"})
        final_again = wait_terminal(server, again["id"])
        assert final_again["status"] == "completed", final_again
        _check_downloads(final_again, server.base_url)
