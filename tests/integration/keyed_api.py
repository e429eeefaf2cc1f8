"""Helpers for the tests of a keyed API (managed keys, quotas, tenants) on the real app over
real SQLite and PostgreSQL: the `parts` fixture (tests/integration/conftest.py) gives the
settings, job store and key store; these build the app and drive it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from reelforge.api.app import build_context, create_app
from reelforge.api.context import ApiContext
from reelforge.engines import Registry
from reelforge.jobs import JobStore
from reelforge.settings import Settings
from reelforge.storage import open_storage
from reelforge.tenancy.keys import KeyStore
from tests.conftest import stored_result

__all__ = [
    "I2V",
    "LOOPBACK",
    "REMOTE",
    "T2V",
    "Parts",
    "app_for",
    "bearer",
    "create",
    "finish_all",
    "job_count",
]

T2V = "klingai/v2-master-text-to-video"
I2V = "klingai/v2-master-image-to-video"
TESTSRC = Path(__file__).resolve().parents[1] / "fixtures" / "testsrc.toml"
REMOTE = ("203.0.113.9", 50000)  # keyed servers serve any address
LOOPBACK = ("127.0.0.1", 50000)

Parts = tuple[Settings, JobStore, KeyStore]


def app_for(settings: Settings, store: JobStore) -> tuple[ApiContext, TestClient]:
    """The app of one API process on `store`, and a client calling it from a remote address."""
    ctx = build_context(
        settings, store, open_storage(settings.resolved_storage_url), Registry.load(TESTSRC)
    )
    return ctx, TestClient(create_app(ctx), client=REMOTE, base_url="http://127.0.0.1")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def create(client: TestClient, secret: str) -> Any:
    """An AI/ML API create with the key `secret`; the answer."""
    return client.post(
        "/v2/video/generations",
        json={"model": T2V, "prompt": "a red circle"},
        headers=bearer(secret),
    )


def job_count(store: JobStore) -> int:
    return sum(store.count_by_status().values())


def finish_all(ctx: ApiContext) -> list[str]:
    """Run every queued job as a worker would: its three files stored, then its result.
    Returns their ids."""
    finished = []
    while (lease := ctx.store.claim_next_job("w1", [T2V, I2V], lease_seconds=60)) is not None:
        result = stored_result(ctx.storage, lease.job_id)
        assert ctx.store.complete_job(lease, result)
        finished.append(lease.job_id)
    return finished
