"""Scale-out, with faults injected: two API replicas (no workers of their own) and two
`reelforge worker` processes, each with its own data dir as if on its own host, sharing one
PostgreSQL database and one S3 store (SeaweedFS). Forty generations go round-robin to the
two APIs while workers are killed and frozen, database connections are cut, the S3 server
is killed and restarted, and an API replica dies; every generation still ends once, and
reads and downloads the same from either API; nothing lands on any host's disk."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select, text

from reelforge.jobs import JobStatus, JobStore, open_engine
from reelforge.jobs.schema import job_events, jobs
from tests.conftest import S3Target, weed_or_skip
from tests.e2e.conftest import REPO_ROOT, wait_for
from tests.e2e.deployment import Deployment, Member
from tests.fixtures.seaweedfs import BUCKET, SeaweedFS

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

T2V = "klingai/v2-master-text-to-video"
GENERATIONS = 40
LEASE_S = 3.0
FINISH_TIMEOUT_S = 240.0


@pytest.fixture
def app_name() -> str:
    """The libpq application_name of every process of the deployment: the connections a
    fault cuts are the deployment's only."""
    return f"reelforge-scale-{secrets.token_hex(3)}"


@pytest.fixture
def database_url(postgres_url: str, app_name: str) -> str:
    return f"{postgres_url}&application_name={quote(app_name)}"


@pytest.fixture
def weed(tmp_path: Path) -> Iterator[SeaweedFS]:
    """The deployment's own S3 server: the test stops and restarts it."""
    with SeaweedFS(tmp_path / "seaweedfs", weed_or_skip()) as server:
        yield server


@pytest.fixture
def artifact_store(weed: SeaweedFS) -> dict[str, str]:
    target = S3Target(weed.endpoint, f"s3://{BUCKET}/scale-out")
    return {f"REELFORGE_{name.upper()}": value for name, value in target.settings().items()}


@pytest.fixture
def deployment(
    tmp_path: Path, database_url: str, artifact_store: dict[str, str]
) -> Iterator[Deployment]:
    models = tmp_path / "models.toml"
    models.write_text(f'[models."{T2V}"]\nengine = "tests.fixtures.engines:PacedEngine"\n')
    shared = {
        "REELFORGE_DATABASE_URL": database_url,
        "REELFORGE_MODELS_FILE": str(models),
        "REELFORGE_URL_SIGNING_SECRET": secrets.token_hex(16),
        "REELFORGE_LEASE_SECONDS": str(LEASE_S),
        "REELFORGE_MAX_ATTEMPTS": "4",
        **artifact_store,
    }
    deployment = Deployment(tmp_path / "hosts", shared)
    yield deployment
    deployment.close()


def _store(database_url: str) -> JobStore:
    return JobStore(open_engine(database_url))


def _running_on(store: JobStore, worker: Member) -> str | None:
    """The id of a job `worker` (by pid) is running, if any."""
    ids = {w.id for w in store.live_workers(within_s=60) if w.pid == worker.pid}
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(jobs.c.id, jobs.c.worker_id).where(jobs.c.status == JobStatus.RUNNING.value)
        ).all()
    return next((job_id for job_id, worker_id in rows if worker_id in ids), None)


class Poller:
    """Polls generations on every API from a thread until stopped; counts the answers."""

    def __init__(self, apis: list[Member], ids: list[str]) -> None:
        self.apis, self.ids = apis, ids
        self.answers: Counter[int] = Counter()
        self.bad: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        turn = 0
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                api = self.apis[turn % len(self.apis)]
                job_id = self.ids[turn % len(self.ids)]
                turn += 1
                try:
                    answer = client.get(
                        f"{api.base_url}/v2/video/generations", params={"generation_id": job_id}
                    )
                except httpx.TransportError:
                    self.answers[0] += 1  # a replica that is down: refused
                    continue
                self.answers[answer.status_code] += 1
                if answer.status_code == 503:
                    body: dict[str, Any] = answer.json()
                    if body.get("statusCode") != 503 or "retry-after" not in answer.headers:
                        self.bad.append(answer.text)
                elif answer.status_code != 200:
                    self.bad.append(f"{answer.status_code}: {answer.text}")


def test_forty_generations_survive_worker_database_and_replica_faults(
    deployment: Deployment,
    postgres_url: str,
    database_url: str,
    app_name: str,
    weed: SeaweedFS,
) -> None:
    api_a, api_b = deployment.api("api-a"), deployment.api("api-b")
    worker_1, worker_2 = deployment.worker("worker-1"), deployment.worker("worker-2")
    store = _store(postgres_url)  # the test's own connections: not the deployment's name
    apis = [api_a, api_b]

    ids: list[str] = []
    with httpx.Client(timeout=30) as client:
        for i in range(GENERATIONS):
            api = apis[i % 2]
            answer = client.post(
                f"{api.base_url}/v2/video/generations",
                json={"model": T2V, "prompt": f"generation {i} of the scale-out run"},
            )
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["id"])

    with Poller(apis, ids) as poller:
        # A worker SIGKILLed mid-job: its job is run again elsewhere after the lease.
        killed_job = wait_for(lambda: _running_on(store, worker_1), 60, "worker-1 to run a job")
        worker_1.kill()
        worker_1.start()  # as its host's supervisor would

        # A worker frozen past its lease, then resumed: its late writes are fenced.
        frozen_job = wait_for(lambda: _running_on(store, worker_2), 60, "worker-2 to run a job")
        worker_2.signal(signal.SIGSTOP)

        def taken_over() -> bool:
            job = store.get_job(frozen_job)
            return job is not None and (job.attempts >= 2 or job.terminal)

        wait_for(taken_over, 60, "the frozen worker's job to be claimed again")
        worker_2.signal(signal.SIGCONT)

        # Every database connection of the deployment cut at once, under load.
        admin = open_engine(database_url)
        with admin.connect() as conn:
            cut = conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": app_name},
            ).scalar_one()
        admin.dispose()
        assert cut >= 2  # at least the two APIs' and the two workers' pooled connections

        # The artifact store stopped while workers store, then started again: the jobs
        # that reach it meanwhile fail, saying so; none references a half-written object.
        weed.stop(kill=True)
        wait_for(lambda: _store_failures(store, ids), 60, "a job to find the store down")
        weed.start()

        # An API replica killed: the other keeps serving, and it comes back.
        api_a.kill()
        with httpx.Client(timeout=10) as client:
            answer = client.get(
                f"{api_b.base_url}/v2/video/generations", params={"generation_id": ids[0]}
            )
        assert answer.status_code == 200, answer.text
        api_a.start()
        wait_for(lambda: deployment.answers(api_a), 60, "api-a to come back")

        def all_ended() -> bool:
            with store.engine.connect() as conn:
                ended = conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.id.in_(ids),
                        jobs.c.status.in_([s.value for s in JobStatus if s.is_terminal]),
                    )
                ).all()
            return len(ended) == len(ids)

        wait_for(all_ended, FINISH_TIMEOUT_S, "every generation to end")

    assert not poller.bad, poller.bad[:5]
    assert poller.answers[200] > 0

    with store.engine.connect() as conn:
        succeeded = Counter(
            job_id
            for (job_id,) in conn.execute(
                select(job_events.c.job_id).where(
                    job_events.c.job_id.in_(ids), job_events.c.type == "succeeded"
                )
            )
        )
    assert all(count == 1 for count in succeeded.values()), succeeded.most_common(3)
    for job_id in (killed_job, frozen_job):
        job = store.get_job(job_id)
        assert job is not None and job.attempts >= 2

    with httpx.Client(timeout=30) as client:
        for job_id in ids:
            bodies = [
                client.get(
                    f"{api.base_url}/v2/video/generations", params={"generation_id": job_id}
                ).json()
                for api in apis
            ]
            assert bodies[0]["status"] == bodies[1]["status"]
            if bodies[0]["status"] == "completed":
                assert succeeded[job_id] == 1
                for body in bodies:
                    video = client.get(body["video"]["url"])
                    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
            else:  # a store outage or an attempt limit, said plainly
                assert bodies[0]["status"] == "error", bodies[0]
                message = bodies[0]["error"]["message"]
                causes = ("artifact store", "attempt limit", "job database")
                assert any(cause in message for cause in causes), message
    assert _store_failures(store, ids) >= 1
    # Nothing landed on any host's disk: artifacts live in the S3 store only.
    local = [
        path
        for member in deployment.members
        for path in member.data_dir.rglob("*")
        if path.suffix in (".mp4", ".gif", ".webp", ".png")
    ]
    assert local == []
    store.engine.dispose()


def _store_failures(store: JobStore, ids: list[str]) -> int:
    """How many of `ids` failed because the artifact store was away."""
    with store.engine.connect() as conn:
        failed = conn.execute(
            select(jobs.c.error_message).where(
                jobs.c.id.in_(ids), jobs.c.status == JobStatus.FAILED.value
            )
        ).all()
    return sum("artifact store" in (message or "") for (message,) in failed)


def test_the_scale_demo_runs_as_the_readme_says(postgres_url: str) -> None:
    """`make scale-demo` (scripts/scale_demo.py), shortened to two generations."""
    weed_or_skip()
    env = {**os.environ, "REELFORGE_DATABASE_URL": postgres_url.split("?")[0]}
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "scale_demo.py"), "--generations", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2/2 completed" in done.stdout and "downloaded" in done.stdout, done.stdout
