"""S3 storage when its server fails, against a real SeaweedFS of this module's own (started,
killed and restarted here): every failure is ServiceUnavailable naming the artifact store and
the cause, never the endpoint or a secret; an upload cut off midway leaves no half object.
Credentials left out of reelforge's settings come from the standard AWS variables."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from reelforge.api.app import build_context, create_app
from reelforge.engines import Registry
from reelforge.errors import ServiceUnavailable
from reelforge.jobs import open_store
from reelforge.settings import Settings
from reelforge.startup import open_configured_storage
from reelforge.storage import S3Storage, Storage
from tests.conftest import make_spec, weed_or_skip
from tests.fixtures.seaweedfs import ACCESS_KEY, BUCKET, SECRET_KEY, SeaweedFS

KEY = "jobs/abc/video.mp4"
_UPLOAD_MIB = 64  # eight multipart parts: seconds to upload here, so it is cut midway
_WAIT_S = 60.0


@pytest.fixture(scope="module")
def weed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs-faults"), weed_or_skip()) as server:
        yield server


@pytest.fixture
def storage(weed: SeaweedFS, request: pytest.FixtureRequest) -> S3Storage:
    if weed.process is None:  # a test before this one stopped it and failed
        weed.start()
    return S3Storage.from_url(f"s3://{BUCKET}/{request.node.name[:60]}", weed.options())


def _stored_bytes(weed: SeaweedFS) -> int:
    return sum(path.stat().st_size for path in (weed.root / "data").rglob("*") if path.is_file())


def _wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_a_store_killed_mid_upload_keeps_the_earlier_object_whole(
    weed: SeaweedFS, storage: S3Storage, tmp_path: Path
) -> None:
    storage.put_bytes(KEY, b"the earlier video", "video/mp4")
    source = tmp_path / "big.mp4"
    source.write_bytes(b"\x01" * (_UPLOAD_MIB * 1024 * 1024))
    failures: list[BaseException] = []

    def upload() -> None:
        try:
            storage.put_file(KEY, source, "video/mp4")
        except BaseException as exc:
            failures.append(exc)

    baseline = _stored_bytes(weed)
    uploader = threading.Thread(target=upload)
    uploader.start()
    # The first part is on the server's disk: the upload is under way, not yet complete.
    _wait_until(lambda: _stored_bytes(weed) > baseline + 8 * 1024 * 1024, "a part to land")
    assert uploader.is_alive(), "the upload finished before the store was killed"
    weed.stop(kill=True)
    uploader.join(_WAIT_S)
    assert not uploader.is_alive()

    assert len(failures) == 1 and isinstance(failures[0], ServiceUnavailable), failures
    message = failures[0].message
    assert message.startswith("the artifact store failed: "), message
    assert weed.endpoint not in message and "127.0.0.1" not in message

    weed.start()
    assert storage.get_bytes(KEY) == b"the earlier video"
    found = storage.stat(KEY)
    assert found is not None and found.size == len(b"the earlier video")


def test_every_call_to_a_stopped_store_is_unavailable_with_its_cause(
    weed: SeaweedFS, storage: S3Storage, tmp_path: Path
) -> None:
    storage.put_bytes(KEY, b"video", "video/mp4")
    weed.stop()
    source = tmp_path / "v.mp4"
    source.write_bytes(b"v")
    try:
        for call in (
            lambda: storage.put_bytes(KEY, b"x", "video/mp4"),
            lambda: storage.put_file(KEY, source, "video/mp4"),
            lambda: storage.get_bytes(KEY),
            lambda: storage.open_stream(KEY),
            lambda: storage.stat(KEY),
            lambda: storage.delete(KEY),
            lambda: storage.delete_prefix("jobs/"),
        ):
            with pytest.raises(ServiceUnavailable) as raised:
                call()
            assert raised.value.message == "the artifact store failed: connection refused"
            assert raised.value.retry_after_s > 0
    finally:
        weed.start()
    assert storage.get_bytes(KEY) == b"video"


def test_wrong_credentials_are_refused_access_without_naming_them(
    weed: SeaweedFS, storage: S3Storage
) -> None:
    wrong = replace(weed.options(), secret_access_key="not-" + SECRET_KEY)
    refused = S3Storage.from_url(f"s3://{BUCKET}/creds", wrong)
    with pytest.raises(ServiceUnavailable) as raised:
        refused.put_bytes(KEY, b"x", "video/mp4")
    message = raised.value.message
    assert message.startswith("the artifact store refused access: HTTP 403"), message
    assert message.endswith("check its credentials")
    assert SECRET_KEY not in message and weed.endpoint not in message


def test_the_api_answers_503_naming_the_store_while_it_is_down_and_serves_once_back(
    weed: SeaweedFS, storage: S3Storage, tmp_path: Path
) -> None:
    store = open_store(Settings(data_dir=tmp_path).resolved_database_url)
    ctx = build_context(Settings(data_dir=tmp_path), store, storage, Registry.load())
    client = TestClient(create_app(ctx), base_url="http://127.0.0.1")
    # A file of a generation that exists: links die with their generation.
    key = f"jobs/{store.create_job(make_spec()).id}/video.mp4"
    storage.put_bytes(key, b"video bytes", "video/mp4")
    link = ctx.links.url("http://127.0.0.1", key)
    try:
        weed.stop()
        down = client.get(link)
        assert down.status_code == 503, down.text
        assert down.json()["message"] == "the artifact store failed: connection refused"
        assert down.headers["retry-after"] == "5"
        weed.start()
        back = client.get(link)
        assert (back.status_code, back.content) == (200, b"video bytes")
    finally:
        if weed.process is None:
            weed.start()
        ctx.close()
        store.engine.dispose()


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No S3 key in reelforge's own settings, and none of the AWS variables this machine may
    have: each test sets the ones it means."""
    for name in (
        "REELFORGE_S3_ACCESS_KEY_ID",
        "REELFORGE_S3_SECRET_ACCESS_KEY",
        "REELFORGE_S3_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    for name in ("AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return monkeypatch


def _configured_storage(weed: SeaweedFS, tmp_path: Path) -> Storage:
    """The store `serve` and `worker` open from their settings: endpoint only, no key."""
    settings = Settings(
        data_dir=tmp_path,
        storage_url=f"s3://{BUCKET}/aws-variables",
        s3_endpoint_url=weed.endpoint,
        s3_allow_http=True,
    )
    assert settings.s3_access_key_id == settings.s3_secret_access_key == ""
    return open_configured_storage(settings)


def test_the_standard_aws_variables_give_the_credentials_and_region(
    weed: SeaweedFS, storage: S3Storage, aws_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    aws_environment.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    configured = _configured_storage(weed, tmp_path)
    source = tmp_path / "video.mp4"
    source.write_bytes(b"\x02" * 70_000)
    assert configured.put_file(KEY, source, "video/mp4").size == 70_000
    assert b"".join(configured.open_stream(KEY).chunks) == source.read_bytes()
    found = configured.stat(KEY)
    assert found is not None and found.size == 70_000
    configured.delete(KEY)
    assert configured.stat(KEY) is None


def test_a_wrong_aws_secret_is_refused_access_without_naming_it(
    weed: SeaweedFS, storage: S3Storage, aws_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wrong = "not-" + SECRET_KEY
    aws_environment.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    configured = _configured_storage(weed, tmp_path)
    for call in (
        lambda: configured.put_bytes(KEY, b"x", "video/mp4"),
        lambda: configured.get_bytes(KEY),
    ):
        with pytest.raises(ServiceUnavailable) as raised:
            call()
        message = raised.value.message
        assert message.startswith("the artifact store refused access: HTTP 403"), message
        assert message.endswith("check its credentials")
        assert wrong not in message and ACCESS_KEY not in message
