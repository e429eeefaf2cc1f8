"""The webhook dispatcher: a loop in the API process that sends due deliveries from the
outbox (`jobs.webhooks.WebhookOutbox`), at least once, in order per generation.

Each pass claims due deliveries (no more than `concurrency` in flight) and sends each in its
own task; a pass runs every `poll_interval_s`, and at once when a send finishes (the job's
next delivery may be due now). Database calls run on threads, sends on the event loop under
one deadline each, so neither the routes nor a worker ever wait on a receiver.

One attempt: the body (fixed at the first attempt, stored, the same bytes on every retry) is

    {"type": "<event>", "timestamp": "<when the event happened>", "data": <generation>}

(the Standard Webhooks payload shape), where `<generation>` is what a poll in the job's
dialect answers, as it stood at the event (a dialect whose receivers expect another
envelope, as OpenAI's `{"id", "object": "event", "type", "created_at", "data"}`, names its
own in `envelopes`); it is POSTed with fresh signature headers
(`webhooks.signing`) through the outbound guard's transport (`net.transport`): every address
the host resolves to is checked and the connection made to a checked one, before a byte is
sent; redirects are not followed. A 2xx answer
delivers it; any other answer, a timeout or a connection error is retried on the
`RetrySchedule`, after which the delivery is `failed` and the job's next one goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from reelforge import __version__
from reelforge.jobs.events import JobEvent
from reelforge.jobs.store import Job
from reelforge.jobs.webhooks import Delivery, WebhookOutbox
from reelforge.net import OutboundPolicy, OutboundRefused
from reelforge.net.fetch import tls_context
from reelforge.net.transport import GuardedTransport
from reelforge.webhooks.schedule import RetrySchedule
from reelforge.webhooks.signing import WebhookSigner

__all__ = [
    "Envelope",
    "Renderer",
    "WebhookDispatcher",
    "job_at_event",
    "standard_envelope",
    "whole_body",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

Renderer = Callable[[Job], dict[str, Any]]
"""A dialect's generation object for a job, file links included (what its poll answers)."""

Envelope = Callable[[Delivery, JobEvent, dict[str, Any]], dict[str, Any]]
"""A webhook body around the rendered generation, for the delivery's event."""


def standard_envelope(delivery: Delivery, event: JobEvent, data: dict[str, Any]) -> dict[str, Any]:
    """The Standard Webhooks payload shape: `{"type", "timestamp", "data"}`."""
    return {"type": delivery.event_type, "timestamp": _iso(event.created_at), "data": data}


def whole_body(delivery: Delivery, event: JobEvent, data: dict[str, Any]) -> dict[str, Any]:
    """A dialect whose callbacks are the rendered object alone (Kling's: the task object).
    The signature headers are sent all the same (receivers that do not check them ignore
    them)."""
    return data


CLAIM_MARGIN_S = 10.0
"""A claim outlives its send's deadline by this much, so only a dead sender's claim expires."""
_MAX_ANSWER_BYTES = 64 * 1024
_MAX_ERROR_CHARS = 300
_DB_RETRY_S = 2.0


@dataclass(frozen=True)
class _Outcome:
    status_code: int | None
    error: str | None
    duration_s: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookDispatcher:
    """Sends the outbox's due deliveries; `run` is an `ApiContext.background` loop.

    `transport` replaces the network, guard included, for tests that play the receiver; by
    default sends go through `GuardedTransport` under `policy`.
    """

    def __init__(
        self,
        outbox: WebhookOutbox,
        *,
        renderers: Mapping[str, Renderer],
        envelopes: Mapping[str, Envelope] | None = None,
        signer: WebhookSigner,
        policy: OutboundPolicy,
        schedule: RetrySchedule,
        timeout_s: float,
        poll_interval_s: float = 0.5,
        concurrency: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.outbox = outbox
        self.renderers = renderers
        self.envelopes = envelopes or {}
        self.signer = signer
        self.policy = policy
        self.schedule = schedule
        self.timeout_s = timeout_s
        self.claim_s = timeout_s + CLAIM_MARGIN_S
        self.poll_interval_s = poll_interval_s
        self.concurrency = concurrency
        self._transport = transport
        self._wake = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Dispatch until canceled. Database failures are logged and waited out; a send
        canceled at shutdown leaves its claim to expire, so it is sent again later."""
        # trust_env off: a proxy from the environment would hide the peer the guard checks.
        client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(self.timeout_s),
            transport=self._transport or GuardedTransport(self.policy, ssl_context=tls_context()),
        )
        try:
            async with client:
                while True:
                    try:
                        claimed = await self.dispatch_once(client)
                    except Exception as exc:
                        log.warning("webhook dispatcher: the outbox is unavailable: %s", exc)
                        await asyncio.sleep(_DB_RETRY_S)
                        continue
                    if claimed and len(self._sending) < self.concurrency:
                        continue  # a full batch: more may be due
                    self._wake.clear()
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops a cancel
                    # that comes as the wake-up is set (a send ending), and shutdown then
                    # waited for ever on a dispatcher that went on polling.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.poll_interval_s):
                            await self._wake.wait()
        finally:
            for task in self._sending:
                task.cancel()
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def dispatch_once(self, client: httpx.AsyncClient) -> int:
        """Claim what is due (as many as free send slots) and start sending it; returns how
        many were claimed."""
        free = self.concurrency - len(self._sending)
        if free <= 0:
            return 0
        claimed = await _on_thread(self.outbox.claim_due, free, self.claim_s)
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(client, delivery), name=delivery.id)
            self._sending.add(task)
            task.add_done_callback(self._sent)
        return len(claimed)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._wake.set()

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        try:
            body = delivery.body or await self._first_body(delivery)
            if body is None:
                outcome = _Outcome(None, "the generation no longer exists", 0.0)
                retry_in_s = None
            else:
                outcome = await self._send(client, delivery, body)
                retry_in_s = (
                    None if outcome.delivered else self.schedule.delay_after(delivery.attempts)
                )
            await _on_thread(
                lambda: self.outbox.record_attempt(
                    delivery,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_s=outcome.duration_s,
                    delivered=outcome.delivered,
                    retry_in_s=retry_in_s,
                )
            )
            _log_outcome(delivery, outcome, retry_in_s)
        except Exception:
            # Its claim expires and the delivery is due again: nothing is lost.
            log.exception(
                "webhook %s of generation %s: attempt failed", delivery.id, delivery.job_id
            )

    async def _first_body(self, delivery: Delivery) -> str | None:
        subject = await _on_thread(self.outbox.subject, delivery)
        if subject is None:
            return None
        job, event = subject
        render = self.renderers.get(job.dialect)
        if render is None:
            raise LookupError(f"no webhook renderer for dialect {job.dialect!r}")
        envelope = self.envelopes.get(job.dialect, standard_envelope)
        payload = envelope(delivery, event, render(job_at_event(job, event)))
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        return await _on_thread(self.outbox.fix_body, delivery.id, body)

    async def _send(self, client: httpx.AsyncClient, delivery: Delivery, body: str) -> _Outcome:
        started = time.monotonic()
        headers = {
            "content-type": "application/json",
            "user-agent": f"reelforge/{__version__}",
            **self.signer.headers(delivery.id, int(time.time()), body),
        }
        status_code: int | None = None
        error: str | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                target = self.policy.parse(delivery.url)  # the address: checked on connecting
                request = client.stream("POST", target.url, content=body.encode(), headers=headers)
                async with request as response:
                    status_code = response.status_code
                    # Read a little of the answer (a receiver's "ok"), never a flood of it.
                    read = 0
                    async for chunk in response.aiter_bytes():
                        read += len(chunk)
                        if read > _MAX_ANSWER_BYTES:
                            break
        except TimeoutError:
            status_code, error = None, f"timed out after {self.timeout_s:g} s"
        except OutboundRefused as exc:
            status_code, error = None, f"refused: the URL {exc}"
        except httpx.HTTPError as exc:
            status_code, error = None, f"{type(exc).__name__}: {exc}"[:_MAX_ERROR_CHARS]
        if status_code is not None and 300 <= status_code < 400:
            error = "answered a redirect; webhook redirects are not followed"
        return _Outcome(status_code, error, round(time.monotonic() - started, 3))


def job_at_event(job: Job, event: JobEvent) -> Job:
    """The job as it stood at `event`: a `started` or `progress` delivery sent after the job
    moved on still reports that moment (no later progress, files or error)."""
    if event.status.is_terminal:
        return job
    return dataclasses.replace(
        job,
        status=event.status,
        progress=event.progress,
        step=None,  # events keep no step count: the row's is of a later moment
        steps=None,
        attempts=int(event.data.get("attempt", job.attempts)),
        result=None,
        error_name=None,
        error_message=None,
        finished_at=None,
    )


async def _on_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


def _log_outcome(delivery: Delivery, outcome: _Outcome, retry_in_s: float | None) -> None:
    what = f"webhook {delivery.id} ({delivery.event_type}) of generation {delivery.job_id}"
    if outcome.delivered:
        log.info("%s delivered on attempt %d", what, delivery.attempts)
        return
    why = outcome.error or f"answered {outcome.status_code}"
    if retry_in_s is None:
        log.warning("%s failed for good after %d attempts: %s", what, delivery.attempts, why)
    else:
        log.info("%s attempt %d: %s; retrying in %.1f s", what, delivery.attempts, why, retry_in_s)


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
