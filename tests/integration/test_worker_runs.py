"""The worker's job runner with a real engine (tiny Wan), a real job store and real storage:
cancellation inside the denoising loop and out-of-memory errors.

The engine is the real `WanEngine` on a tiny random-weight checkpoint; what these tests add is
instrumentation around it (a step counter, a decode counter) and, for out of memory, one
injected fault in the transformer, since a real one cannot be provoked on a CPU.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from reelforge.engines.base import Clip, OnStep
from reelforge.engines.diffusers.wan import WanEngine
from reelforge.engines.registry import ModelEntry, Registry
from reelforge.jobs import JobStatus, JobStore, Lease
from reelforge.spec import GenerationSpec
from reelforge.storage import Storage, keys, open_storage
from reelforge.testing.tiny import tiny_wan_options
from reelforge.worker.heartbeat import Heartbeat
from reelforge.worker.runner import JobRunner
from tests.conftest import make_spec

pytestmark = pytest.mark.slow  # a real diffusers pipeline

MODEL = "klingai/v2-master-text-to-video"
STEPS = 8


class CountingWan(WanEngine):
    """The real Wan engine, counting denoising steps and VAE decodes; `on_step_hook(done)`
    runs inside each step's callback, before the worker's own check."""

    def __init__(self, checkpoint: str) -> None:
        super().__init__(checkpoint, "cpu", {"steps": STEPS, **tiny_wan_options("t2v")})
        self.steps: list[int] = []
        self.decodes = 0
        self.on_step_hook = lambda done: None

    def load(self) -> None:
        super().load()
        vae = self._text_pipeline.vae
        decode = vae.decode

        def counted_decode(*args: Any, **kwargs: Any) -> Any:
            self.decodes += 1
            return decode(*args, **kwargs)

        vae.decode = counted_decode

    def generate(self, spec: GenerationSpec, image: Any, on_step: OnStep) -> Clip:
        def counted(done: int, total: int) -> None:
            self.steps.append(done)
            self.on_step_hook(done)
            on_step(done, total)

        return super().generate(spec, image, counted)


@pytest.fixture(scope="module")
def engine(tiny_wan_checkpoints: dict[str, Path]) -> CountingWan:
    engine = CountingWan(str(tiny_wan_checkpoints["t2v"]))
    engine.load()
    return engine


@pytest.fixture
def runner(store: JobStore, engine: CountingWan, tmp_path: Path) -> Iterator[JobRunner]:
    engine.steps.clear()
    engine.decodes = 0
    engine.on_step_hook = lambda done: None
    registry = Registry([ModelEntry(MODEL, "wan")])
    heartbeat = Heartbeat(store, "w1", lease_seconds=60, interval_s=30)  # never beats here
    yield JobRunner(
        store, open_storage(str(tmp_path / "files")), registry, {MODEL: engine}, heartbeat
    )


def _claim(store: JobStore) -> Lease:
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=60)
    assert lease is not None
    return lease


def test_cancel_stops_the_engine_within_one_step_and_skips_the_decode(
    store: JobStore, engine: CountingWan, runner: JobRunner
) -> None:
    job = store.create_job(make_spec(num_frames=9))
    lease = _claim(store)

    def cancel_during_step_two(done: int) -> None:
        if done == 3:  # unit 1 is the prompt: as if the cancel arrived while step 2 ran
            store.request_cancel(job.id)

    engine.on_step_hook = cancel_during_step_two
    runner.run(lease)

    assert engine.steps == [1, 2, 3]
    assert engine.decodes == 0
    canceled = store.get_job(job.id)
    assert canceled is not None and canceled.status is JobStatus.CANCELED
    assert canceled.result is None and canceled.finished_at is not None

    # The same worker then runs the next job to the end.
    engine.steps.clear()
    engine.on_step_hook = lambda done: None
    following = store.create_job(make_spec(num_frames=9))
    runner.run(_claim(store))
    assert engine.steps == list(range(1, STEPS + 3)) and engine.decodes == 1
    assert store.get_job(following.id).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]


def test_out_of_memory_fails_the_job_and_the_next_one_succeeds(
    store: JobStore, engine: CountingWan, runner: JobRunner
) -> None:
    transformer = engine._text_pipeline.transformer
    forward = transformer.forward

    def out_of_memory_once(*args: Any, **kwargs: Any) -> Any:
        transformer.forward = forward  # only the first call fails
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    transformer.forward = out_of_memory_once
    failed = store.create_job(make_spec(num_frames=9))
    runner.run(_claim(store))
    job = store.get_job(failed.id)
    assert job is not None and job.status is JobStatus.FAILED
    assert job.error_name == "out_of_memory"
    assert "ran out of memory" in (job.error_message or "")
    assert job.attempts == 1  # not retried: the same request would not fit again

    following = store.create_job(make_spec(num_frames=9))
    runner.run(_claim(store))
    assert store.get_job(following.id).status is JobStatus.SUCCEEDED  # type: ignore[union-attr]


def _delete_as_the_api_does(store: JobStore, storage: Storage, job_id: str) -> None:
    """`Generations.delete`: cancel, remove the row, then the files."""
    store.request_cancel(job_id)
    assert store.delete_job(job_id) is not None
    for prefix in keys.job_prefixes(job_id):
        storage.delete_prefix(prefix)


def _left_in(storage: Storage, job_id: str) -> list[Path]:
    root: Path = storage.root  # type: ignore[attr-defined]
    return [root / prefix for prefix in keys.job_prefixes(job_id) if (root / prefix).exists()]


def test_a_job_deleted_during_its_steps_stops_and_stores_nothing(
    store: JobStore, engine: CountingWan, runner: JobRunner
) -> None:
    job = store.create_job(make_spec(num_frames=9))
    lease = _claim(store)

    def delete_during_step_two(done: int) -> None:
        if done == 3:
            _delete_as_the_api_does(store, runner.storage, job.id)

    engine.on_step_hook = delete_during_step_two
    runner.run(lease)
    assert engine.steps == [1, 2, 3] and engine.decodes == 0
    assert store.get_job(job.id) is None
    assert _left_in(runner.storage, job.id) == []


def test_a_job_deleted_while_its_files_are_stored_leaves_no_file(
    store: JobStore, engine: CountingWan, runner: JobRunner
) -> None:
    """The delete lands after the worker's last lease check: it removes the video the worker
    had stored, the worker then stores the rest, its result is refused, and it removes what
    it stored (the job's folders too)."""
    job = store.create_job(make_spec(num_frames=9))
    lease = _claim(store)
    storage = runner.storage
    put_file = storage.put_file
    stored: list[str] = []

    def put_then_delete(key: str, source: Path, content_type: str) -> Any:
        written = put_file(key, source, content_type)
        stored.append(key)
        if key.endswith("video.mp4"):
            _delete_as_the_api_does(store, storage, job.id)
        return written

    storage.put_file = put_then_delete  # type: ignore[method-assign]
    runner.run(lease)
    assert engine.decodes == 1
    assert [Path(key).name for key in stored] == ["video.mp4", "preview.gif", "thumbnail.webp"]
    assert store.get_job(job.id) is None
    assert _left_in(storage, job.id) == []
