"""List, get, delete and retention through the AI/ML API routes: the real app on a real
SQLite store and local storage. A job is run the way a worker runs one: claimed through the
store, its files written to storage, its result recorded under its lease."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from reelforge.api.app import build_context, create_app
from reelforge.api.context import ApiContext
from reelforge.engines import Registry
from reelforge.jobs import JobStatus, JobStore, Lease, LeaseCheck, open_store
from reelforge.jobs.result import JobResult
from reelforge.jobs.schema import jobs
from reelforge.settings import Settings
from reelforge.storage import keys, open_storage
from tests.conftest import stored_result
from tests.integration.test_api_validation import I2V, T2V, data_uri, png_bytes

PATH = "/v2/video/generations"
A = {"authorization": "Bearer key-a"}
B = {"authorization": "Bearer key-b"}


@dataclass
class Service:
    client: TestClient
    ctx: ApiContext
    artifacts: Path

    @property
    def store(self) -> JobStore:
        return self.ctx.store

    def create(self, model: str = T2V, headers: dict[str, str] = A) -> str:
        body: dict[str, Any] = {"model": model, "prompt": "a red fox"}
        if model == I2V:
            body["image_url"] = data_uri(png_bytes())
        response = self.client.post(PATH, json=body, headers=headers)
        assert response.status_code == 200, response.text
        job_id: str = response.json()["id"]
        return job_id

    def poll(self, job_id: str, headers: dict[str, str] = A) -> Any:
        return self.client.get(PATH, params={"generation_id": job_id}, headers=headers)

    def claim(self) -> Lease:
        lease = self.store.claim_next_job("w1", [T2V, I2V], lease_seconds=60)
        assert lease is not None
        return lease

    def succeed(self, lease: Lease) -> None:
        """Finish a claimed job as a worker does: its three files stored, then the result."""
        assert self.store.complete_job(lease, self.store_outputs(lease.job_id))

    def store_outputs(self, job_id: str) -> JobResult:
        return stored_result(self.ctx.storage, job_id)

    def files_of(self, job_id: str) -> list[Path]:
        """What storage holds for the job: its folders and the files in them."""
        found: list[Path] = []
        for prefix in keys.job_prefixes(job_id):
            folder = self.artifacts / prefix
            if folder.exists():
                found += [folder, *folder.rglob("*")]
        return found

    def expire(self, *job_ids: str) -> None:
        """Let the jobs' retention run out, as time would."""
        with self.store.engine.begin() as conn:
            conn.execute(jobs.update().where(jobs.c.id.in_(job_ids)).values(expires_at=0))


def start(tmp_path: Path, **settings: Any) -> Service:
    config = Settings(data_dir=tmp_path, api_keys=["key-a", "key-b"], **settings)
    store = open_store(config.resolved_database_url)
    storage = open_storage(config.resolved_storage_url)
    ctx = build_context(config, store, storage, Registry.load())
    client = TestClient(create_app(ctx), base_url="http://127.0.0.1")
    return Service(client, ctx, Path(config.resolved_storage_url.removeprefix("file://")))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    service = start(tmp_path)
    yield service
    service.ctx.close()
    service.store.engine.dispose()


def unsigned(body: dict[str, Any]) -> dict[str, Any]:
    """The body with its file links' signatures (which carry the time) cut off."""
    return {
        k: {**v, "url": v["url"].split("?")[0]} if isinstance(v, dict) and "url" in v else v
        for k, v in body.items()
    }


def file_links(body: dict[str, Any]) -> list[str]:
    return [body[name]["url"] for name in ("video", "preview", "thumbnail")]


def assert_gone(service: Service, job_id: str, links: list[str]) -> None:
    """The generation and each of its file links answer 404; storage holds nothing of it."""
    assert service.poll(job_id).status_code == 404
    assert service.client.get(f"{PATH}/{job_id}", headers=A).status_code == 404
    assert service.client.delete(f"{PATH}/{job_id}", headers=A).status_code == 404
    for link in links:
        assert service.client.get(link).status_code == 404, link
    assert service.files_of(job_id) == []
    assert service.store.get_job(job_id) is None


# --- list ------------------------------------------------------------------------------


def list_all(service: Service, limit: int, **params: str) -> tuple[list[str], int]:
    """Every id the list returns, page by page; and how many pages it took."""
    ids: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        query = {"limit": str(limit), **params, **({"after": after} if after else {})}
        response = service.client.get(PATH, params=query, headers=A)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert set(page) == {"data", "has_more", "last_id"}
        assert len(page["data"]) <= limit
        ids += [item["id"] for item in page["data"]]
        assert page["last_id"] == (page["data"][-1]["id"] if page["data"] else None)
        if not page["has_more"]:
            return ids, pages
        after = page["last_id"]


def test_pagination_returns_each_of_55_generations_once_newest_first(service: Service) -> None:
    created = [service.create() for _ in range(55)]
    service.create(headers=B)  # another tenant's: never listed
    for limit in (1, 7, 20, 54, 55, 100):
        ids, pages = list_all(service, limit)
        assert ids == created[::-1], limit
        assert pages == max(1, -(-55 // limit)), limit  # no empty page after the last
    default = service.client.get(PATH, headers=A).json()
    assert [item["id"] for item in default["data"]] == created[:-21:-1]
    assert default["has_more"] is True


def test_list_items_are_the_poll_bodies(service: Service) -> None:
    done = service.create()
    service.succeed(service.claim())
    queued = [service.create(), service.create(I2V)]
    page = service.client.get(PATH, headers=A).json()["data"]
    assert [item["id"] for item in page] == [*queued[::-1], done]
    for item in page:
        polled = service.poll(item["id"]).json()
        assert unsigned(item) == unsigned(polled)
        by_path = service.client.get(f"{PATH}/{item['id']}", headers=A)
        assert by_path.status_code == 200 and unsigned(by_path.json()) == unsigned(polled)
    assert {item["status"] for item in page} == {"completed", "queued"}


def test_list_filters_by_status_and_model(service: Service) -> None:
    completed = service.create()
    service.succeed(service.claim())
    canceled = service.create(I2V)
    assert service.client.post(f"{PATH}/{canceled}/cancel", headers=A).status_code == 200
    running = service.create()
    service.claim()
    queued = [service.create(), service.create(I2V)]

    def ids(**params: str) -> list[str]:
        return list_all(service, 100, **params)[0]

    assert ids(status="completed") == [completed]
    assert ids(status="error") == [canceled]
    assert ids(status="generating") == [running]
    assert ids(status="queued") == queued[::-1]
    assert ids(status="completed,error") == [canceled, completed]
    assert ids(model=I2V) == [queued[1], canceled]
    assert ids(model=I2V, status="queued") == [queued[1]]
    assert ids(model="no/such-model") == []
    # Filters and pages together: each of the four T2V jobs once.
    assert list_all(service, 1, model=T2V) == ([queued[0], running, completed], 3)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "²"}, "limit"),  # a digit to str.isdigit, not to int(): was a 500
        ({"status": "done"}, "status"),
        ({"status": "completed,succeeded"}, "status"),
        ({"status": "canceled"}, "status"),  # an internal state, not a status word
    ],
)
def test_bad_list_parameters_are_400_naming_the_field(
    service: Service, params: dict[str, str], field: str
) -> None:
    response = service.client.get(PATH, params=params, headers=A)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["statusCode"] == 400 and body["path"] == PATH
    assert field in body["message"]


def test_an_unknown_or_foreign_cursor_gives_an_empty_page(service: Service) -> None:
    service.create()
    theirs = service.create(headers=B)
    for after in (theirs, "no-such-id"):
        page = service.client.get(PATH, params={"after": after}, headers=A).json()
        assert page == {"data": [], "has_more": False, "last_id": None}


def test_another_tenant_sees_none_of_the_generations(service: Service) -> None:
    mine = [service.create() for _ in range(3)]
    service.succeed(service.claim())
    page = service.client.get(PATH, headers=B).json()
    assert page == {"data": [], "has_more": False, "last_id": None}
    for job_id in mine:
        assert service.poll(job_id, headers=B).status_code == 404
        assert service.client.get(f"{PATH}/{job_id}", headers=B).status_code == 404
        assert service.client.delete(f"{PATH}/{job_id}", headers=B).status_code == 404
    # Their owner still has all of them, files included.
    assert list_all(service, 100)[0] == mine[::-1]
    assert service.files_of(mine[0]) != []


# --- delete ----------------------------------------------------------------------------


def test_deleting_a_succeeded_generation_removes_it_and_its_files(service: Service) -> None:
    job_id = service.create(I2V)
    assert service.files_of(job_id) != []  # the staged input image
    service.succeed(service.claim())
    body = service.poll(job_id).json()
    links = file_links(body)
    assert all(service.client.get(link).status_code == 200 for link in links)
    assert {p.name for p in service.files_of(job_id)} >= {
        "image.png",
        "video.mp4",
        "preview.gif",
        "thumbnail.webp",
    }

    response = service.client.delete(f"{PATH}/{job_id}", headers=A)
    assert response.status_code == 200
    assert response.json() == {"id": job_id, "deleted": True}
    assert_gone(service, job_id, links)
    assert service.client.get(PATH, headers=A).json()["data"] == []


def test_deleting_a_queued_generation_removes_it_before_any_worker_runs_it(
    service: Service,
) -> None:
    job_id = service.create(I2V)
    response = service.client.delete(f"{PATH}/{job_id}", headers=A)
    assert response.json() == {"id": job_id, "deleted": True}
    assert_gone(service, job_id, [])
    assert service.store.claim_next_job("w1", [T2V, I2V], lease_seconds=60) is None


def test_deleting_a_running_generation_fences_its_worker(service: Service) -> None:
    job_id = service.create(I2V)
    lease = service.claim()
    assert service.store.check_lease(lease) is LeaseCheck.OWNED

    response = service.client.delete(f"{PATH}/{job_id}", headers=A)
    assert response.json() == {"id": job_id, "deleted": True}
    assert_gone(service, job_id, [])
    # The worker's next check stops it, and none of its writes lands.
    assert service.store.check_lease(lease) is LeaseCheck.LOST
    assert not service.store.report_progress(lease, 0.5)
    assert not service.store.renew_lease(lease, 60)
    assert not service.store.complete_job(lease, service.store_outputs(job_id))
    assert service.store.get_job(job_id) is None


def test_the_legacy_path_deletes_too(service: Service) -> None:
    job_id = service.create()
    legacy = "/v2/generate/video/kling/generation"
    assert service.client.get(f"{legacy}/{job_id}", headers=A).json()["id"] == job_id
    assert service.client.delete(f"{legacy}/{job_id}", headers=A).json()["deleted"] is True
    assert service.poll(job_id).status_code == 404


# --- retention -------------------------------------------------------------------------


def test_a_sweep_removes_expired_finished_generations_and_their_files(service: Service) -> None:
    expired_done = service.create(I2V)
    service.succeed(service.claim())
    expired_links = file_links(service.poll(expired_done).json())
    expired_canceled = service.create(I2V)
    service.client.post(f"{PATH}/{expired_canceled}/cancel", headers=A)
    kept_done = service.create()
    service.succeed(service.claim())
    expired_running = service.create(I2V)
    service.claim()
    expired_queued = service.create(I2V)
    service.expire(expired_done, expired_canceled, expired_running, expired_queued)

    started = time.monotonic()
    assert service.ctx.generations.sweep_expired() == 2
    assert time.monotonic() - started < 5

    assert_gone(service, expired_done, expired_links)
    assert_gone(service, expired_canceled, [])
    # Unfinished jobs wait for their end, however old; unexpired ones stay, with their files.
    for job_id in (kept_done, expired_running, expired_queued):
        assert service.poll(job_id).status_code == 200
        assert service.files_of(job_id) != []
    assert all(
        service.client.get(link).status_code == 200
        for link in file_links(service.poll(kept_done).json())
    )
    assert service.ctx.generations.sweep_expired() == 0


def test_retention_counts_from_creation(service: Service) -> None:
    job = service.store.get_job(service.create())
    assert job is not None and job.expires_at is not None
    assert job.expires_at - job.created_at == pytest.approx(168 * 3600)


def test_retention_zero_keeps_generations_until_deleted(tmp_path: Path) -> None:
    service = start(tmp_path, retention_hours=0)
    job_id = service.create()
    service.succeed(service.claim())
    assert service.store.get_job(job_id).expires_at is None  # type: ignore[union-attr]
    assert service.ctx.generations.sweep_expired() == 0
    assert service.poll(job_id).json()["status"] == "completed"
    assert service.files_of(job_id) != []
    service.ctx.close()
    service.store.engine.dispose()


def test_the_running_app_sweeps_by_itself(tmp_path: Path) -> None:
    service = start(tmp_path, sweep_interval_s=0.05)
    with service.client:  # runs the app's lifespan, and with it the sweeper
        job_id = service.create()
        service.succeed(service.claim())
        links = file_links(service.poll(job_id).json())
        assert service.store.get_job(job_id).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]
        service.expire(job_id)
        deadline = time.monotonic() + 10
        while service.store.get_job(job_id) is not None:
            assert time.monotonic() < deadline, "the sweeper did not remove the expired job"
            time.sleep(0.02)
        assert_gone(service, job_id, links)
    service.ctx.close()
    service.store.engine.dispose()
