"""Live event streams of generations (`GET …/{id}/events`): read from the job-event outbox.

A stream first replays the job's stored events after the client's `Last-Event-ID`, then
follows the job: every `poll_interval_s` one function on a database thread reads the events
after its cursor and then the row. An event goes out for each new transition (its id is the
transition's `job_events.seq`), and also when progress or queue position moved between
transitions; those carry the id of the last transition, so a client that resumes from any id
it was given is replayed everything after that transition and misses nothing. The stream
ends after a terminal event (succeeded, failed, canceled, deleted).

Polling the outbox rather than being woken keeps the API stateless across replicas (a
worker on another host writes the same table) at the price of up to one interval of
latency; a tick costs two indexed reads (three while queued), plus a cached ETA.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from reelforge.errors import ServerError, ServiceUnavailable
from reelforge.jobs import Job, JobStatus
from reelforge.jobs.events import EventType, JobEvent
from reelforge.service.generations import Generations, GenerationView

__all__ = ["EventStreams", "StreamEvent", "StreamSlots", "job_at"]

log = logging.getLogger(__name__)

_BATCH = 100
"""Events read per tick; a replay longer than this takes several ticks, with no wait between."""


@dataclass(frozen=True)
class StreamEvent:
    """One event of a stream: `seq` is its id; `view` is None once the job was deleted."""

    seq: int
    job_id: str
    view: GenerationView | None
    terminal: bool


class StreamSlots:
    """At most `limit` open streams in this process: each holds a connection and polls the
    database, so past the limit a new one is refused (503) rather than slowing them all."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        return self._open

    def acquire(self) -> Slot:
        with self._lock:
            if self._open >= self.limit:
                raise ServiceUnavailable(
                    f"this server already serves {self.limit} event streams; poll the "
                    "generation instead, or retry shortly",
                    retry_after_s=5,
                )
            self._open += 1
        return Slot(self)

    def _release(self) -> None:
        with self._lock:
            self._open -= 1


class Slot:
    """One stream's place; `release` may be called more than once (the stream's end and the
    response's background task both call it, whichever comes first)."""

    def __init__(self, slots: StreamSlots) -> None:
        self._slots = slots
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._release()


@dataclass(frozen=True)
class _Tick:
    events: list[JobEvent]
    view: GenerationView | None


class EventStreams:
    def __init__(self, generations: Generations, *, limit: int, poll_interval_s: float) -> None:
        self.generations = generations
        self.slots = StreamSlots(limit)
        self.poll_interval_s = poll_interval_s

    async def open(
        self, generation_id: str, tenant: str, after_seq: int
    ) -> tuple[Slot, AsyncGenerator[StreamEvent, None]]:
        """Check that the caller may watch the generation (404, as a poll would answer) and
        that a slot is free (503), before any byte of the stream is sent; then the stream,
        which releases the slot when it ends."""
        first, cursor = await self.generations.db.run(self._start, generation_id, tenant, after_seq)
        slot = self.slots.acquire()
        return slot, self._follow(slot, first, cursor)

    def _start(self, generation_id: str, tenant: str, after_seq: int) -> tuple[GenerationView, int]:
        view = self.generations.view_owned(generation_id, tenant)
        if after_seq <= 0:
            return view, 0
        # An id past the job's newest event (one from elsewhere) would wait forever for
        # events that already happened: replay the whole history instead.
        newest = 0
        while batch := self.generations.store.events_after(view.job.id, newest, _BATCH):
            newest = batch[-1].seq
        return view, after_seq if after_seq <= newest else 0

    async def _follow(
        self, slot: Slot, first: GenerationView, cursor: int
    ) -> AsyncGenerator[StreamEvent, None]:
        job_id = first.job.id
        last_job = first.job
        sent: tuple[object, ...] | None = None
        sent_status: JobStatus | None = None
        try:
            while True:
                try:
                    tick = await self.generations.db.run(self._tick, job_id, cursor)
                except ServerError as exc:
                    # A database blip must not end every stream: the gate bounded this try;
                    # the next one comes after the interval.
                    log.warning("event stream of %s: %s", job_id, exc)
                    await asyncio.sleep(self.poll_interval_s)
                    continue
                current = tick.view
                if current is not None:
                    last_job = current.job
                for index, event in enumerate(tick.events):
                    cursor = event.seq
                    if event.type is EventType.DELETED:
                        yield StreamEvent(event.seq, job_id, None, terminal=True)
                        return
                    newest = index == len(tick.events) - 1
                    if newest and current is not None and current.job.status is event.status:
                        # The row read after the events: this transition or later, same status.
                        view = current
                    else:
                        view = _historical(last_job, event, current)
                    yield StreamEvent(event.seq, job_id, view, terminal=event.terminal)
                    sent, sent_status = _state(view), view.job.status
                    if event.terminal:
                        return
                if len(tick.events) == _BATCH:
                    continue  # more to replay
                if current is None:
                    # Gone without a `deleted` event after the cursor: on SQLite a deleted
                    # job's event may reuse the seq of the events deleted with it (the
                    # table has no AUTOINCREMENT), so the row is the witness.
                    yield StreamEvent(cursor, job_id, None, terminal=True)
                    return
                if sent is None or (current.job.status is sent_status and _state(current) != sent):
                    # Between transitions (or on a resume with nothing new): the row as it
                    # stands, under the id of the last transition it is at or past.
                    yield StreamEvent(cursor, job_id, current, terminal=current.job.terminal)
                    sent, sent_status = _state(current), current.job.status
                    if current.job.terminal:
                        return
                await asyncio.sleep(self.poll_interval_s)
        finally:
            slot.release()

    def _tick(self, job_id: str, cursor: int) -> _Tick:
        # Events first, then the row: the row is then at or past every event read, so the
        # newest event can be shown with the row's links and timings.
        events = self.generations.store.events_after(job_id, cursor, _BATCH)
        return _Tick(events, self.generations.view_of(job_id))


def job_at(job: Job, event: JobEvent) -> Job:
    """The job as it stood right after `event`: today's row with that event's status and
    progress, and none of what came later (links, end time, error)."""
    status = event.status
    return dataclasses.replace(
        job,
        status=status,
        progress=event.progress,
        step=None,  # events keep no step count: today's would belong to a later moment
        steps=None,
        result=job.result if status is JobStatus.SUCCEEDED else None,
        finished_at=job.finished_at if status.is_terminal else None,
        error_name=job.error_name if status is JobStatus.FAILED else None,
        error_message=job.error_message if status is JobStatus.FAILED else None,
        started_at=None if event.type is EventType.CREATED else job.started_at,
    )


def _historical(job: Job, event: JobEvent, current: GenerationView | None) -> GenerationView:
    past = job_at(job, event)
    # Where it stood in the queue then is not stored: today's place if it is still queued.
    queued = current is not None and past.status is JobStatus.QUEUED
    position = current.queue_position if queued and current is not None else None
    return GenerationView(past, position, 0.0 if past.terminal else None)


def _state(view: GenerationView) -> tuple[object, ...]:
    """What, changed, is worth an event between transitions (not the ETA, which moves with
    the clock)."""
    return (view.job.status, round(100 * view.job.progress), view.queue_position)
