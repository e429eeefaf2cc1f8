"""Scale-out, with faults injected: two API replicas (no workers of their own) and two
`reelforge worker` processes, each with its own data dir as if on its own host, sharing one
PostgreSQL database and one S3 store (SeaweedFS). Forty generations go round-robin to the
two APIs while workers are killed and frozen, database connections are cut, the S3 server
is killed and restarted, and an API replica dies; every generation still ends once, and
reads and downloads the same from either API; nothing lands on any host's disk.

The engine holds chosen generations mid-run (`HoldablePacedEngine`): each fault lands on a
job that is certainly running, at a point of the queue the test chose, however fast or slow
the machine."""

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
from reelforge.storage import S3Storage
from tests.conftest import S3Target, weed_or_skip
from tests.e2e.conftest import REPO_ROOT, wait_for
from tests.e2e.deployment import Deployment, Member
from tests.fixtures.seaweedfs import BUCKET, SeaweedFS
from tests.worker_processes import freeze_between_writes

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
def holds(tmp_path: Path) -> Holds:
    folder = tmp_path / "holds"
    folder.mkdir()
    return Holds(folder)


@pytest.fixture
def deployment(
    tmp_path: Path, database_url: str, artifact_store: dict[str, str], holds: Holds
) -> Iterator[Deployment]:
    models = tmp_path / "models.toml"
    models.write_text(
        f'[models."{T2V}"]\nengine = "tests.fixtures.engines:HoldablePacedEngine"\n'
        f'checkpoint = "{holds.folder}"\n'
    )
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


def _prompt(index: int) -> str:
    return f"scale-out generation {index:02d}"


class Holds:
    """The hold files of `HoldablePacedEngine`: which generations stop mid-run, and in which
    worker process each stopped."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def hold(self, index: int) -> None:
        (self.folder / f"{_prompt(index)}.hold").touch()

    def release(self, index: int) -> None:
        (self.folder / f"{_prompt(index)}.hold").unlink()

    def held_in(self, index: int) -> int | None:
        """The pid of the process whose run of the generation holds (its latest run)."""
        held = self.folder / f"{_prompt(index)}.held"
        return int(held.read_text()) if held.exists() else None

    def all_held(self, *indexes: int) -> dict[int, int] | None:
        """Each generation's pid, once all of them hold."""
        pids: dict[int, int] = {}
        for index in indexes:
            pid = self.held_in(index)
            if pid is None:
                return None
            pids[index] = pid
        return pids


def _running_on(store: JobStore, worker: Member) -> str | None:
    """The id of a job `worker` (by pid) is running, if any."""
    ids = {w.id for w in store.live_workers(within_s=60) if w.pid == worker.pid}
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(jobs.c.id, jobs.c.worker_id).where(jobs.c.status == JobStatus.RUNNING.value)
        ).all()
    return next((job_id for job_id, worker_id in rows if worker_id in ids), None)


def _worker_id(store: JobStore, worker: Member) -> str:
    def registered() -> str | None:
        return next((w.id for w in store.live_workers(within_s=60) if w.pid == worker.pid), None)

    found: str = wait_for(registered, 60, f"{worker.name} to register")
    return found


class Poller:
    """Polls generations on every API from a thread until stopped. An answer is 200, or a 503
    in the dialect's body with Retry-After; a refused connection only from a replica named
    in `down`. Answers are counted by `phase`, which the test sets as it goes."""

    def __init__(self, apis: list[Member], ids: list[str]) -> None:
        self.apis, self.ids = apis, ids
        self.phase = "start"
        self.down: set[str] = set()
        self.answers: Counter[tuple[str, int]] = Counter()  # (phase, status; 0: refused)
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
                phase = self.phase
                try:
                    answer = client.get(
                        f"{api.base_url}/v2/video/generations", params={"generation_id": job_id}
                    )
                except httpx.TransportError as exc:
                    self.answers[phase, 0] += 1
                    if api.name not in self.down:
                        self.bad.append(f"{api.name} during {phase}: {exc!r}")
                    continue
                self.answers[phase, answer.status_code] += 1
                if answer.status_code == 503:
                    body: dict[str, Any] = answer.json()
                    if (
                        body.get("statusCode") != 503
                        or not body.get("message")
                        or "retry-after" not in answer.headers
                    ):
                        self.bad.append(f"{api.name} during {phase}: {answer.text}")
                elif answer.status_code != 200:
                    self.bad.append(
                        f"{api.name} during {phase}: {answer.status_code} {answer.text}"
                    )


# Generations the engine holds mid-run (`HoldablePacedEngine`), in pairs, one per worker: the
# first two claims (a worker is killed on one and frozen on the other), the pair at which the
# database connections are cut, and the pair that meets the stopped S3 store. Claims follow
# creation order (one tenant, one priority), so the queue can never run past a held pair.
FIRST_CLAIMS = (0, 1)
AT_THE_CUT = (10, 11)
AT_THE_STORE_STOP = (30, 31)


def test_forty_generations_survive_worker_database_and_replica_faults(
    deployment: Deployment,
    holds: Holds,
    postgres_url: str,
    database_url: str,
    app_name: str,
    weed: SeaweedFS,
) -> None:
    for index in FIRST_CLAIMS + AT_THE_CUT + AT_THE_STORE_STOP:
        holds.hold(index)
    api_a, api_b = deployment.api("api-a"), deployment.api("api-b")
    worker_1, worker_2 = deployment.worker("worker-1"), deployment.worker("worker-2")
    store = _store(postgres_url)  # the test's own connections: not the deployment's name
    apis = [api_a, api_b]

    ids: list[str] = []
    with httpx.Client(timeout=30) as client:
        for i in range(GENERATIONS):
            api = apis[i % 2]
            answer = client.post(
                f"{api.base_url}/v2/video/generations", json={"model": T2V, "prompt": _prompt(i)}
            )
            assert answer.status_code == 200, answer.text
            ids.append(answer.json()["id"])

    with Poller(apis, ids) as poller:
        # The first two generations, one held in each worker: certainly mid-run.
        first = wait_for(lambda: holds.all_held(*FIRST_CLAIMS), 120, "both workers to run")
        assert sorted(first.values()) == sorted([worker_1.pid, worker_2.pid]), first
        killed_index = next(i for i, pid in first.items() if pid == worker_1.pid)
        frozen_index = next(i for i, pid in first.items() if pid == worker_2.pid)
        killed_job, frozen_job = ids[killed_index], ids[frozen_index]

        # A worker SIGKILLed mid-job: its job is run again elsewhere after the lease.
        poller.phase = "worker killed"
        assert _running_on(store, worker_1) == killed_job
        worker_1.kill()
        holds.release(killed_index)  # its rerun goes through
        worker_1.start()  # as its host's supervisor would

        # A worker frozen past its lease, then resumed: its late writes are fenced.
        poller.phase = "worker frozen"
        assert _running_on(store, worker_2) == frozen_job
        freeze_between_writes(worker_2.signal, postgres_url, frozen_job)
        # The restarted worker-1 claims it once the lease ran out; its run holds too.
        wait_for(
            lambda: holds.held_in(frozen_index) == worker_1.pid,
            60,
            "the frozen worker's job to be claimed again",
        )
        holds.release(frozen_index)
        worker_2.signal(signal.SIGCONT)
        workers = {_worker_id(store, worker_1), _worker_id(store, worker_2)}

        # Every database connection of the deployment cut at once, while both workers run
        # a job (each certainly mid-run: released from its hold just now).
        at_cut = wait_for(lambda: holds.all_held(*AT_THE_CUT), 120, "both workers at the cut")
        assert sorted(at_cut.values()) == sorted([worker_1.pid, worker_2.pid]), at_cut
        for index in AT_THE_CUT:
            holds.release(index)
        poller.phase = "database cut"
        cut_at = store.clock()
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
        assert cut >= 4  # at least the two APIs' and the two workers' pooled connections

        # Both workers reconnect: each finishes the job it ran at the cut, then claims and
        # finishes another.
        def finished_since_the_cut() -> Counter[str]:
            with store.engine.connect() as conn:
                rows = conn.execute(
                    select(jobs.c.worker_id).where(
                        jobs.c.id.in_(ids),
                        jobs.c.status == JobStatus.SUCCEEDED.value,
                        jobs.c.finished_at > cut_at,
                    )
                ).all()
            return Counter(worker_id for (worker_id,) in rows)

        wait_for(
            lambda: all(finished_since_the_cut()[w] >= 2 for w in workers),
            120,
            "each worker to finish two jobs after the cut",
        )
        poller.phase = "after the cut"

        # The artifact store stopped while both workers run a job, then started again: the
        # jobs that reach it meanwhile fail, saying so; none references a half-written object.
        at_stop = wait_for(
            lambda: holds.all_held(*AT_THE_STORE_STOP), 120, "both workers at the store stop"
        )
        assert sorted(at_stop.values()) == sorted([worker_1.pid, worker_2.pid]), at_stop
        poller.phase = "store down"
        weed.stop(kill=True)
        for index in AT_THE_STORE_STOP:
            holds.release(index)
        stop_victims = [ids[index] for index in AT_THE_STORE_STOP]
        wait_for(
            lambda: _store_failures(store, stop_victims) == len(stop_victims),
            60,
            "both jobs to find the store down",
        )
        weed.start()

        # An API replica killed: the other keeps serving, and it comes back.
        poller.phase = "replica down"
        poller.down.add(api_a.name)
        api_a.kill()
        with httpx.Client(timeout=10) as client:
            answer = client.get(
                f"{api_b.base_url}/v2/video/generations", params={"generation_id": ids[0]}
            )
        assert answer.status_code == 200, answer.text
        api_a.start()
        wait_for(lambda: deployment.answers(api_a), 60, "api-a to come back")
        poller.down.discard(api_a.name)
        poller.phase = "end"

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
    assert poller.answers["end", 200] > 0
    print(f"polls by phase and status: {sorted(poller.answers.items())}")

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
    for job_id in (killed_job, frozen_job):  # the lost run counted; the rerun succeeded
        job = store.get_job(job_id)
        assert job is not None and job.status is JobStatus.SUCCEEDED, job
        assert job.attempts == 2, job

    _frozen_job_references_one_run_only(store, frozen_job, weed)

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
                for body in bodies:  # each API's links, to itself
                    _download_all(client, body)
            else:  # a store outage or an attempt limit, said plainly
                assert bodies[0]["status"] == "error", bodies[0]
                assert job_id not in (killed_job, frozen_job)
                message = bodies[0]["error"]["message"]
                causes = ("artifact store", "attempt limit")
                assert any(cause in message for cause in causes), message
    # Nothing landed on any host's disk: artifacts live in the S3 store only.
    local = [
        path
        for member in deployment.members
        for path in member.data_dir.rglob("*")
        if path.suffix in (".mp4", ".gif", ".webp", ".png")
    ]
    assert local == []
    store.engine.dispose()


_MAGIC = {"video": (4, b"ftyp"), "preview": (0, b"GIF8"), "thumbnail": (8, b"WEBP")}


def _download_all(client: httpx.Client, body: dict[str, Any]) -> None:
    """The video, its GIF preview and its thumbnail by the body's links: each whole (as
    long as the API says), of its type."""
    for name, (offset, magic) in _MAGIC.items():
        media = body[name]
        answer = client.get(media["url"])
        assert answer.status_code == 200, (name, answer.text)
        assert len(answer.content) == media["file_size"] > 0, (name, media)
        assert answer.headers["content-type"] == media["content_type"], (name, answer.headers)
        assert answer.content[offset : offset + len(magic)] == magic, (name, answer.content[:16])


def _frozen_job_references_one_run_only(store: JobStore, job_id: str, weed: SeaweedFS) -> None:
    """The frozen job's result is the takeover run's: its three files in that run's folder,
    which holds nothing else. A stale run's folder may be left behind, never referenced."""
    job = store.get_job(job_id)
    assert job is not None and job.result is not None
    referenced = {job.result.video.key, job.result.preview.key, job.result.thumbnail.key}
    [run_folder] = {key.rsplit("/", 1)[0] + "/" for key in referenced}
    assert run_folder.startswith(f"jobs/{job_id}/"), run_folder
    storage = S3Storage.from_url(f"s3://{BUCKET}/scale-out", weed.options())
    stored = set(storage.keys(f"jobs/{job_id}/"))
    assert {key for key in stored if key.startswith(run_folder)} == referenced, stored
    # Anything else under the job is another run's folder's.
    assert all(key.count("/") == 3 for key in stored), stored


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
