"""`GET …/{id}/events` on the real app and a real SQLite store, the job driven through the
store as a worker would (no worker process): replay, resume and the errors before a stream."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelforge.api.app import build_context, create_app
from reelforge.client._sse import SSEParser
from reelforge.engines import Registry
from reelforge.jobs import JobStore, open_store
from reelforge.jobs.result import Artifact, JobResult, StageTimings, VideoArtifact
from reelforge.settings import Settings
from reelforge.storage import open_storage

T2V = "klingai/v2-master-text-to-video"
KEYS = "key-a,key-b"


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[Settings, JobStore]]:
    settings = Settings(data_dir=tmp_path, api_keys=KEYS, event_stream_poll_interval_s=0.05)
    store = open_store(settings.resolved_database_url)
    yield settings, store
    store.engine.dispose()


def client_for(settings: Settings, store: JobStore) -> TestClient:
    ctx = build_context(
        settings, store, open_storage(settings.resolved_storage_url), Registry.load()
    )
    return TestClient(create_app(ctx), base_url="http://127.0.0.1")


@pytest.fixture
def client(parts: tuple[Settings, JobStore]) -> TestClient:
    return client_for(*parts)


def auth(key: str = "key-a", **headers: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}", **headers}


def create(client: TestClient) -> str:
    answer = client.post(
        "/v2/video/generations", json={"model": T2V, "prompt": "a fox"}, headers=auth()
    )
    assert answer.status_code == 200, answer.text
    generation_id: str = answer.json()["id"]
    return generation_id


def run_to_completion(store: JobStore, progress: tuple[float, ...] = (0.3, 0.6)) -> None:
    lease = store.claim_next_job("w1", [T2V], lease_seconds=30)
    assert lease is not None
    for value in progress:
        assert store.report_progress(lease, value)
    artifact = Artifact(key=f"jobs/{lease.job_id}/preview.gif", size=10, content_type="image/gif")
    result = JobResult(
        video=VideoArtifact(
            key=f"jobs/{lease.job_id}/video.mp4",
            size=100,
            content_type="video/mp4",
            width=1280,
            height=720,
            fps=24,
            frames=120,
        ),
        preview=artifact,
        thumbnail=artifact,
        engine="testsrc",
        timings=StageTimings(engine_s=1.0, encode_s=0.5, store_s=0.1),
    )
    assert store.complete_job(lease, result)


def read_stream(client: TestClient, generation_id: str, **headers: str) -> list[dict[str, Any]]:
    """Every event of the stream as {id, event, data}; the stream must end by itself."""
    parser = SSEParser()
    events = []
    with client.stream(
        "GET", f"/v2/video/generations/{generation_id}/events", headers=auth(**headers)
    ) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        for line in answer.iter_lines():
            event = parser.feed(line)
            if event is not None:
                events.append(
                    {"id": event.id, "event": event.event, "data": json.loads(event.data)}
                )
    return events


def test_a_finished_job_replays_every_transition_in_order_then_ends(
    client: TestClient, parts: tuple[Settings, JobStore]
) -> None:
    store = parts[1]
    generation_id = create(client)
    run_to_completion(store)

    events = read_stream(client, generation_id)

    stored = store.events_after(generation_id)
    assert [int(e["id"]) for e in events] == [e.seq for e in stored]
    assert [e["event"] for e in events] == [
        "queued",
        "generating",
        "generating",
        "generating",
        "completed",
    ]
    progress = [e["data"]["progress"] for e in events]
    assert progress == sorted(progress) and progress[-1] == 100
    # Only the terminal event links the files; the replayed past does not know of them.
    assert [e["data"]["video"] is not None for e in events] == [False] * 4 + [True]
    assert events[0]["data"]["started_at"] is None
    final = events[-1]["data"]
    assert final["eta_seconds"] == 0
    assert final["timings"]["engine_s"] == 1.0
    poll = client.get(f"/v2/video/generations/{generation_id}", headers=auth()).json()
    assert {k: v for k, v in final.items() if k not in ("video", "preview", "thumbnail")} == {
        k: v for k, v in poll.items() if k not in ("video", "preview", "thumbnail")
    }


def test_last_event_id_resumes_after_that_event(
    client: TestClient, parts: tuple[Settings, JobStore]
) -> None:
    store = parts[1]
    generation_id = create(client)
    run_to_completion(store)
    stored = [e.seq for e in store.events_after(generation_id)]

    for resume_after in stored:
        events = read_stream(client, generation_id, **{"Last-Event-ID": str(resume_after)})
        replayed = [int(e["id"]) for e in events]
        after = [seq for seq in stored if seq > resume_after]
        # Everything after it; resuming after the last sends the final state once more.
        assert replayed == (after or [stored[-1]])


def test_a_stream_opened_while_queued_follows_the_job_to_its_end(
    client: TestClient, parts: tuple[Settings, JobStore]
) -> None:
    store = parts[1]
    generation_id = create(client)
    ctx = client.app.state.context  # type: ignore[attr-defined]

    def worker() -> None:
        # Only once the stream is open, so it sees the job queued first.
        while ctx.streams.slots.open == 0:
            threading.Event().wait(0.01)
        run_to_completion(store, progress=(0.1, 0.2, 0.5, 0.8))

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        events = read_stream(client, generation_id)
    finally:
        thread.join(10)
    statuses = [e["event"] for e in events]
    assert statuses[0] == "queued" and statuses[-1] == "completed"
    assert set(statuses[1:-1]) == {"generating"}
    progress = [e["data"]["progress"] for e in events]
    assert progress == sorted(progress)
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids)
    assert set(ids) >= {e.seq for e in store.events_after(generation_id)}  # no transition missed
    assert ctx.streams.slots.open == 0  # the ended stream gave its slot back


def test_another_tenants_or_a_missing_generation_is_a_plain_404(client: TestClient) -> None:
    generation_id = create(client)
    for key, gid in (("key-b", generation_id), ("key-a", "no-such-id")):
        answer = client.get(f"/v2/video/generations/{gid}/events", headers=auth(key))
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json()["statusCode"] == 404


def test_a_malformed_last_event_id_is_named(client: TestClient) -> None:
    generation_id = create(client)
    answer = client.get(
        f"/v2/video/generations/{generation_id}/events", headers=auth(**{"Last-Event-ID": "x1"})
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["field"] == "Last-Event-ID"


def test_streams_past_the_limit_are_refused_with_503(
    parts: tuple[Settings, JobStore],
) -> None:
    settings, store = parts
    client = client_for(settings.model_copy(update={"event_stream_limit": 1}), store)
    generation_id = create(client)
    held = client.app.state.context.streams.slots.acquire()  # type: ignore[attr-defined]
    try:
        answer = client.get(f"/v2/video/generations/{generation_id}/events", headers=auth())
        assert answer.status_code == 503
        assert "Retry-After" in answer.headers
    finally:
        held.release()
    run_to_completion(store)
    assert read_stream(client, generation_id)[-1]["event"] == "completed"


def test_a_deleted_generation_ends_its_stream_with_a_deleted_event(
    client: TestClient, parts: tuple[Settings, JobStore]
) -> None:
    store = parts[1]
    generation_id = create(client)
    ctx = client.app.state.context  # type: ignore[attr-defined]

    def delete_when_watched() -> None:
        while ctx.streams.slots.open == 0:
            threading.Event().wait(0.01)
        store.delete_job(generation_id)

    thread = threading.Thread(target=delete_when_watched)
    thread.start()
    try:
        events = read_stream(client, generation_id)
    finally:
        thread.join(10)
    assert events[-1]["event"] == "deleted"
    assert events[-1]["data"] == {"id": generation_id, "deleted": True}
