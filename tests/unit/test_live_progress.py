"""Live progress without sockets: the ETA arithmetic, the SSE parser, and the client's
`stream` / `wait` over a fake server (reconnecting with Last-Event-ID, falling back to polls)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reelforge.client import AsyncReelforgeClient, NotFound, ReelforgeClient
from reelforge.client._sse import SSEParser, SSEvent
from reelforge.service.eta import queued_eta_s, running_eta_s

BASE_URL = "http://reelforge.test"


# --- ETA -----------------------------------------------------------------------------------


def test_queued_eta_counts_the_jobs_ahead_and_itself_shared_among_workers() -> None:
    assert queued_eta_s(0, 10.0, 1) == 10.0
    assert queued_eta_s(3, 10.0, 1) == 40.0
    assert queued_eta_s(3, 10.0, 2) == 20.0


def test_queued_eta_is_unknown_without_history_or_workers() -> None:
    assert queued_eta_s(2, None, 1) is None
    assert queued_eta_s(2, 10.0, 0) is None


def test_running_eta_follows_the_rate_so_far() -> None:
    assert running_eta_s(10.0, 0.25) == pytest.approx(30.0)
    assert running_eta_s(10.0, 0.5) == pytest.approx(10.0)
    assert running_eta_s(5.0, 1.0) == 0.0


def test_running_eta_is_unknown_while_progress_has_barely_started() -> None:
    assert running_eta_s(3.0, 0.0) is None
    assert running_eta_s(3.0, 0.01) is None
    assert running_eta_s(3.0, 0.02) is not None


# --- the SSE parser ----------------------------------------------------------------------


def parse(text: str) -> list[SSEvent]:
    parser = SSEParser()
    events = [parser.feed(line) for line in text.splitlines()]
    return [e for e in events if e is not None]


def test_parser_reads_named_events_with_ids() -> None:
    events = parse('id: 4\nevent: queued\ndata: {"a": 1}\n\n: ping\n\nid: 9\ndata: x\n\n')
    assert events == [
        SSEvent(event="queued", data='{"a": 1}', id="4"),
        SSEvent(event="message", data="x", id="9"),
    ]


def test_parser_joins_data_lines_and_keeps_the_last_id() -> None:
    events = parse("id: 3\ndata: one\ndata:two\n\ndata: three\n\n")
    assert [(e.data, e.id) for e in events] == [("one\ntwo", "3"), ("three", "3")]


def test_parser_skips_comments_unknown_fields_and_events_without_data() -> None:
    assert parse(": hello\nfoo: bar\nevent: nothing\n\nretry: 250\n\n") == []
    [event] = parse("retry: 250\ndata: d\n\n")
    assert event.retry_ms == 250


def test_parser_dispatches_nothing_before_the_blank_line() -> None:
    assert parse("data: half an event") == []


# --- the client over a fake server -------------------------------------------------------


def generation(status: str, progress: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": "gen_1", "status": status, "model": "m", "progress": progress, **extra}


def sse(seq: int, body: dict[str, Any]) -> str:
    return f"id: {seq}\nevent: {body['status']}\ndata: {json.dumps(body)}\n\n"


class DroppedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that sends `chunks`, then (optionally) breaks like a dropped connection."""

    def __init__(self, chunks: list[str], *, drop: bool) -> None:
        self.chunks = chunks
        self.drop = drop

    def __iter__(self) -> Iterator[bytes]:
        yield from (chunk.encode() for chunk in self.chunks)
        if self.drop:
            raise httpx.RemoteProtocolError("peer closed connection")

    async def __aiter__(self) -> Any:
        for chunk in self.chunks:
            yield chunk.encode()
        if self.drop:
            raise httpx.RemoteProtocolError("peer closed connection")


class StreamingServer:
    """The first connection sends two events and drops; a resume sends the rest."""

    def __init__(self) -> None:
        self.resumes: list[str | None] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v2/video/generations/gen_1/events"
        last = request.headers.get("last-event-id")
        self.resumes.append(last)
        headers = {"content-type": "text/event-stream"}
        if last is None:
            chunks = [sse(1, generation("queued", queue_position=1)), ": ping\n\n"]
            chunks.append(sse(2, generation("generating", 5)) + "retry: 10\n\n")
            return httpx.Response(200, headers=headers, stream=DroppedStream(chunks, drop=True))
        assert last == "2"
        chunks = [sse(3, generation("generating", 50)), sse(4, generation("completed", 100))]
        return httpx.Response(200, headers=headers, stream=DroppedStream(chunks, drop=False))


def test_stream_resumes_a_dropped_connection_with_last_event_id() -> None:
    server = StreamingServer()
    with ReelforgeClient(BASE_URL, transport=httpx.MockTransport(server.handle)) as client:
        seen = [(g.status, g.progress) for g in client.stream("gen_1")]
    assert seen == [("queued", 0), ("generating", 5), ("generating", 50), ("completed", 100)]
    assert server.resumes == [None, "2"]


def test_async_stream_resumes_a_dropped_connection_with_last_event_id() -> None:
    server = StreamingServer()

    async def follow() -> list[int]:
        transport = httpx.MockTransport(server.handle)
        async with AsyncReelforgeClient(BASE_URL, transport=transport) as client:
            return [g.progress async for g in client.stream("gen_1")]

    assert asyncio.run(follow()) == [0, 5, 50, 100]
    assert server.resumes == [None, "2"]


def test_wait_polls_a_server_without_an_events_route() -> None:
    states = [generation("generating", 40), generation("completed", 100)]
    paths: list[str] = []

    def hosted(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path.endswith("/events"):
            return httpx.Response(404, json={"message": "Cannot GET", "statusCode": 404})
        return httpx.Response(200, json=states.pop(0))

    updates: list[int] = []
    with ReelforgeClient(BASE_URL, transport=httpx.MockTransport(hosted)) as client:
        final = client.wait(
            "gen_1", poll_interval_s=0.01, on_update=lambda g: updates.append(g.progress)
        )
    assert final.succeeded and updates == [40, 100]
    assert paths == ["/v2/video/generations/gen_1/events"] + ["/v2/video/generations"] * 2


def test_a_deleted_event_ends_the_stream_as_not_found() -> None:
    body = (
        sse(1, generation("queued"))
        + 'id: 2\nevent: deleted\ndata: {"id": "gen_1", "deleted": true}\n\n'
    )

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=body)

    with ReelforgeClient(BASE_URL, transport=httpx.MockTransport(handle)) as client:
        stream = client.stream("gen_1")
        assert next(stream).status == "queued"
        with pytest.raises(NotFound):
            next(stream)
