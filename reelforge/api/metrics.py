"""Prometheus metrics at `/metrics` (prometheus-client).

Two kinds of figures, from two places:

- per process, counted as requests pass (`HttpMetrics`, fed by `api.access`): HTTP requests
  by route template, method and status, and their latency. With `--api-processes N` the N
  processes share one port and a scrape reaches any one of them, so they count in
  prometheus-client's multiprocess mode (one file per process in a folder `serve` makes):
  any of them answers the sum of all N. Replicas on other hosts are scraped one by one and
  summed by Prometheus, as usual.
- about the whole system, read from the job database at scrape time (`jobs.stats`):
  generations by model, dialect and status, the queue, stage durations, workers, webhook
  deliveries. Every replica answers the same figures, whichever process ran a job; sum
  them across replicas and they count twice (use `max` or scrape one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from fastapi import APIRouter, Depends, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from reelforge.api.context import ApiContext
from reelforge.api.openapi import error_responses
from reelforge.errors import DatabaseUnavailable
from reelforge.jobs.states import JobStatus
from reelforge.jobs.stats import STAGES, JobStats, SystemSnapshot

__all__ = ["STAGE_BUCKETS_S", "HttpMetrics", "SystemCollector", "build_metrics_router"]

# A poll answers in milliseconds; a create that fetches an image may take seconds.
_HTTP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
STAGE_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
"""Stage durations run from a test pattern's milliseconds to a large model's many minutes."""

_FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)
_DELIVERY_STATES = ("pending", "sending", "delivered", "failed")


class HttpMetrics:
    """This process's request counters. `multiprocess_dir`: the folder of prometheus-client's
    multiprocess mode (its values then live in files there, and a scrape sums every
    process's); None: in this process's memory, in a registry of its own (not the library's
    global one, so that several apps can live in one process, as in tests)."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self._registry = None if multiprocess_dir else CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "reelforge_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self._registry,
        )
        self.duration = Histogram(
            "reelforge_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template and method.",
            ["route", "method"],
            buckets=_HTTP_BUCKETS_S,
            registry=self._registry,
        )

    def observe(self, route: str, method: str, status: int, duration_s: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.duration.labels(route, method).observe(duration_s)

    def exposition(self) -> bytes:
        if self._registry is not None:
            return generate_latest(self._registry)
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry, path=str(self.multiprocess_dir))
        return generate_latest(registry)


class SystemCollector(Collector):
    """The figures of one `SystemSnapshot` as metric families; `snapshot` None: the database
    did not answer (only `reelforge_database_up 0`). `models`: the served ids, which get their
    queue series at 0 when nothing waits for them."""

    def __init__(self, snapshot: SystemSnapshot | None, models: Sequence[str]) -> None:
        self.snapshot = snapshot
        self.models = models

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "reelforge_database_up", "Whether this scrape could read the job database."
        )
        up.add_metric([], 0 if self.snapshot is None else 1)
        yield up
        if self.snapshot is not None:
            yield from _system_families(self.snapshot, self.models)


def _system_families(snap: SystemSnapshot, models: Sequence[str]) -> Iterable[Metric]:
    created = CounterMetricFamily(
        "reelforge_generations_created",
        "Generations created, by model and dialect (counted when created: deletes and the "
        "retention sweep do not lower it).",
        labels=["model", "dialect"],
    )
    finished = CounterMetricFamily(
        "reelforge_generations_finished",
        "Generations finished, by model, dialect and status (succeeded, failed, canceled), "
        "counted when they finished.",
        labels=["model", "dialect", "status"],
    )
    for (model, dialect, outcome), n in sorted(snap.totals.items()):
        if outcome == "created":
            created.add_metric([model, dialect], n)
        elif outcome in _FINISHED:
            finished.add_metric([model, dialect, outcome], n)
    yield created
    yield finished
    queued: dict[str, int] = dict.fromkeys(models, 0)
    running: dict[str, int] = dict.fromkeys(models, 0)
    for (model, _dialect, status), n in sorted(snap.jobs.items()):
        if status == JobStatus.QUEUED:
            queued[model] = queued.get(model, 0) + n
        elif status == JobStatus.RUNNING:
            running[model] = running.get(model, 0) + n

    depth = GaugeMetricFamily(
        "reelforge_queue_depth", "Generations waiting for a worker, by model.", labels=["model"]
    )
    oldest = GaugeMetricFamily(
        "reelforge_queue_oldest_age_seconds",
        "How long the oldest waiting generation has waited, by model (0: none waits).",
        labels=["model"],
    )
    busy = GaugeMetricFamily(
        "reelforge_generations_running", "Generations a worker is running, by model.",
        labels=["model"],
    )  # fmt: skip
    for model in sorted(queued):
        depth.add_metric([model], queued[model])
        since = snap.oldest_queued_at.get(model)
        oldest.add_metric([model], max(0.0, snap.now - since) if since is not None else 0.0)
    for model in sorted(running):
        busy.add_metric([model], running[model])
    yield depth
    yield oldest
    yield busy

    stages = HistogramMetricFamily(
        "reelforge_stage_duration_seconds",
        "Seconds per stage of a generation, by stage and model: queue_wait (creation to the "
        "worker's claim), engine, encode and store (of succeeded generations).",
        labels=["stage", "model"],
    )
    for (stage, model), hist in sorted(snap.stages.items(), key=lambda i: _stage_order(i[0])):
        buckets = [(_le(le), n) for le, n in zip(STAGE_BUCKETS_S, hist.cumulative, strict=True)]
        stages.add_metric([stage, model], [*buckets, ("+Inf", hist.count)], hist.sum_s)
    yield stages

    live = GaugeMetricFamily(
        "reelforge_workers",
        "Live workers (seen within the lease time), by state (idle, running, draining) and device.",
        labels=["state", "device"],
    )
    for (state, device), n in sorted(snap.workers.items()):
        live.add_metric([state, device], n)
    yield live

    gpu = GaugeMetricFamily(
        "reelforge_worker_gpu_memory_bytes",
        "GPU memory each live GPU worker's process holds (torch's allocator), from its heartbeat.",
        labels=["worker", "device"],
    )
    for (worker_id, device), held in sorted(snap.gpu_memory.items()):
        gpu.add_metric([worker_id, device], held)
    yield gpu

    deliveries = GaugeMetricFamily(
        "reelforge_webhook_deliveries",
        "Webhook deliveries in the database by outcome: pending, sending (an attempt under "
        "way), delivered, failed (retries used up).",
        labels=["outcome"],
    )
    for outcome in sorted({*_DELIVERY_STATES, *snap.webhook_deliveries}):
        deliveries.add_metric([outcome], snap.webhook_deliveries.get(outcome, 0))
    yield deliveries


def _stage_order(key: tuple[str, str]) -> tuple[int, str]:
    return STAGES.index(key[0]), key[1]


def _le(bound: float) -> str:
    return repr(float(bound))


class _CachedSnapshots:
    """The newest snapshot for `max_age_s`, and one database read at a time: a burst of
    scrapes (several Prometheus servers, a dashboard) costs one set of queries."""

    def __init__(self, ctx: ApiContext, max_age_s: float) -> None:
        self._ctx = ctx
        self._stats = JobStats(ctx.store.engine, STAGE_BUCKETS_S)
        self._max_age_s = max_age_s
        self._lock = asyncio.Lock()
        self._cached: tuple[float, SystemSnapshot] | None = None

    async def get(self) -> SystemSnapshot | None:
        async with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self._max_age_s:
                return self._cached[1]
            try:
                snap = await self._ctx.db.run(
                    self._stats.snapshot, self._ctx.settings.lease_seconds
                )
            except DatabaseUnavailable:
                return None  # the process's own figures still answer; database_up says 0
            self._cached = (time.monotonic(), snap)
            return snap


def build_metrics_router(ctx: ApiContext, http: HttpMetrics) -> APIRouter:
    """`GET /metrics` in Prometheus' text format; who may read it: `settings.metrics`."""
    router = APIRouter(tags=["service"])
    snapshots = _CachedSnapshots(ctx, ctx.settings.metrics_max_age_s)
    dependencies = [Depends(ctx.auth.reader)] if ctx.settings.metrics == "keyed" else []
    models = ctx.registry.ids

    @router.get(
        "/metrics",
        dependencies=dependencies,
        response_class=Response,
        responses={
            200: {
                "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                "description": "The metrics, in Prometheus' text format.",
            },
            **(error_responses(401, 403, 429) if dependencies else {}),
        },
    )
    async def metrics() -> Response:
        snap = await snapshots.get()
        system = CollectorRegistry(auto_describe=False)
        system.register(SystemCollector(snap, models))
        body = http.exposition() + generate_latest(system)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
