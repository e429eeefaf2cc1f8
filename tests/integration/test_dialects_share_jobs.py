"""One job, every view: a generation made in one dialect reads in the others (same tenant),
each in its own shape; `/v1/models` names what each dialect may call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelforge.api.app import build_context, create_app
from reelforge.engines import Registry
from reelforge.jobs import open_store
from reelforge.settings import Settings
from reelforge.storage import open_storage

T2V = "klingai/v2-master-text-to-video"
LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # Keyless: every dialect's caller on loopback is the same (local) tenant.
    settings = Settings(data_dir=tmp_path)
    store = open_store(settings.resolved_database_url)
    ctx = build_context(
        settings, store, open_storage(settings.resolved_storage_url), Registry.load()
    )
    yield TestClient(create_app(ctx), client=LOOPBACK, base_url="http://127.0.0.1")
    ctx.close()
    store.engine.dispose()


def views(client: TestClient, job_id: str) -> dict[str, Any]:
    """The job as each dialect shows it."""
    aimlapi = client.get(f"/v2/video/generations/{job_id}")
    openai = client.get(f"/v1/videos/{job_id}")
    kling = client.get(f"/v1/videos/text2video/{job_id}")
    for response in (aimlapi, openai, kling):
        assert response.status_code == 200, response.text
    return {"aimlapi": aimlapi.json(), "openai": openai.json(), "kling": kling.json()}


@pytest.mark.parametrize("made_in", ["aimlapi", "openai", "kling"])
def test_a_generation_made_in_one_dialect_reads_in_every_other(
    client: TestClient, made_in: str
) -> None:
    prompt = "a red circle moving left"
    created = {
        "aimlapi": lambda: client.post(
            "/v2/video/generations", json={"model": T2V, "prompt": prompt}
        ),
        "openai": lambda: client.post("/v1/videos", json={"model": T2V, "prompt": prompt}),
        "kling": lambda: client.post(
            "/v1/videos/text2video", json={"model_name": "kling-v2-master", "prompt": prompt}
        ),
    }[made_in]()
    assert created.status_code == 200, created.text
    body = created.json()
    job_id = body["data"]["task_id"] if made_in == "kling" else body["id"]
    seen = views(client, job_id)
    assert seen["aimlapi"]["id"] == job_id and seen["aimlapi"]["status"] == "queued"
    assert seen["openai"]["id"] == job_id and seen["openai"]["status"] == "queued"
    assert seen["openai"]["object"] == "video"
    assert seen["kling"]["code"] == 0
    assert seen["kling"]["data"]["task_id"] == job_id
    assert seen["kling"]["data"]["task_status"] == "submitted"


def test_models_name_what_each_dialect_may_call(client: TestClient) -> None:
    models = {card["id"]: card for card in client.get("/v1/models").json()["data"]}
    t2v = models[T2V]["dialects"]
    assert t2v["aimlapi"] == [T2V]
    assert t2v["openai"][0] == T2V and "sora-2" in t2v["openai"]
    assert "kling-v2-master" in t2v["kling"]
    assert "kling" not in models["reelforge/micro"]["dialects"]
