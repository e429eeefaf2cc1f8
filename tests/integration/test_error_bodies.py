"""Internal failures answer without a stack trace or a secret: the real app on a store whose
every call fails, first as a broken disk would (an `OSError` naming a path, which the store
turns into a 503), then with an unexpected exception whose text carries the server's
secrets (a 500). Each dialect's create with an image, a signed download and a delete are
sent; every answer, body and headers, is free of the secrets and of any trace, while the
log does get the exception (so the failure did happen)."""

from __future__ import annotations

import base64
import errno
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from reelforge.api.app import build_context, create_app
from reelforge.api.context import ApiContext
from reelforge.engines import Registry
from reelforge.jobs import open_store
from reelforge.settings import Settings
from reelforge.storage import LocalStorage, StoredObject
from reelforge.storage.errors import storage_error
from tests.integration.test_api_validation import I2V, T2V, data_uri, png_bytes

BOOTSTRAP_KEY = "bootstrap-key-4c1d9e0b7a"
SIGNING_SECRET = "url-signing-secret-93be01f2"
KLING_ACCESS, KLING_SECRET = "AK-errors", "kling-secret-" + "z" * 30
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"webhook-secret-of-this-test").decode()
SECRETS = (BOOTSTRAP_KEY, SIGNING_SECRET, KLING_SECRET, WEBHOOK_SECRET)
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
TRACES = ("Traceback", '.py", line', "RuntimeError", "OSError", "site-packages")


class FailingStorage(LocalStorage):
    """Local storage whose reads, writes and deletes raise `failure()`."""

    def __init__(self, root: Path, failure: Any) -> None:
        super().__init__(root)
        self.failure = failure
        self.failures = 0

    def _fail(self) -> Exception:
        self.failures += 1
        exc: Exception = self.failure()
        return exc

    def put_bytes(self, key: str, data: bytes, content_type: str) -> StoredObject:
        raise self._fail()

    def stat(self, key: str) -> StoredObject | None:
        raise self._fail()

    def delete_prefix(self, prefix: str) -> None:
        raise self._fail()


def broken_disk() -> Exception:
    # As LocalStorage raises it: translated, from an OSError whose path holds a secret.
    os_error = OSError(errno.EIO, "Input/output error", f"/srv/{SIGNING_SECRET}/{BOOTSTRAP_KEY}")
    return storage_error(os_error)


def unexpected() -> Exception:
    return RuntimeError(f"connect postgresql://app:{BOOTSTRAP_KEY}@db/{SIGNING_SECRET}")


@pytest.fixture(params=[broken_disk, unexpected], ids=["broken-disk", "unexpected"])
def context(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiContext]:
    settings = Settings(
        data_dir=tmp_path,
        api_keys=[BOOTSTRAP_KEY],
        kling_keys=[f"{KLING_ACCESS}:{KLING_SECRET}"],
        url_signing_secret=SIGNING_SECRET,
        webhook_secret=WEBHOOK_SECRET,
    )
    store = open_store(settings.resolved_database_url)
    storage = FailingStorage(tmp_path / "artifacts", request.param)
    ctx = build_context(settings, store, storage, Registry.load())
    yield ctx
    ctx.close()
    store.engine.dispose()


KEY = {"authorization": f"Bearer {BOOTSTRAP_KEY}"}


def kling_headers() -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": KLING_ACCESS, "exp": now + 600, "nbf": now - 5}
    return {"authorization": "Bearer " + jwt.encode(claims, KLING_SECRET, algorithm="HS256")}


def answers(client: TestClient, ctx: ApiContext) -> dict[str, Any]:
    image = png_bytes()
    created = client.post("/v2/video/generations", json={"model": T2V, "prompt": "x"}, headers=KEY)
    assert created.status_code == 200, created.text
    job_id = created.json()["id"]
    return {
        "aimlapi create": client.post(
            "/v2/video/generations",
            json={"model": I2V, "prompt": "x", "image_url": data_uri(image)},
            headers=KEY,
        ),
        "openai create": client.post(
            "/v1/videos",
            data={"prompt": "x"},
            files={"input_reference": ("a.png", image, "image/png")},
            headers=KEY,
        ),
        "kling create": client.post(
            "/v1/videos/image2video",
            json={"model_name": "kling-v2-master", "image": base64.b64encode(image).decode()},
            headers=kling_headers(),
        ),
        "download": client.get(ctx.signer.url("http://127.0.0.1", f"jobs/{job_id}/video.mp4")),
        "delete": client.delete(f"/v2/video/generations/{job_id}", headers=KEY),
    }


def test_internal_failures_answer_without_trace_or_secret(
    context: ApiContext, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(
        create_app(context), base_url="http://127.0.0.1", raise_server_exceptions=False
    )
    with caplog.at_level(logging.ERROR):
        sent = answers(client, context)
    assert isinstance(context.storage, FailingStorage)
    assert context.storage.failures == len(sent)  # each request met the failure
    for name, answer in sent.items():
        assert answer.status_code in (500, 503), (name, answer.status_code, answer.text)
        seen = answer.text + "\n" + "\n".join(f"{k}: {v}" for k, v in answer.headers.items())
        for secret in SECRETS:
            assert secret not in seen, (name, seen)
        for trace in TRACES:
            assert trace not in seen, (name, seen)
    # Logged for the operator under each answer's request id; an unexpected error with its
    # traceback, an expected one (the broken disk) in one line.
    logged = [record.getMessage() for record in caplog.records]
    for name, answer in sent.items():
        # The header, the one of the body (a 500 is answered outside the middleware that
        # sets the header on every other answer).
        request_id = answer.headers["x-request-id"]
        assert set(REQUEST_ID.findall(answer.text)) <= {request_id}, (name, answer.text)
        assert any(request_id in line for line in logged), (name, logged)
    traced = [r.exc_info[1] for r in caplog.records if r.exc_info]
    if context.storage.failure is unexpected:
        assert len(traced) == len(sent) and all(isinstance(e, RuntimeError) for e in traced)
    else:
        assert traced == []
