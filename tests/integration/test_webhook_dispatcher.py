"""The webhook dispatcher over a real job store, with receivers played by an httpx mock
transport (bodies, signatures, retries, timeouts, redirects) or, for the outbound guard,
by real loopback servers: 127.0.0.2 allowed, 127.0.0.1 forbidden."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from reelforge.jobs import JobStore, open_engine
from reelforge.jobs.schema import migrate
from reelforge.jobs.store import WebhookSubscription
from reelforge.jobs.webhooks import DeliveryStatus, WebhookOutbox
from reelforge.net import OutboundPolicy
from reelforge.webhooks import RetrySchedule, WebhookDispatcher, WebhookSigner
from tests.conftest import make_spec
from tests.fixtures.peers import Answer, peer_pair
from tests.integration.test_job_store import MODEL, make_result

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOOK_URL = "http://127.0.0.1:9/hook"
Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[JobStore]:
    engine = open_engine(sqlite_url)
    migrate(engine)
    yield JobStore(engine)
    engine.dispose()


def render(job: Any) -> dict[str, Any]:
    return {"id": job.id, "status": job.status.value, "progress": job.progress}


def dispatcher(
    store: JobStore,
    handler: Handler,
    *,
    delays_s: tuple[float, ...] = (0, 0, 0),
    policy: OutboundPolicy | None = None,
    timeout_s: float = 5.0,
    network: bool = False,
) -> WebhookDispatcher:
    """A dispatcher whose receiver is `handler`, or with `network` the real (guarded)
    network, `handler` unused."""
    return WebhookDispatcher(
        WebhookOutbox(store.engine),
        renderers={"aimlapi": render},
        signer=WebhookSigner(SECRET),
        policy=policy or OutboundPolicy(["loopback"]),
        schedule=RetrySchedule(delays_s, jitter=0),
        timeout_s=timeout_s,
        poll_interval_s=0.02,
        transport=None if network else httpx.MockTransport(handler),
    )


def finished_job(
    store: JobStore, events: tuple[str, ...] = ("completed",), url: str = HOOK_URL
) -> str:
    job = store.create_job(make_spec(), webhook=WebhookSubscription(url, events))
    lease = store.claim_next_job("w1", [MODEL], lease_seconds=30)
    assert lease is not None
    store.complete_job(lease, make_result(job.id))
    return job.id


def settled(store: JobStore, job_id: str) -> Callable[[], bool]:
    outbox = WebhookOutbox(store.engine)

    def done() -> bool:
        deliveries = outbox.deliveries_of(job_id)
        return bool(deliveries) and all(
            d.status in (DeliveryStatus.DELIVERED, DeliveryStatus.FAILED) for d, _ in deliveries
        )

    return done


def run_until(hub: WebhookDispatcher, condition: Callable[[], bool], timeout_s: float = 20) -> None:
    async def main() -> None:
        task = asyncio.create_task(hub.run())
        try:
            async with asyncio.timeout(timeout_s):
                while not await asyncio.to_thread(condition):
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def answers(*codes: int) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        code = codes[min(len(seen), len(codes)) - 1]
        return httpx.Response(code, headers={"location": "http://127.0.0.1:9/else"})

    return handler, seen


def test_retries_until_2xx_with_the_same_id_and_body(sqlite_store: JobStore) -> None:
    job_id = finished_job(sqlite_store)
    handler, seen = answers(500, 503, 204)
    run_until(dispatcher(sqlite_store, handler), settled(sqlite_store, job_id))
    assert len(seen) == 3
    payloads = [Webhook(SECRET).verify(r.content, dict(r.headers)) for r in seen]
    assert len({r.headers["webhook-id"] for r in seen}) == 1
    assert len({r.content for r in seen}) == 1
    assert payloads[0]["type"] == "completed"
    assert payloads[0]["data"] == {"id": job_id, "status": "succeeded", "progress": 1.0}
    assert payloads[0]["timestamp"].endswith("Z")
    assert seen[0].headers["content-type"] == "application/json"
    [(delivery, attempts)] = WebhookOutbox(sqlite_store.engine).deliveries_of(job_id)
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.id == seen[0].headers["webhook-id"]
    assert [(a.attempt, a.status_code) for a in attempts] == [(1, 500), (2, 503), (3, 204)]


def test_gives_up_after_the_schedule_then_sends_the_next_event(sqlite_store: JobStore) -> None:
    job_id = finished_job(sqlite_store, ("started", "completed"))
    seen: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        event = json.loads(request.content)["type"]
        seen.append(event)
        return httpx.Response(500 if event == "started" else 200)

    run_until(dispatcher(sqlite_store, handler, delays_s=(0,)), settled(sqlite_store, job_id))
    assert seen == ["started", "started", "completed"]
    statuses = [d.status for d, _ in WebhookOutbox(sqlite_store.engine).deliveries_of(job_id)]
    assert statuses == [DeliveryStatus.FAILED, DeliveryStatus.DELIVERED]


def test_a_started_event_sent_late_reports_that_moment(sqlite_store: JobStore) -> None:
    job_id = finished_job(sqlite_store, ("started", "completed"))
    bodies: list[dict[str, Any]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200)

    run_until(dispatcher(sqlite_store, handler), settled(sqlite_store, job_id))
    assert [(b["type"], b["data"]["status"]) for b in bodies] == [
        ("started", "running"),
        ("completed", "succeeded"),
    ]
    assert bodies[0]["data"]["progress"] == 0.0


def test_a_stalled_receiver_times_out_and_is_retried(sqlite_store: JobStore) -> None:
    job_id = finished_job(sqlite_store)
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(30)  # a receiver that never answers
        return httpx.Response(200)

    hub = dispatcher(sqlite_store, handler, timeout_s=0.3)
    run_until(hub, settled(sqlite_store, job_id))
    [(_, attempts)] = WebhookOutbox(sqlite_store.engine).deliveries_of(job_id)
    assert [(a.status_code, a.error) for a in attempts] == [
        (None, "timed out after 0.3 s"),
        (200, None),
    ]
    assert 0.3 <= attempts[0].duration_s < 2


def test_redirects_are_not_followed(sqlite_store: JobStore) -> None:
    job_id = finished_job(sqlite_store)
    handler, seen = answers(302)
    run_until(dispatcher(sqlite_store, handler, delays_s=()), settled(sqlite_store, job_id))
    assert [str(r.url) for r in seen] == [HOOK_URL]
    [(delivery, [attempt])] = WebhookOutbox(sqlite_store.engine).deliveries_of(job_id)
    assert delivery.status is DeliveryStatus.FAILED
    assert attempt.status_code == 302 and "redirect" in (attempt.error or "")


def test_the_outbound_guard_refuses_at_send_time(sqlite_store: JobStore) -> None:
    handler, _ = answers(200)
    closed = OutboundPolicy([], setting="REELFORGE_ALLOW_PRIVATE_URLS")
    with peer_pair() as (_, receiver):
        job_id = finished_job(sqlite_store, url=receiver.url("/hook"))
        run_until(
            dispatcher(sqlite_store, handler, delays_s=(), policy=closed, network=True),
            settled(sqlite_store, job_id),
        )
        assert receiver.connections == 0
    [(_, [attempt])] = WebhookOutbox(sqlite_store.engine).deliveries_of(job_id)
    assert attempt.error is not None and "non-public address" in attempt.error


def _resolving(host: str, *answers: list[str]) -> OutboundPolicy:
    queue = list(answers)

    async def resolve(name: str, port: int) -> list[str]:
        if name != host:
            raise OSError(f"{name} not found")
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return OutboundPolicy(["127.0.0.2/32"], resolver=resolve)


def test_a_delivery_connects_to_the_address_the_guard_checked(sqlite_store: JobStore) -> None:
    handler, _ = answers(200)
    with peer_pair() as (receiver, forbidden):
        receiver.answers["/hook"] = Answer(204)
        job_id = finished_job(sqlite_store, url=receiver.url("/hook", host="hooks.example"))
        policy = _resolving("hooks.example", ["127.0.0.2"])
        run_until(
            dispatcher(sqlite_store, handler, policy=policy, network=True),
            settled(sqlite_store, job_id),
        )
        assert receiver.requests == [("POST", "/hook", f"hooks.example:{receiver.port}")]
        assert forbidden.connections == 0
    [(delivery, _)] = WebhookOutbox(sqlite_store.engine).deliveries_of(job_id)
    assert delivery.status is DeliveryStatus.DELIVERED


def test_a_receiver_name_that_rebinds_to_a_forbidden_address_is_not_reached(
    sqlite_store: JobStore,
) -> None:
    handler, _ = answers(200)
    with peer_pair() as (receiver, forbidden):
        receiver.answers["/hook"] = Answer(500)  # retried, by then under another answer
        job_id = finished_job(sqlite_store, url=receiver.url("/hook", host="hooks.example"))
        policy = _resolving("hooks.example", ["127.0.0.2"], ["127.0.0.1"])
        run_until(
            dispatcher(sqlite_store, handler, delays_s=(0,), policy=policy, network=True),
            settled(sqlite_store, job_id),
        )
        assert len(receiver.requests) == 1
        assert forbidden.connections == 0
    [(_, attempts)] = WebhookOutbox(sqlite_store.engine).deliveries_of(job_id)
    assert [a.status_code for a in attempts] == [500, None]
    assert "non-public address (127.0.0.1)" in (attempts[1].error or "")


def test_a_receiver_redirecting_to_a_forbidden_address_is_not_followed(
    sqlite_store: JobStore,
) -> None:
    handler, _ = answers(200)
    with peer_pair() as (receiver, forbidden):
        receiver.answers["/hook"] = Answer(307, headers={"location": forbidden.url("/hook")})
        job_id = finished_job(sqlite_store, url=receiver.url("/hook"))
        run_until(
            dispatcher(
                sqlite_store,
                handler,
                delays_s=(),
                policy=OutboundPolicy(["127.0.0.2/32"]),
                network=True,
            ),
            settled(sqlite_store, job_id),
        )
        assert forbidden.connections == 0
    [(delivery, [attempt])] = WebhookOutbox(sqlite_store.engine).deliveries_of(job_id)
    assert delivery.status is DeliveryStatus.FAILED
    assert attempt.status_code == 307 and "redirect" in (attempt.error or "")


def test_a_cancel_that_comes_as_the_dispatcher_is_woken_stops_it(store: JobStore) -> None:
    """Shutdown cancels the dispatcher; a send that ends in the same moment sets its wake-up.
    Python 3.11's `asyncio.wait_for` dropped such a cancel and the dispatcher polled on for
    ever (it hung a test run); each of these cancels must stop it."""

    async def handler(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(204)

    async def main() -> list[bool]:
        stopped = []
        for _ in range(20):
            hub = dispatcher(store, handler)
            task = asyncio.create_task(hub.run())
            async with asyncio.timeout(10):  # until it waits idle (a waiter on its wake-up)
                while not hub._wake._waiters:  # type: ignore[attr-defined]
                    await asyncio.sleep(0.001)
            hub._wake.set()  # what a finished send does, in the same step as the cancel
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=2)
            stopped.append(bool(done))
            if not done:  # old code: stop it for good, so the test ends
                task.cancel()
                await asyncio.wait({task}, timeout=2)
        return stopped

    assert all(asyncio.run(main()))
