"""The database's figures for `/metrics` (`jobs.stats`) on real SQLite and PostgreSQL, and
the route itself: who may read it, and labels by route template."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from reelforge.api.access import UNMATCHED_ROUTE
from reelforge.api.app import build_context, create_app
from reelforge.api.auth import LOCAL_TENANT
from reelforge.api.metrics import STAGE_BUCKETS_S
from reelforge.engines import Registry
from reelforge.jobs import JobStore, open_store
from reelforge.jobs.result import JobResult, StageTimings
from reelforge.jobs.stats import JobStats
from reelforge.jobs.store import WebhookSubscription
from reelforge.jobs.webhooks import WebhookOutbox
from reelforge.settings import Settings
from reelforge.storage import open_storage
from reelforge.worker.devices import gpu_memory_probe
from reelforge.worker.heartbeat import Heartbeat
from tests.conftest import make_spec
from tests.integration.test_api_validation import LOOPBACK, T2V
from tests.integration.test_job_store import make_result

I2V = "klingai/v2-master-image-to-video"


def timed_result(name: str, engine_s: float) -> JobResult:
    timings = StageTimings(engine_s=engine_s, encode_s=0.2, store_s=0.01)
    return make_result(name).model_copy(update={"timings": timings})


def test_snapshot_counts_jobs_queue_stages_and_workers(store: JobStore) -> None:
    store.register_worker("w1", [T2V], "host", 1)
    for engine_s in (0.3, 7.0):
        store.create_job(make_spec(T2V), dialect="openai")
        lease = store.claim_next_job("w1", [T2V], 60)
        assert lease is not None
        assert store.complete_job(lease, timed_result(lease.job_id, engine_s))
    store.create_job(make_spec(T2V))
    lease = store.claim_next_job("w1", [T2V], 60)
    assert lease is not None
    store.fail_job(lease, name="boom", message="it broke")
    store.create_job(make_spec(T2V))  # left queued
    store.create_job(make_spec(I2V), dialect="kling")  # left queued

    snap = JobStats(store.engine, STAGE_BUCKETS_S).snapshot(live_within_s=60)

    assert snap.jobs == {
        (T2V, "openai", "succeeded"): 2,
        (T2V, "aimlapi", "failed"): 1,
        (T2V, "aimlapi", "queued"): 1,
        (I2V, "kling", "queued"): 1,
    }
    assert set(snap.oldest_queued_at) == {T2V, I2V}
    assert all(snap.now - at >= 0 for at in snap.oldest_queued_at.values())
    engine = snap.stages[("engine", T2V)]
    assert engine.count == 2 and engine.sum_s == pytest.approx(7.3)
    bound = dict(zip(STAGE_BUCKETS_S, engine.cumulative, strict=True))
    assert (bound[0.25], bound[0.5], bound[5], bound[10]) == (0, 1, 1, 2)
    assert snap.stages[("store", T2V)].cumulative[0] == 2  # 0.01 s: the first bucket
    # Queue wait counts every job a worker claimed, the failed one too.
    assert snap.stages[("queue_wait", T2V)].count == 3
    assert snap.workers == {("idle", ""): 1}
    assert snap.webhook_deliveries == {}
    assert snap.totals == {
        (T2V, "openai", "created"): 2,
        (T2V, "openai", "succeeded"): 2,
        (T2V, "aimlapi", "created"): 2,
        (T2V, "aimlapi", "failed"): 1,
        (I2V, "kling", "created"): 1,
    }


def test_created_and_finished_totals_do_not_go_down_when_jobs_are_deleted(
    store: JobStore,
) -> None:
    for _ in range(3):
        store.create_job(make_spec(T2V))
        lease = store.claim_next_job("w1", [T2V], 60)
        assert lease is not None and store.complete_job(lease, timed_result(lease.job_id, 1.0))
        assert store.delete_job(lease.job_id) is not None
    snap = JobStats(store.engine, STAGE_BUCKETS_S).snapshot(live_within_s=60)
    assert snap.jobs == {}  # the table holds none of them now
    assert snap.totals == {(T2V, "aimlapi", "created"): 3, (T2V, "aimlapi", "succeeded"): 3}


def metrics_client(tmp_path: Path, **settings: object) -> tuple[TestClient, JobStore]:
    config = Settings(data_dir=tmp_path, metrics_max_age_s=0, **settings)  # type: ignore[arg-type]
    store = open_store(config.resolved_database_url)
    ctx = build_context(config, store, open_storage(config.resolved_storage_url), Registry.load())
    app = create_app(ctx)
    return TestClient(app, client=LOOPBACK, base_url="http://127.0.0.1"), store


def families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def test_metrics_count_requests_by_template_and_bound_the_label_values(tmp_path: Path) -> None:
    client, store = metrics_client(tmp_path)
    try:
        job = store.create_job(make_spec(T2V), tenant=LOCAL_TENANT)
        assert client.get(f"/v2/video/generations/{job.id}").status_code == 200
        assert client.get("/no/such/path/123").status_code == 404
        assert client.request("BREW", "/v1/models").status_code == 405
        found = families(client.get("/metrics").text)
    finally:
        client.close()
        store.engine.dispose()
    requests = {
        (labels["route"], labels["method"], labels["status"]): n
        for labels, n in found["reelforge_http_requests_total"]
    }
    assert requests[("/v2/video/generations/{generation_id}", "GET", "200")] == 1
    assert requests[(UNMATCHED_ROUTE, "GET", "404")] == 1
    assert requests[("/v1/models", "OTHER", "405")] == 1
    assert not any(job.id in route for route, _, _ in requests)
    depth = {labels["model"]: n for labels, n in found["reelforge_queue_depth"]}
    assert (depth[T2V], depth[I2V]) == (1, 0)  # every served model has its series
    assert found["reelforge_database_up"] == [({}, 1)]


@pytest.mark.parametrize(
    ("metrics", "key", "status"),
    [
        ("keyed", None, 401),
        ("keyed", "k1", 200),
        ("public", None, 200),
        ("off", "k1", 404),
    ],
)
def test_who_may_read_the_metrics(
    tmp_path: Path, metrics: str, key: str | None, status: int
) -> None:
    client, store = metrics_client(tmp_path, metrics=metrics, api_keys=["k1"])
    headers = {"authorization": f"Bearer {key}"} if key else {}
    try:
        answer = client.get("/metrics", headers=headers)
    finally:
        client.close()
        store.engine.dispose()
    assert answer.status_code == status, answer.text
    if status == 401:
        assert "API key" in answer.json()["message"]


def test_gpu_memory_from_heartbeats_is_in_the_snapshot_and_healthz(store: JobStore) -> None:
    store.register_worker("gpu-worker", [T2V], "host", 1, "cuda:0")
    store.register_worker("cpu-worker", [T2V], "host", 2, "cpu")
    Heartbeat(store, "gpu-worker", 30, 10, gpu_memory=lambda: 3 * 2**30).beat()
    Heartbeat(store, "cpu-worker", 30, 10, gpu_memory=gpu_memory_probe("cpu")).beat()
    snap = JobStats(store.engine, STAGE_BUCKETS_S).snapshot(live_within_s=60)
    assert snap.gpu_memory == {("gpu-worker", "cuda:0"): 3 * 2**30}
    held = {w.id: w.gpu_memory_bytes for w in store.live_workers(within_s=60)}
    assert held == {"gpu-worker": 3 * 2**30, "cpu-worker": None}


def test_the_exposition_labels_workers_gpu_memory_deliveries_and_queue_age(
    tmp_path: Path,
) -> None:
    client, store = metrics_client(tmp_path)
    try:
        store.register_worker("gpu-worker", [T2V], "host", 1, "cuda:0")
        store.register_worker("cpu-worker", [T2V], "host", 2, "cpu")
        Heartbeat(store, "gpu-worker", 30, 10, gpu_memory=lambda: 3 * 2**30).beat()
        outbox = WebhookOutbox(store.engine)
        hook = WebhookSubscription("http://127.0.0.1:9/hook", ("started", "completed"))
        store.create_job(make_spec(T2V), webhook=hook)
        lease = store.claim_next_job("elsewhere", [T2V], 60)
        assert lease is not None and store.complete_job(lease, make_result(lease.job_id))
        [started] = outbox.claim_due(10, 60)
        assert outbox.record_attempt(
            started, status_code=200, error=None, duration_s=0.01, delivered=True, retry_in_s=None
        )
        [completed] = outbox.claim_due(10, 60)
        assert outbox.record_attempt(
            completed, status_code=500, error=None, duration_s=0.01, delivered=False,
            retry_in_s=None,
        )  # fmt: skip
        store.create_job(make_spec(T2V))  # waits: its age is the scrape's time since
        found = families(client.get("/metrics").text)
    finally:
        client.close()
        store.engine.dispose()

    def by(name: str, *keys: str) -> dict[tuple[str, ...], float]:
        return {tuple(labels[k] for k in keys): n for labels, n in found[name]}

    assert by("reelforge_workers", "state", "device") == {("idle", "cuda:0"): 1, ("idle", "cpu"): 1}
    assert by("reelforge_worker_gpu_memory_bytes", "worker", "device") == {
        ("gpu-worker", "cuda:0"): 3 * 2**30
    }
    assert by("reelforge_webhook_deliveries", "outcome") == {
        ("pending",): 0,
        ("sending",): 0,
        ("delivered",): 1,
        ("failed",): 1,
    }
    assert by("reelforge_queue_depth", "model")[(T2V,)] == 1
    assert by("reelforge_queue_oldest_age_seconds", "model")[(T2V,)] > 0
    finished = by("reelforge_generations_finished_total", "model", "dialect", "status")
    assert finished == {(T2V, "aimlapi", "succeeded"): 1}
