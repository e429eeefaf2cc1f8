"""`/files/...` on a real server: a key that tries to leave the artifact store, by `..`, by
any percent-encoding of it or of `/`, by an absolute path, a backslash or a NUL, is a 4xx,
even carrying a valid signature (the server's secret is the test's), and no byte of a file
outside the store is ever served. Paths are sent as written (http.client normalises
nothing), so the server sees exactly what an attacker would send."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from reelforge.api.files import FileSigner
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.slow

SIGNING_SECRET = "file-links-test-secret-0123456789abcdef"
SENTINEL = b"SENTINEL-outside-the-artifact-store"


@pytest.fixture(scope="module")
def server(
    module_server_factory: Callable[..., LiveServer], tmp_path_factory: pytest.TempPathFactory
) -> LiveServer:
    live = module_server_factory(url_signing_secret=SIGNING_SECRET, workers="0", wait_ready=False)
    # Beside the data dir and inside it, next to the artifacts folder (and the database).
    (live.data_dir / "sentinel.txt").write_bytes(SENTINEL)
    (live.data_dir.parent / "sentinel.txt").write_bytes(SENTINEL)
    return live


@pytest.fixture(scope="module")
def job(server: LiveServer) -> str:
    """A queued generation (no worker runs here) with a file: links are bound to a job."""
    created = httpx.post(
        server.base_url + "/v2/video/generations",
        json={"model": "klingai/v2-master-text-to-video", "prompt": "x"},
    )
    assert created.status_code == 200, created.text
    job_id: str = created.json()["id"]
    folder = server.data_dir / "artifacts" / "jobs" / job_id
    folder.mkdir(parents=True)
    (folder / "video.mp4").write_bytes(b"inside")
    return job_id


def get_raw(server: LiveServer, raw_key: str, *, signed: bool = True) -> tuple[int, bytes]:
    """GET `/files/<raw_key>` as written, signed for the key the server decodes it to."""
    path = "/files/" + raw_key
    if signed:
        key = unquote(raw_key)  # what the route's `key` is: the path, percent-decoded once
        url = FileSigner(SIGNING_SECRET.encode(), 3600).url("http://x", key)
        path += "?" + urlsplit(url).query
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_a_signed_key_inside_the_store_is_served(server: LiveServer, job: str) -> None:
    assert get_raw(server, f"jobs/{job}/video.mp4") == (200, b"inside")


ESCAPES = [
    "../sentinel.txt",
    "../../sentinel.txt",
    "jobs/{job}/../../../sentinel.txt",
    "./../sentinel.txt",
    "%2e%2e/sentinel.txt",
    "%2e%2e%2fsentinel.txt",
    "%2E%2E%2F%2E%2E%2Fsentinel.txt",
    "..%2Fsentinel.txt",
    "jobs%2F..%2F..%2F..%2Fsentinel.txt",
    "%252e%252e%252fsentinel.txt",  # double-encoded: a literal "%2e%2e%2f" name, not `..`
    "..%252fsentinel.txt",
    "..\\sentinel.txt",
    "..%5csentinel.txt",
    "jobs\\..\\..\\..\\sentinel.txt",
    "jobs/{job}%00/../../../sentinel.txt",
    "jobs/{job}/video.mp4%00",
    "jobs//../../sentinel.txt",
    "../reelforge.db",
]
SQLITE = b"SQLite format 3"


@pytest.mark.parametrize("raw_key", ESCAPES)
@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_a_key_that_leaves_the_store_is_refused(
    server: LiveServer, job: str, raw_key: str, signed: bool
) -> None:
    status, body = get_raw(server, raw_key.format(job=job), signed=signed)
    assert 400 <= status < 500, (status, body[:200])
    if signed:  # a valid signature leaves the key's own check to refuse it
        assert status in (400, 404), (status, body[:200])
    assert SENTINEL not in body and SQLITE not in body
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("absolute", [True, False], ids=["slash", "encoded"])
def test_an_absolute_path_is_refused(server: LiveServer, absolute: bool) -> None:
    target = str((server.data_dir.parent / "sentinel.txt").resolve())
    raw_key = target if absolute else target.replace("/", "%2F")
    status, body = get_raw(server, raw_key)
    assert status in (400, 404), (status, body[:200])
    assert SENTINEL not in body


def test_the_files_guarded_are_really_there(server: LiveServer) -> None:
    """Else a 404 above would prove nothing."""
    assert (server.data_dir / "sentinel.txt").read_bytes() == SENTINEL
    assert (server.data_dir.parent / "sentinel.txt").read_bytes() == SENTINEL
    assert (server.data_dir / "reelforge.db").read_bytes().startswith(SQLITE)
