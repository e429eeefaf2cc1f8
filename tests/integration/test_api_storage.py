"""The API over a broken or tampered artifact store: a full store answers 507 naming the cause
(not a 500), `/files` does not follow a symlink out of the store, and a deleted generation's
links answer 404 even when its files outlived the delete. The real app, on a real SQLite
store, through a TestClient; no worker needed."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from reelforge.api.app import build_context, create_app
from reelforge.api.context import ApiContext
from reelforge.engines import Registry
from reelforge.errors import ServiceUnavailable
from reelforge.jobs import JobStore, open_store
from reelforge.settings import Settings
from reelforge.storage import LocalStorage
from tests.conftest import make_spec

I2V = "klingai/v2-master-image-to-video"
T2V = "klingai/v2-master-text-to-video"
LOOPBACK = ("127.0.0.1", 40000)


@pytest.fixture
def job_store(tmp_path: Path) -> Iterator[JobStore]:
    store = open_store(Settings(data_dir=tmp_path).resolved_database_url)
    yield store
    store.engine.dispose()


def _context(tmp_path: Path, store: JobStore, storage_root: Path) -> ApiContext:
    settings = Settings(data_dir=tmp_path)
    return build_context(settings, store, LocalStorage(storage_root), Registry.load())


def _image_data_uri() -> str:
    out = io.BytesIO()
    Image.new("RGB", (64, 36), (200, 30, 30)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def test_an_input_image_on_a_full_store_is_answered_507_and_queues_nothing(
    tmp_path: Path, job_store: JobStore, full_filesystem: Path
) -> None:
    app = create_app(_context(tmp_path, job_store, full_filesystem))
    client = TestClient(app, client=LOOPBACK, base_url="http://127.0.0.1")  # keyless: loopback only
    body = {"model": I2V, "prompt": "the circle rolls away", "image_url": _image_data_uri()}
    response = client.post("/v2/video/generations", json=body)

    assert response.status_code == 507, response.text
    assert response.json()["message"] == "the artifact store is full: No space left on device"
    assert sum(job_store.count_by_status().values()) == 0


def test_files_does_not_follow_a_symlink_out_of_the_store(
    tmp_path: Path, job_store: JobStore
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for download")
    ctx = _context(tmp_path, job_store, tmp_path / "artifacts")
    job = job_store.create_job(make_spec())
    ctx.storage.put_bytes(f"jobs/{job.id}/video.mp4", b"video", "video/mp4")
    (tmp_path / "artifacts" / "jobs" / job.id / "leak.txt").symlink_to(secret)
    client = TestClient(create_app(ctx), base_url="http://127.0.0.1")

    def download(key: str) -> tuple[int, bytes]:
        response = client.get(ctx.signer.url("http://127.0.0.1", key))
        return response.status_code, response.content

    assert download(f"jobs/{job.id}/video.mp4") == (200, b"video")
    assert download(f"jobs/{job.id}/leak.txt")[0] == 404


class _UndeletableStorage(LocalStorage):
    """Local storage whose deletes fail, as a store that is away during a DELETE."""

    def delete_prefix(self, prefix: str) -> None:
        raise ServiceUnavailable("the artifact store failed: Input/output error")


def test_a_deleted_generations_link_is_404_though_its_file_outlived_it(
    tmp_path: Path, job_store: JobStore
) -> None:
    settings = Settings(data_dir=tmp_path)
    storage = _UndeletableStorage(tmp_path / "artifacts")
    ctx = build_context(settings, job_store, storage, Registry.load())
    client = TestClient(create_app(ctx), client=LOOPBACK, base_url="http://127.0.0.1")
    created = client.post("/v2/video/generations", json={"model": T2V, "prompt": "x"}).json()
    key = f"jobs/{created['id']}/video.mp4"
    storage.put_bytes(key, b"video", "video/mp4")
    link = ctx.signer.url("http://127.0.0.1", key)
    assert client.get(link).content == b"video"

    deleted = client.delete(f"/v2/video/generations/{created['id']}")
    assert deleted.status_code == 503, deleted.text  # the row went, the file stayed
    assert (tmp_path / "artifacts" / key).read_bytes() == b"video"
    assert client.get(link).status_code == 404
    other = f"jobs/{created['id']}-not/video.mp4"  # a key of no job at all: 404 as well
    assert client.get(ctx.signer.url("http://127.0.0.1", other)).status_code == 404
