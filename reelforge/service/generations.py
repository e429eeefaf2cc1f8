"""Create, get, cancel, list and delete generations: once, for every dialect.

Every method is async and keeps blocking work off the event loop: database work runs as one
function on the database gate's threads (one hop per request, under its deadline), storage
work on a worker thread.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from starlette.concurrency import run_in_threadpool

from reelforge.errors import (
    Conflict,
    FieldError,
    InvalidRequest,
    NotFound,
    ServerError,
    ServiceUnavailable,
)
from reelforge.jobs import Job, JobStatus, JobStore, new_job_id
from reelforge.jobs.idempotency import IdempotencyKeys
from reelforge.jobs.loopread import LoopReader, LoopReadSkipped
from reelforge.jobs.queue import QueuePositions
from reelforge.jobs.store import Admission, ExternalIdTaken, WebhookSubscription
from reelforge.jobs.webhooks import Delivery, DeliveryAttempt, WebhookOutbox
from reelforge.net import OutboundPolicy, OutboundRefused
from reelforge.service.eta import EtaEstimator
from reelforge.spec import GenerationSpec
from reelforge.storage import Storage, keys

__all__ = ["GenerationView", "Generations", "Submission", "request_fingerprint"]

log = logging.getLogger(__name__)

T = TypeVar("T")

IDEMPOTENCY_TTL_S = 24 * 3600.0
IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_KEY_CHARS = 255
_WAIT_POLL_S = 0.05
DELETED_EVENTS_KEPT_S = 3600.0
"""How long a deleted generation's `deleted` event outlives it (for event streams)."""


class DatabaseRunner(Protocol):
    """Runs one function on a database thread under a deadline (`api.dbgate.DatabaseGate`)."""

    def run(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]: ...

    def write(self, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
        """`run` for a function that writes (SQLite: one writer of this process at a time)."""
        ...


class ImageLoader(Protocol):
    """Turns a client's image value (URL, data URI, base64) into PNG bytes, or raises a 4xx."""

    async def load_png(self, value: str, field: str | None = None) -> bytes: ...


@dataclass(frozen=True)
class Submission:
    """One create request, parsed by its dialect."""

    spec: GenerationSpec
    fingerprint: str
    """What identifies the request for idempotency: `request_fingerprint` of its body."""
    image_url: str | None = None
    image_field: str = "image_url"
    """The body field the image came in, for errors."""
    webhook: WebhookSubscription | None = None
    webhook_field: str = "webhook_url"
    """The body field the webhook URL came in, for errors."""
    idempotency_key: str | None = None
    external_id: str | None = None
    """The client's own name for the generation, unique per tenant (refused when taken)."""
    external_id_field: str = "external_task_id"
    """The body field the external id came in, for errors."""


@dataclass(frozen=True)
class GenerationView:
    """A job as a renderer needs it: the row, its place in the queue (None once out) and
    the seconds it is expected to need still (`service.eta`; None when unknown)."""

    job: Job
    queue_position: int | None
    eta_s: float | None = None


def request_fingerprint(dialect: str, body: Any) -> str:
    """A stable hash of a parsed JSON body: key order and spacing do not count."""
    canonical = json.dumps([dialect, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Generations:
    def __init__(
        self,
        *,
        store: JobStore,
        storage: Storage,
        db: DatabaseRunner,
        images: ImageLoader,
        outbound: OutboundPolicy,
        retention_s: float | None,
        lease_seconds: float,
        in_flight_limit_s: float,
        worker_problems: Callable[[], list[str]],
        eta: EtaEstimator | None = None,
        admission: Callable[[str], Admission | None] = lambda _tenant: None,
        loop_reader: LoopReader | None = None,
    ) -> None:
        """`admission`: the check a tenant's create runs before its insert (its quotas, from
        `tenancy.limits`), or None when it has none.

        `loop_reader`: reads of one job on the event loop itself (`jobs.loopread`), or
        None: a poll then costs no thread hop."""
        self.store = store
        self.loop_reader = loop_reader
        self.storage = storage
        self.db = db
        self.images = images
        self.outbound = outbound
        self.retention_s = retention_s
        self.lease_seconds = lease_seconds
        self.worker_problems = worker_problems
        self.admission = admission
        # A reservation this old without its job belongs to a create that died.
        self.keys = IdempotencyKeys(
            store.engine, ttl_s=IDEMPOTENCY_TTL_S, stale_after_s=in_flight_limit_s
        )
        self.in_flight_limit_s = in_flight_limit_s
        self.positions = QueuePositions(store)
        self._refreshes: dict[object, asyncio.Future[object]] = {}
        self.outbox = WebhookOutbox(store.engine)
        self.eta = eta or EtaEstimator(store, live_within_s=lease_seconds)

    # --- create --------------------------------------------------------------------------

    async def create(self, submission: Submission, *, tenant: str, dialect: str) -> GenerationView:
        """Queue a generation; with an idempotency key, the same key and body from the same
        tenant return the first generation instead (even while its create is in flight)."""
        if submission.webhook is not None:
            await self._check_webhook_url(submission.webhook.url, submission.webhook_field)
        await self._check_servable(submission.spec.model)
        if submission.external_id is not None:
            # Before any slow work; the unique index settles a race (`_insert`).
            await self.db.run(self._check_external_id, submission, tenant)
        key = submission.idempotency_key
        if key is None:
            return await self._create(submission, tenant, dialect, new_job_id())
        _check_key(key)
        deadline = time.monotonic() + self.in_flight_limit_s
        while True:
            job_id = new_job_id()
            held = await self.db.write(
                self.keys.reserve, tenant, key, submission.fingerprint, job_id
            )
            if held.request_hash != submission.fingerprint:
                raise Conflict(
                    f"{IDEMPOTENCY_HEADER} {key[:100]!r} was already used with a different "
                    "request body; use a new key for a new request",
                    field=IDEMPOTENCY_HEADER,
                )
            if held.mine:
                try:
                    return await self._create(submission, tenant, dialect, job_id)
                except BaseException:
                    with contextlib.suppress(Exception):
                        await self.db.write(self.keys.release, tenant, key, job_id)
                    raise
            if held.job_exists:
                return await self.get(held.job_id, tenant)
            # The first create with this key is still in flight: wait for its job (or its
            # failure, which releases the key), then look again.
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"a request with {IDEMPOTENCY_HEADER} {key[:100]!r} is still in progress",
                    retry_after_s=1,
                )
            await asyncio.sleep(_WAIT_POLL_S)

    async def _create(
        self, submission: Submission, tenant: str, dialect: str, job_id: str
    ) -> GenerationView:
        spec = submission.spec
        if submission.image_url is not None:
            png = await self.images.load_png(submission.image_url, submission.image_field)
            key = keys.input_image(job_id)
            # A full or read-only store raises 507 / 503 (reelforge.storage.storage_error).
            await run_in_threadpool(self.storage.put_bytes, key, png, "image/png")
            spec = spec.model_copy(update={"image_key": key})
        return await self.db.write(self._insert, spec, tenant, job_id, dialect, submission)

    def _insert(
        self,
        spec: GenerationSpec,
        tenant: str,
        job_id: str,
        dialect: str,
        submission: Submission,
    ) -> GenerationView:
        """Insert the job; if that fails, remove its staged input (all or nothing). Runs in
        the database thread, so an insert that outlives the API's deadline keeps its input."""
        try:
            job = self.store.create_job(
                spec,
                tenant=tenant,
                job_id=job_id,
                dialect=dialect,
                webhook=submission.webhook,
                keep_for_s=self.retention_s,
                external_id=submission.external_id,
                admit=self.admission(tenant),
            )
        except ExternalIdTaken:
            self._remove_staged(spec)
            raise _external_id_taken(submission) from None
        except BaseException:
            # No orphan input without its job; a store that cannot delete must not hide the
            # insert's own error.
            self._remove_staged(spec)
            raise
        return self.view(job)

    def _remove_staged(self, spec: GenerationSpec) -> None:
        if spec.image_key is not None:
            with contextlib.suppress(ServerError):
                self.storage.delete(spec.image_key)

    def _check_external_id(self, submission: Submission, tenant: str) -> None:
        assert submission.external_id is not None
        if self.store.find_job_by_external_id(tenant, submission.external_id) is not None:
            raise _external_id_taken(submission)

    async def _check_webhook_url(self, url: str, field: str) -> None:
        """Refuse, at submit time, a webhook URL the dispatcher would never be let reach."""
        try:
            await self.outbound.resolve(self.outbound.parse(url))
        except OutboundRefused as exc:
            message = str(exc).replace("could not be downloaded: ", "")
            raise InvalidRequest(FieldError(field, message)) from None

    async def _check_servable(self, model: str) -> None:
        """503 instead of a job queued forever, when this server's workers gave up (a model
        that cannot load) and no live worker anywhere serves `model`. Without such problems
        (or on an API-only replica, which knows none) the job queues for whichever worker
        comes."""
        problems = self.worker_problems()
        if not problems:
            return
        live = await self.db.run(self.store.live_workers, self.lease_seconds)
        if not any(model in worker.models for worker in live):
            raise ServiceUnavailable(
                f"no worker can serve {model}: {'; '.join(problems)}", retry_after_s=60
            )

    # --- read, cancel --------------------------------------------------------------------

    async def get(self, generation_id: str, tenant: str | None) -> GenerationView:
        """The tenant's generation (None: any tenant's, for the admin scope); else 404."""
        view = await self._view_on_loop(generation_id, tenant)
        if view is not None:
            return view
        return await self.db.run(self.view_owned, generation_id, tenant)

    def _refresh_soon(self, name: object, fn: Callable[..., object], *args: Any) -> None:
        """Run `fn(*args)` on a database thread, one at a time per `name` (a cache refresh
        that polls answered on the loop asked for)."""
        running = self._refreshes.get(name)
        if running is not None and not running.done():
            return
        task = asyncio.ensure_future(self.db.run(fn, *args))
        # Its failure (the database away) is the next poll's to meet and report.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._refreshes[name] = task

    async def _view_on_loop(self, generation_id: str, tenant: str | None) -> GenerationView | None:
        """The view, read on the event loop by `loop_reader` when everything it needs is
        one row read (a finished job, a queued one deep in the queue); None when a slower
        read is due (an exact queue position, an expired cache, a running job's clock) or
        the reader skipped it: the caller then goes through the database thread as usual,
        which also reports any failure. A PostgreSQL read past the API's database deadline
        raises `DatabaseUnavailable` (503) here, as the thread would have."""
        if self.loop_reader is None:
            return None
        try:
            job = await self.loop_reader.get_job(generation_id)
        except LoopReadSkipped:
            return None  # locked, refused, dropped: the thread path reads and reports it
        if job is None or not _owned_by(job, tenant):
            return None  # the thread path answers 404, as for every other read
        known, position = self.positions.position_if_cached(job)
        if not known:
            return None
        if position is not None and self.positions.stale:
            self._refresh_soon("positions", self.positions.refresh)
        known, eta_s = self.eta.estimate_if_cached(job, position)
        if not known:
            return None
        if position is not None and self.eta.stale(job.model):
            self._refresh_soon(("eta", job.model), self.eta.refresh, job.model)
        return GenerationView(job, position, eta_s)

    async def lookup(self, ref: str, tenant: str) -> GenerationView:
        """The tenant's generation with id `ref`, else the one it named `ref` (its external
        id); 404 when neither exists."""
        return await self.db.run(self._lookup, ref, tenant)

    async def cancel(self, generation_id: str, tenant: str) -> GenerationView:
        return await self.db.write(self._cancel, generation_id, tenant)

    async def list(
        self,
        tenant: str | None,
        *,
        limit: int,
        after: str | None = None,
        status: Sequence[JobStatus] = (),
        model: str | None = None,
        models: Sequence[str] = (),
        offset: int = 0,
        oldest_first: bool = False,
    ) -> tuple[list[GenerationView], bool]:
        """A page of the tenant's generations (None: every tenant's, for the admin scope),
        newest first (or oldest first), and whether more follow; `models`: only these models;
        `offset`: skip that many (page-number paging)."""
        return await self.db.run(
            self._list, tenant, limit, after, status, model, models, offset, oldest_first
        )

    async def webhooks(
        self, generation_id: str, tenant: str
    ) -> builtins.list[tuple[Delivery, builtins.list[DeliveryAttempt]]]:
        """The generation's webhook deliveries in event order, each with its attempts."""
        return await self.db.run(self._webhooks, generation_id, tenant)

    # --- delete and retention ------------------------------------------------------------

    async def delete(self, generation_id: str, tenant: str) -> Job:
        """Cancel the generation if it runs, then remove its row and its files."""
        job = await self.db.write(self._delete, generation_id, tenant)
        await run_in_threadpool(self.remove_files, job.id)
        return job

    def remove_files(self, job_id: str) -> None:
        """Remove every file of the job (its input and outputs); idempotent."""
        for prefix in keys.job_prefixes(job_id):
            self.storage.delete_prefix(prefix)

    def sweep_expired(self, batch: int = 100) -> int:
        """Delete up to `batch` finished generations whose retention ran out (counted from
        their creation: `expires_at`), with their files; also expired idempotency keys.
        Blocking: run it on a thread. Returns how many this call removed.

        Files go before the row: a store that fails leaves the row for the next sweep to
        try again, never files without a job. Sweepers of several API replicas may run at
        once: removing files is idempotent, and only one `delete_job` finds the row."""
        removed = 0
        for job in self.store.expired_jobs(batch):
            self.remove_files(job.id)
            if self.store.delete_job(job.id) is not None:
                removed += 1
        self.keys.sweep()
        return removed

    def prune_deleted(self, older_than_s: float = DELETED_EVENTS_KEPT_S, batch: int = 100) -> int:
        """Forget generations deleted more than `older_than_s` ago: their `deleted` events
        go, after their files are removed once more (the files of a delete whose storage
        failed, or of a worker that stored them after the delete and died before it could
        remove them). Blocking; returns how many generations were forgotten."""
        job_ids = self.store.orphaned_event_jobs(older_than_s, batch)
        for job_id in job_ids:
            self.remove_files(job_id)
        self.store.prune_events(job_ids)
        return len(job_ids)

    # Each function below is one trip to a database thread (`self.db.run`): a request's
    # reads and writes together, under one deadline.

    def _owned(self, generation_id: str, tenant: str | None) -> Job:
        job = self.store.get_job(generation_id)
        # Another tenant's job is answered exactly like a missing one.
        if job is None or not _owned_by(job, tenant):
            raise NotFound(f"generation {generation_id[:100]!r} not found")
        return job

    def _webhooks(
        self, generation_id: str, tenant: str
    ) -> builtins.list[tuple[Delivery, builtins.list[DeliveryAttempt]]]:
        job = self._owned(generation_id, tenant)
        return self.outbox.deliveries_of(job.id)

    def view(self, job: Job) -> GenerationView:
        position = self.positions.position(job)
        return GenerationView(job, position, self.eta.estimate(job, position))

    def view_owned(self, generation_id: str, tenant: str | None) -> GenerationView:
        return self.view(self._owned(generation_id, tenant))

    def _lookup(self, ref: str, tenant: str) -> GenerationView:
        job = self.store.get_job(ref)
        if job is None or job.tenant != tenant:
            job = self.store.find_job_by_external_id(tenant, ref)
        if job is None:
            raise NotFound(f"generation {ref[:100]!r} not found")
        return self.view(job)

    def view_of(self, job_id: str) -> GenerationView | None:
        """The job's view whoever owns it (None once gone): for a caller that checked."""
        job = self.store.get_job(job_id)
        return self.view(job) if job is not None else None

    def _cancel(self, generation_id: str, tenant: str) -> GenerationView:
        self._owned(generation_id, tenant)
        job = self.store.request_cancel(generation_id)
        if job is None:  # deleted in between
            raise NotFound(f"generation {generation_id[:100]!r} not found")
        if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            word = "completed" if job.status is JobStatus.SUCCEEDED else "ended in error"
            raise Conflict(f"generation {generation_id!r} already {word}; nothing to cancel")
        return self.view(job)

    def _list(
        self,
        tenant: str | None,
        limit: int,
        after: str | None,
        status: Sequence[JobStatus],
        model: str | None,
        models: Sequence[str],
        offset: int,
        oldest_first: bool = False,
    ) -> tuple[builtins.list[GenerationView], bool]:
        page = self.store.list_jobs(
            tenant,
            limit=limit,
            after=after,
            status=status,
            model=model,
            models=models,
            offset=offset,
            oldest_first=oldest_first,
        )
        return [self.view(job) for job in page.jobs], page.has_more

    def _delete(self, generation_id: str, tenant: str) -> Job:
        self._owned(generation_id, tenant)
        # A running job's worker finds its lease gone at its next step and drops its work.
        self.store.request_cancel(generation_id)
        job = self.store.delete_job(generation_id)
        if job is None:
            raise NotFound(f"generation {generation_id[:100]!r} not found")
        return job


def _owned_by(job: Job, tenant: str | None) -> bool:
    """Whether `tenant` may read `job`: its own, or any job for None (the admin scope)."""
    return tenant is None or job.tenant == tenant


def _external_id_taken(submission: Submission) -> InvalidRequest:
    return InvalidRequest(
        FieldError(
            submission.external_id_field,
            f"{(submission.external_id or '')[:100]!r} already names another of your tasks; "
            "use a new one",
        )
    )


def _check_key(key: str) -> None:
    if not key or len(key) > _MAX_KEY_CHARS or not key.isprintable() or not key.isascii():
        raise InvalidRequest(
            FieldError(
                IDEMPOTENCY_HEADER,
                f"must be 1 to {_MAX_KEY_CHARS} printable ASCII characters",
            )
        )
