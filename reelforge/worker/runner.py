"""The worker loop: claim a job, run its engine, encode, store, report; one job at a time."""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image

from reelforge.engines import Engine, Registry, engine_class
from reelforge.errors import (
    ConfigurationError,
    GenerationError,
    InsufficientStorage,
    ServiceUnavailable,
)
from reelforge.jobs import JobStore, Lease, LeaseCheck, translate_db_error
from reelforge.jobs.result import Artifact, JobResult, StageTimings, VideoArtifact
from reelforge.logs import job_context, quiet_libraries
from reelforge.media import DEFAULT_VIDEO_PRESET, encode_outputs
from reelforge.storage import Storage, keys, storage_error
from reelforge.worker.drain import DRAIN_REASON, Drain, Drained
from reelforge.worker.heartbeat import Heartbeat

__all__ = ["JobCanceled", "JobRunner", "LeaseLost", "load_engines"]

log = logging.getLogger(__name__)

# Share of the progress bar given to the engine; encoding and storing take the rest.
_ENGINE_SHARE = 0.9
_PROGRESS_EVERY_S = 0.25
# Waits between tries to record a result while the database is away (about 7 s in all).
_COMPLETE_RETRY_S = (0.5, 1.5, 5.0)
_SCRATCH = "the worker's scratch directory"


class LeaseLost(Exception):
    """Raised inside the engine's step callback when another worker took over the job."""


class JobCanceled(Exception):
    """Raised inside the engine's step callback when the job's cancel was asked for."""


def load_engines(registry: Registry, device: str) -> dict[str, Engine]:
    """Build and load one engine per distinct (engine, checkpoint, options) in the registry;
    map every model id to its engine. Any failure is a `ConfigurationError` naming the
    model."""
    quiet_libraries()
    loaded: dict[tuple[str, str | None, str], Engine] = {}
    by_model: dict[str, Engine] = {}
    for entry in registry:
        key = (entry.engine, entry.checkpoint, repr(sorted(entry.options.items())))
        if key not in loaded:
            log.info("loading engine %s for %s", entry.engine, entry.id)
            try:
                engine = engine_class(entry.engine)(entry.checkpoint, device, entry.options)
                engine.load()
            except ConfigurationError:
                raise
            except Exception as exc:
                # Missing or damaged weights, an unknown option, no such device: restarting
                # would fail the same way, so this is for the operator, in one line.
                log.debug("loading %s failed", entry.id, exc_info=True)
                first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ConfigurationError(
                    f"cannot load model {entry.id} (engine {entry.engine}): {first_line}"
                ) from exc
            loaded[key] = engine
        by_model[entry.id] = loaded[key]
    quiet_libraries()  # again: loading imported transformers / diffusers
    return by_model


class JobRunner:
    """Runs claimed jobs to completion; owns no loop of its own (see `worker.main`)."""

    def __init__(
        self,
        store: JobStore,
        storage: Storage,
        registry: Registry,
        engines: dict[str, Engine],
        heartbeat: Heartbeat,
        scratch_dir: Path | None = None,
        drain: Drain | None = None,
        video_preset: str = DEFAULT_VIDEO_PRESET,
    ) -> None:
        self.store = store
        self.storage = storage
        self.registry = registry
        self.engines = engines
        self.heartbeat = heartbeat
        self.scratch_dir = scratch_dir  # where videos are encoded; None: the system's temp
        self.drain = drain  # once overdue, the running job is handed back between steps
        self.video_preset = video_preset  # libx264's, for every mp4 this runner encodes

    def run(self, lease: Lease) -> None:
        """Run one claimed job and record its outcome; never raises for a job's failure,
        nor for a database that fails while the outcome is written."""
        with job_context(lease.job_id):
            try:
                self._run(lease)
            except Exception as exc:
                if translate_db_error(exc) is None:
                    raise
                # The run is over but its outcome (a failure, a cancel, a hand-back) could
                # not be written: the job keeps its lease until that runs out, then lease
                # recovery queues it again. The worker itself goes on to its next claim.
                log.warning(
                    "job %s: could not record how the run ended: the job database failed "
                    "(%s); the job is queued again once its lease runs out",
                    lease.job_id,
                    exc.__class__.__name__,
                )

    def _run(self, lease: Lease) -> None:
        job_id = lease.job_id
        run = secrets.token_hex(4)  # this run's own storage folder (see storage.keys)
        self.heartbeat.watch(lease)
        started = time.monotonic()
        try:
            result = self._generate(lease, run)
        except LeaseLost:
            log.warning("job %s: abandoned after its lease was lost", job_id)
        except Drained:
            if self.store.hand_back(lease, reason=DRAIN_REASON):
                log.info(
                    "job %s: handed back to the queue after %.2f s: this worker is stopping",
                    job_id,
                    time.monotonic() - started,
                )
            else:
                log.warning("job %s: stopping, and its lease was already lost", job_id)
        except JobCanceled:
            if self.store.finish_canceled(lease):
                log.info("job %s: canceled after %.2f s", job_id, time.monotonic() - started)
        except GenerationError as exc:
            status = self.store.fail_job(
                lease, name=exc.name, message=exc.message, retryable=exc.retryable
            )
            log.warning("job %s: %s: %s (now %s)", job_id, exc.name, exc.message, status)
        except Exception as exc:
            if _is_out_of_memory(exc):
                # The request did not fit; the worker itself is fine once the memory is freed.
                _release_device_memory()
                log.warning("job %s: out of memory: %s", job_id, str(exc).split("\n", 1)[0])
                self.store.fail_job(
                    lease,
                    name="out_of_memory",
                    message="the device ran out of memory for this request; a shorter or "
                    "smaller video, or a model configured with offloading, may fit",
                )
                return
            if translate_db_error(exc) is not None:
                # The database failed mid-run (a cut connection, a failover): not the job's
                # fault. Back to the queue for another attempt; if even that write fails,
                # the lease runs out and recovery requeues it.
                log.warning("job %s: the job database failed during the run: %s", job_id, exc)
                with contextlib.suppress(Exception):
                    self.store.fail_job(
                        lease,
                        name="database_unavailable",
                        message="the job database failed while this job ran",
                        retryable=True,
                    )
                return
            log.exception("job %s: internal error in the worker", job_id)
            self.store.fail_job(
                lease,
                name="internal_error",
                message=f"the worker hit an internal error; the server log has details for "
                f"job {job_id}",
            )
        else:
            if self._complete(lease, result):
                log.info("job %s: succeeded in %.2f s", job_id, time.monotonic() - started)
            else:
                log.warning("job %s: finished, but its lease was lost; result dropped", job_id)
                # The files of this run are nobody's: another run's result, under its own
                # folder, is the job's (or the job was deleted meanwhile, files and all).
                self._discard(job_id, run, deleted=self.store.get_job(job_id) is None)
        finally:
            self.heartbeat.watch(None)

    def _complete(self, lease: Lease, result: JobResult) -> bool:
        """Record the result; a database away for a moment is retried (bounded), so a cut
        connection does not cost the whole run. False: the lease was lost."""
        for wait_s in _COMPLETE_RETRY_S:
            try:
                return self.store.complete_job(lease, result)
            except Exception as exc:
                if translate_db_error(exc) is None:
                    raise
                log.warning(
                    "job %s: could not record the result (%s); retrying",
                    lease.job_id,
                    exc.__class__.__name__,
                )
                time.sleep(wait_s)
        return self.store.complete_job(lease, result)

    def _generate(self, lease: Lease, run: str) -> JobResult:
        spec = lease.job.spec
        entry = self.registry.get(spec.model)
        engine = self.engines.get(spec.model)
        if entry is None or engine is None:
            raise GenerationError(f"this worker does not serve model {spec.model!r}")
        image = self._load_image(spec.image_key)

        mark = time.monotonic()
        clip = engine.generate(spec, image, self._step_callback(lease, _ENGINE_SHARE))
        engine_s = time.monotonic() - mark
        for warning in clip.meta.get("warnings") or ():
            # What the client sees in meta.warnings (a prompt the model does not know, ...).
            log.warning("job %s: %s", lease.job_id, warning)
        self._check_lease(lease)  # a cancel that came during the decode skips the encode

        mark = time.monotonic()
        with self._scratch(lease.job_id) as tmp:
            try:
                media = encode_outputs(
                    clip.frames,
                    spec.width,
                    spec.height,
                    spec.num_frames,
                    spec.fps,
                    tmp,
                    preset=self.video_preset,
                )
            except OSError as exc:
                raise _storage_failure(storage_error(exc, _SCRATCH)) from exc
            encode_s = time.monotonic() - mark
            self._check_lease(lease)
            self._report_progress(lease, 0.95)
            mark = time.monotonic()
            stored = self._store_outputs(lease.job_id, run, media)
            store_s = time.monotonic() - mark
        video, preview, thumbnail = stored
        return JobResult(
            video=VideoArtifact(
                **video.model_dump(),
                width=media.width,
                height=media.height,
                fps=media.fps,
                frames=media.num_frames,
            ),
            preview=preview,
            thumbnail=thumbnail,
            engine=entry.engine,
            meta=clip.meta,
            timings=StageTimings(
                engine_s=round(engine_s, 4), encode_s=round(encode_s, 4), store_s=round(store_s, 4)
            ),
        )

    @contextmanager
    def _scratch(self, job_id: str) -> Iterator[Path]:
        """A private folder for one job's encoded files, removed afterwards."""
        try:
            scratch = tempfile.TemporaryDirectory(
                prefix=f"reelforge-{job_id}-", dir=self.scratch_dir
            )
        except OSError as exc:
            raise _storage_failure(storage_error(exc, _SCRATCH)) from exc
        with scratch as tmp:
            yield Path(tmp)

    def _store_outputs(self, job_id: str, run: str, media: Any) -> list[Artifact]:
        stored: list[Artifact] = []
        for path, content_type in (
            (media.video, "video/mp4"),
            (media.preview, "image/gif"),
            (media.thumbnail, "image/webp"),
        ):
            key = keys.output(job_id, Path(path).name, run)
            try:
                written = self.storage.put_file(key, Path(path), content_type)
            except (InsufficientStorage, ServiceUnavailable) as exc:
                raise _storage_failure(exc) from exc
            stored.append(Artifact(key=key, size=written.size, content_type=content_type))
        return stored

    def _discard(self, job_id: str, run: str, deleted: bool) -> None:
        """Remove what a run whose result was refused stored: its own folder, or, for a job
        deleted while it ran, everything the delete could not yet see (the folders too)."""
        prefixes = keys.job_prefixes(job_id) if deleted else (keys.run_prefix(job_id, run),)
        for prefix in prefixes:
            try:
                self.storage.delete_prefix(prefix)
            except (InsufficientStorage, ServiceUnavailable):
                # The sweeper tries again when it forgets the deleted job.
                log.warning("job %s: could not remove %s* of the deleted job", job_id, prefix)

    def _load_image(self, key: str | None) -> Image.Image | None:
        if key is None:
            return None
        try:
            data = self.storage.get_bytes(key)
        except FileNotFoundError:
            raise GenerationError(
                "the input image is no longer in storage", name="input_missing"
            ) from None
        except (InsufficientStorage, ServiceUnavailable) as exc:
            raise _storage_failure(exc) from exc
        image = Image.open(io.BytesIO(data))
        return image.convert("RGB")

    def _step_callback(self, lease: Lease, share: float) -> Callable[[int, int], None]:
        last_report = 0.0

        def on_step(done: int, total: int) -> None:
            nonlocal last_report
            self._check_lease(lease)
            if self.drain is not None and self.drain.overdue:
                # Only between engine steps: a job whose engine is done is encoded and
                # stored (seconds) rather than thrown away.
                raise Drained(lease.job_id)
            now = time.monotonic()
            if now - last_report >= _PROGRESS_EVERY_S or done >= total:
                last_report = now
                self._report_progress(lease, share * done / max(1, total), (done, total))

        return on_step

    def _report_progress(
        self, lease: Lease, progress: float, step: tuple[int, int] | None = None
    ) -> None:
        """Progress is advisory: a database away for a moment must not fail the job."""
        try:
            self.store.report_progress(lease, progress, step)
        except Exception as exc:
            if translate_db_error(exc) is None:
                raise
            log.warning(
                "job %s: could not report progress: %s", lease.job_id, exc.__class__.__name__
            )

    def _check_lease(self, lease: Lease) -> None:
        """Stop the run (by raising) if the lease is gone or a cancel was asked for.

        Runs after every engine step, so a cancel stops the engine within one step; the
        heartbeat's flag saves the read once it already knows the lease is lost.
        """
        if self.heartbeat.lease_lost.is_set():
            raise LeaseLost(lease.job_id)
        try:
            check = self.store.check_lease(lease)
        except Exception as exc:
            if translate_db_error(exc) is None:
                raise
            # The database is away for a moment (a cut connection, a restart): go on; the
            # heartbeat's renewals decide whether the lease is still ours.
            log.warning(
                "job %s: could not check the lease: %s", lease.job_id, exc.__class__.__name__
            )
            return
        if check is LeaseCheck.LOST:
            raise LeaseLost(lease.job_id)
        if check is LeaseCheck.CANCEL_REQUESTED:
            raise JobCanceled(lease.job_id)


def _storage_failure(exc: InsufficientStorage | ServiceUnavailable) -> GenerationError:
    """The job's error for a store (or scratch folder) that is full or cannot be written."""
    # Not retryable: another attempt would generate the whole video again (minutes of device
    # time) only to reach the same store, and a full or read-only disk rarely heals before
    # then; the job fails at once with the cause, and is resubmitted once an operator acts.
    if isinstance(exc, InsufficientStorage):
        return GenerationError(
            f"{exc.message}; an operator must free space", name="storage_full", retryable=False
        )
    return GenerationError(exc.message, name="storage_unavailable", retryable=False)


def _is_out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` is an out-of-memory error of the device (torch's, any backend) or host."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get("torch")  # only engines import torch; never import it here
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)


def _release_device_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


_STOP_CHECK_S = 0.5


def wait_for_work(wake: Any, stop: threading.Event | Drain, timeout_s: float) -> None:
    """Sleep until woken (new job), stopped, or `timeout_s` passes.

    `wake` (a threading or multiprocessing Event, or None) is waited on in slices, so that a
    long poll interval does not delay a stop; `stop` is an Event of this process only, or
    the worker's `Drain`."""
    if wake is None:
        stop.wait(timeout_s)
        return
    deadline = time.monotonic() + timeout_s
    while not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        if wake.wait(min(_STOP_CHECK_S, remaining)):
            wake.clear()
            return
