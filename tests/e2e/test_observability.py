"""`/metrics` and the JSON log of real servers: two API replicas (two `serve` processes, each
with its worker) over one PostgreSQL database and one artifact folder, and `serve` with two
API processes on one port.

The smallest honest set-up for "every replica answers the same totals": two replicas, so
that a figure counted in one process (rather than read from the database) would differ;
two workers, so that which worker ran a job is not always the replica's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import private_postgres_schema
from tests.e2e.conftest import LiveServer, ServerPool, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

T2V = "klingai/v2-master-text-to-video"
CREATE = "/v2/video/generations"
STAGES = ("queue_wait", "engine", "encode", "store")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: LiveServer) -> Samples:
    answer = httpx.get(server.base_url + "/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def system_figures(samples: Samples) -> Samples:
    """The figures read from the database (not this process's own HTTP counters)."""
    return {key: v for key, v in samples.items() if not key[0].startswith("reelforge_http_")}


def log_records(server: LiveServer) -> list[dict[str, Any]]:
    """Every complete line of the server's log, each parsed as JSON (fails on any other)."""
    assert server.log_path is not None
    text = server.log_path.read_text()
    complete = text[: text.rfind("\n") + 1]
    records = []
    for line in complete.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a log line of {server.base_url} is not JSON: {line[:300]!r}")
    return records


class Replicas:
    """Two replicas over one database, and the requests and generations the tests made."""

    def __init__(self, a: LiveServer, b: LiveServer) -> None:
        self.a, self.b = a, b
        self.request_ids: dict[str, list[str]] = {a.base_url: [], b.base_url: []}
        self.job_ids: list[str] = []
        self._n = 0

    def request(self, server: LiveServer, method: str, path: str, **kwargs: Any) -> Any:
        self._n += 1
        request_id = f"obs-{self._n}"
        self.request_ids[server.base_url].append(request_id)
        answer = httpx.request(
            method,
            server.base_url + path,
            headers={"x-request-id": request_id},
            timeout=30,
            **kwargs,
        )
        assert answer.headers["x-request-id"] == request_id
        return answer

    def generate(self, server: LiveServer, prompt: str) -> str:
        created = self.request(server, "POST", CREATE, json={"model": T2V, "prompt": prompt})
        assert created.status_code == 200, created.text
        job_id: str = created.json()["id"]
        self.job_ids.append(job_id)
        return job_id

    def wait_finished(self, server: LiveServer, job_id: str) -> None:
        def finished() -> bool:
            body = self.request(server, "GET", f"{CREATE}/{job_id}").json()
            assert body["status"] != "error", body
            return bool(body["status"] == "completed")

        wait_for(finished, 120, f"generation {job_id} to complete")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    root = tmp_path_factory.mktemp("observability")
    with private_postgres_schema() as database_url:
        shared = {
            "database_url": database_url,
            "storage_url": str(root / "artifacts"),
            "url_signing_secret": "one-secret-for-both-replicas",
            "log_format": "json",
            "metrics_max_age_s": "0",  # every scrape reads the database afresh
            "metrics": "public",
        }
        pool = ServerPool(root / "unused")
        try:
            a = pool.start(data_dir=root / "a", **shared)
            b = pool.start(data_dir=root / "b", **shared)
            replicas = Replicas(a, b)
            # /healthz of B answers once any worker is live, its own or A's.
            wait_for(lambda: total(scrape(b), "reelforge_workers") == 2, 60, "both workers")
            jobs = [replicas.generate(a, f"a red circle {n}") for n in range(3)]
            jobs.append(replicas.generate(b, "a blue square"))
            for job_id in jobs:
                replicas.wait_finished(a, job_id)
            yield replicas
        finally:
            pool.close()


def test_every_replica_answers_the_same_system_totals(replicas: Replicas) -> None:
    a, b = scrape(replicas.a), scrape(replicas.b)
    assert system_figures(a) == system_figures(b)

    assert value(a, "reelforge_database_up") == 1
    assert value(a, "reelforge_generations_created_total", model=T2V, dialect="aimlapi") == 4
    finished = "reelforge_generations_finished_total"
    assert value(a, finished, model=T2V, dialect="aimlapi", status="succeeded") == 4
    assert total(a, finished) == 4
    assert value(a, "reelforge_queue_depth", model=T2V) == 0
    assert value(a, "reelforge_queue_oldest_age_seconds", model=T2V) == 0
    assert value(a, "reelforge_generations_running", model=T2V) == 0
    for stage in STAGES:
        labels = {"stage": stage, "model": T2V}
        assert value(a, "reelforge_stage_duration_seconds_count", **labels) == 4
        assert value(a, "reelforge_stage_duration_seconds_bucket", le="+Inf", **labels) == 4
        assert value(a, "reelforge_stage_duration_seconds_sum", **labels) > 0
    # Both replicas' workers, idle now that every job is done.
    assert value(a, "reelforge_workers", state="idle", device="cpu") == 2
    assert total(a, "reelforge_workers") == 2
    assert value(a, "reelforge_webhook_deliveries", outcome="delivered") == 0


def test_request_figures_are_each_processes_own_by_route_template(replicas: Replicas) -> None:
    a, b = scrape(replicas.a), scrape(replicas.b)
    created = {"route": CREATE, "method": "POST", "status": "200"}
    assert value(a, "reelforge_http_requests_total", **created) == 3
    assert value(b, "reelforge_http_requests_total", **created) == 1
    latency = {"route": CREATE, "method": "POST"}
    assert value(a, "reelforge_http_request_duration_seconds_count", **latency) == 3
    assert value(b, "reelforge_http_request_duration_seconds_count", **latency) == 1
    assert value(a, "reelforge_http_request_duration_seconds_bucket", le="+Inf", **latency) == 3
    poll = {"route": CREATE + "/{generation_id}", "method": "GET", "status": "200"}
    assert value(a, "reelforge_http_requests_total", **poll) >= 4
    # Labels name templates, never a generation's id.
    labels = " ".join(v for (_, pairs) in a for _, v in pairs)
    assert not any(job_id in labels for job_id in replicas.job_ids)


def test_every_log_line_is_json_with_each_request_and_transition(replicas: Replicas) -> None:
    servers = (replicas.a, replicas.b)

    def access_lines() -> dict[str, list[dict[str, Any]]] | None:
        found: dict[str, list[dict[str, Any]]] = {}
        for server in servers:
            for record in log_records(server):
                if record["logger"] == "reelforge.access":
                    found.setdefault(record["request_id"], []).append(record)
        wanted = [rid for ids in replicas.request_ids.values() for rid in ids]
        return found if all(rid in found for rid in wanted) else None

    # The line is written once the answer is sent: wait for the last ones.
    lines = wait_for(access_lines, 30, "an access line for every request")
    assert all(len(each) == 1 for each in lines.values()), "a request logged twice"
    access = {request_id: each[0] for request_id, each in lines.items()}
    for server in servers:
        for request_id in replicas.request_ids[server.base_url]:
            line = access[request_id]
            assert line["method"] in ("GET", "POST") and line["status"] == 200, line
            assert line["route"].startswith(CREATE) and line["tenant"] == "local", line
            assert isinstance(line["duration_ms"], float | int) and line["duration_ms"] >= 0

    records = [record for server in servers for record in log_records(server)]
    for job_id in replicas.job_ids:
        events = {r.get("event") for r in records if r.get("job_id") == job_id}
        assert {"created", "started", "succeeded"} <= events, (job_id, events)
    # A worker's own lines about a job carry its id as a field too.
    about_jobs = [
        r
        for r in records
        if r["logger"].startswith("reelforge.worker") and r["message"].startswith("job ")
    ]
    assert len(about_jobs) >= 2 * len(replicas.job_ids)  # claimed, succeeded in ...
    assert all(r["message"].startswith(f"job {r.get('job_id')}:") for r in about_jobs)
    # Any worker line that names one of the generations carries that id as its job_id.
    for r in records:
        if r["logger"].startswith("reelforge.worker"):
            named = [job_id for job_id in replicas.job_ids if job_id in r["message"]]
            assert named in ([], [r.get("job_id")]), r
    # uvicorn speaks through the same format; its own access log is off.
    assert any(r["logger"].startswith("uvicorn") for r in records)
    assert not any(r["logger"] == "uvicorn.access" for r in records)
    for server in servers:
        assert server.log_path is not None
        text = server.log_path.read_text()
        assert "Traceback" not in text
        assert not re.search(r"\d+%\|", text), "a progress bar in the server log"
    startup = " ".join(r["message"] for r in log_records(replicas.a))
    assert "data dir" in startup and "database postgresql+psycopg://" in startup
    assert "storage " in startup and "artifacts" in startup
    assert re.search(r"device \w+, 1 worker process\(es\)", startup), startup
    assert f"model {T2V} -> engine" in startup
    assert f"studio {replicas.a.base_url}/" in startup and f"{replicas.a.base_url}/docs" in startup


def test_api_processes_on_one_port_answer_the_sum_of_their_request_counts(
    tmp_path: Path,
) -> None:
    server = LiveServer(
        tmp_path / "data", {"REELFORGE_API_PROCESSES": "2", "REELFORGE_LOG_FORMAT": "json"}
    ).start()
    try:

        def pids_answering(route: str) -> set[int]:
            return {
                r["process"]
                for r in log_records(server)
                if r["logger"] == "reelforge.access" and r["route"] == route
            }

        made = 0
        # Until both processes have answered some (the kernel spreads connections).
        while len(pids_answering("/v1/models")) < 2:
            assert made < 400, "one API process answered every request"
            assert httpx.get(server.base_url + "/v1/models", timeout=30).status_code == 200
            made += 1
            if made % 20 == 0:
                wait_for(lambda n=made: _access_lines(server, "/v1/models") >= n, 30, "lines")
        scrapes = 0
        while len(pids_answering("/metrics")) < 2 or scrapes < 4:
            assert scrapes < 400, "one API process answered every scrape"
            samples = scrape(server)
            scrapes += 1
            labels = {"route": "/v1/models", "method": "GET", "status": "200"}
            # Whichever process answers counts every process's requests.
            assert value(samples, "reelforge_http_requests_total", **labels) == made
            if scrapes % 20 == 0:
                wait_for(lambda n=scrapes: _access_lines(server, "/metrics") >= n, 30, "lines")
    finally:
        server.stop()


def _access_lines(server: LiveServer, route: str) -> int:
    return sum(
        1 for r in log_records(server) if r["logger"] == "reelforge.access" and r["route"] == route
    )
