"""Downloads are streamed: `/files/...` and OpenAI's `/v1/videos/{id}/content` hand out an S3
object a chunk at a time and never read a whole video into the API's memory. The real app
over a real S3 store (SeaweedFS), wrapped so that a whole read fails the test and every
chunk a stream hands out is counted."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reelforge.api.app import build_context, create_app
from reelforge.api.context import ApiContext
from reelforge.engines import Registry
from reelforge.jobs import open_store
from reelforge.settings import Settings
from reelforge.storage import ObjectStream, Storage, StoredObject
from reelforge.storage.base import STREAM_CHUNK_BYTES
from tests.conftest import S3Target, stored_result
from tests.integration.test_openai_api import T2V, A, create

VIDEO_BYTES = 3 * STREAM_CHUNK_BYTES + 12_345  # several chunks, the last a short one


class StreamOnlyStorage(Storage):
    """A real store through which whole reads fail and streamed chunks are counted."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.chunks: list[int] = []  # the size of each chunk handed out, in order

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        return self.inner.put_bytes(key, data, content_type)

    def put_file(self, key: str, source: Path, content_type: str) -> StoredObject:
        return self.inner.put_file(key, source, content_type)

    def get_bytes(self, key: str) -> bytes:
        raise AssertionError(f"{key} was read whole")

    def open_stream(self, key: str, start: int = 0, end: int | None = None) -> ObjectStream:
        stream = self.inner.open_stream(key, start, end)
        stream.chunks = self._counted(stream.chunks)
        return stream

    def _counted(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.chunks.append(len(chunk))
            yield chunk

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def delete_prefix(self, prefix: str) -> None:
        self.inner.delete_prefix(prefix)

    def stat(self, key: str) -> StoredObject | None:
        return self.inner.stat(key)


@pytest.fixture
def storage(s3_target: S3Target) -> StreamOnlyStorage:
    return StreamOnlyStorage(s3_target.storage())


@pytest.fixture
def ctx(tmp_path: Path, storage: StreamOnlyStorage) -> Iterator[ApiContext]:
    settings = Settings(data_dir=tmp_path, api_keys=["key-a"])
    store = open_store(settings.resolved_database_url)
    context = build_context(settings, store, storage, Registry.load())
    yield context
    context.close()
    store.engine.dispose()


def _finished_video(ctx: ApiContext, client: TestClient) -> tuple[str, str, bytes]:
    """An OpenAI video whose job a worker finished with a large mp4 in the store: its id,
    the mp4's key and bytes."""
    video_id = create(client)["id"]
    lease = ctx.store.claim_next_job("w1", [T2V], lease_seconds=60)
    assert lease is not None and lease.job_id == video_id
    data = secrets.token_bytes(VIDEO_BYTES)
    run = "r1"
    result = stored_result(ctx.storage, video_id, video=data, run=run)
    assert ctx.store.complete_job(lease, result)
    return video_id, result.video.key, data


def test_files_and_openai_content_stream_the_video_in_chunks(
    ctx: ApiContext, storage: StreamOnlyStorage
) -> None:
    client = TestClient(create_app(ctx), base_url="http://127.0.0.1")
    video_id, key, data = _finished_video(ctx, client)

    for path, headers in (
        (ctx.signer.url("http://127.0.0.1", key), {}),
        (f"/v1/videos/{video_id}/content", A),
    ):
        storage.chunks.clear()
        answer = client.get(path, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "video/mp4"
        assert int(answer.headers["content-length"]) == len(data)
        assert answer.content == data
        assert sum(storage.chunks) == len(data)
        assert len(storage.chunks) > 1, storage.chunks
        assert max(storage.chunks) <= 2 * STREAM_CHUNK_BYTES, storage.chunks  # never the whole
