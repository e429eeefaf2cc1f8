"""Clients that hold connections: a real server answers 408 to one that sends no headers or
trickles them, 431 to one whose headers are too large, 408 to one whose body stalls or
trickles past its deadline, and keeps serving everyone else, with no traceback in its log."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import LiveServer
from tests.fixtures.slow_http import TricklingServer

pytestmark = pytest.mark.slow

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
BODY_DEADLINE_S = 3.0
TRICKLE_S = 0.25  # well inside BODY_TIMEOUT_S: only the body's deadline can cut it off
WAIT_S = 15.0  # far above every limit: a server that never times out fails the test


IMAGE_FETCH_S = 2.5  # how long the pipelining test's first answer takes: over BODY_TIMEOUT_S


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[..., LiveServer]) -> LiveServer:
    return module_server_factory(
        http_header_timeout_s=HEADER_TIMEOUT_S,
        http_body_timeout_s=BODY_TIMEOUT_S,
        http_body_deadline_s=BODY_DEADLINE_S,
        http_max_header_bytes=16384,
        # For the pipelining test's slow first answer: an image from a trickling loopback
        # host, refused at this deadline.
        allow_private_urls="true",
        image_fetch_timeout_s=str(IMAGE_FETCH_S),
    )


@pytest.fixture
def trickling() -> Iterator[TricklingServer]:
    host = TricklingServer(interval_s=0.5).start()
    yield host
    host.close()


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(WAIT_S)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_client_that_sends_nothing_gets_408(server: LiveServer) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert time.monotonic() - started < WAIT_S


def test_a_client_that_trickles_its_headers_gets_408(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answer = b""
        for _ in range(int(WAIT_S / 0.25)):  # a header line every 0.25 s, never the end
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:  # closed by the server
                break
            sock.settimeout(0.25)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            break
    assert answer.startswith(b"HTTP/1.1 408"), answer


def test_headers_over_the_limit_get_431(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
        )
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_a_stalled_body_is_cut_off_and_the_server_keeps_serving(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /v2/video/generations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        answer = read_all(sock)  # returns once the server closes the connection
    assert time.monotonic() - started < WAIT_S
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert httpx.get(server.base_url + "/v2/video/generations", timeout=10).status_code == 200
    assert "Traceback" not in server.log()


def test_a_trickled_body_is_cut_off_at_its_deadline(server: LiveServer) -> None:
    """A byte every TRICKLE_S never stalls, yet the body as a whole is 408 at its deadline."""
    with connect(server) as sock:
        sock.sendall(
            b"POST /v2/video/generations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n"
        )
        started = time.monotonic()
        answer, sent = b"", 0
        sock.settimeout(TRICKLE_S)
        while not answer and time.monotonic() - started < WAIT_S:
            try:
                sock.sendall(b" ")
                sent += 1
            except OSError:  # closed by the server before its answer was read
                break
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
        took_s = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), (answer, sent, took_s)
    assert BODY_DEADLINE_S <= took_s + 0.1 < WAIT_S  # 0.1: our clock started a little late
    wait_for(lambda: "to send its request body" in server.log(), 10, "the deadline's log line")
    assert httpx.get(server.base_url + "/v2/video/generations", timeout=10).status_code == 200
    assert "Traceback" not in server.log()


def test_a_pipelined_request_is_not_timed_while_an_earlier_answer_is_sent(
    server: LiveServer, trickling: TricklingServer
) -> None:
    """Two requests on one connection: a create that takes IMAGE_FETCH_S to answer (its image
    trickles), then one whose body never comes. uvicorn reads nothing more until the first
    answer is out, so the second's body clock starts only then: the first answer arrives
    whole, first, and the 408 after it, never inside it."""
    first = (
        b'{"model": "klingai/v2-master-image-to-video", "prompt": "move", "image_url": "'
        + trickling.url.encode()
        + b'"}'
    )
    with connect(server) as sock:
        sock.sendall(
            b"POST /v2/video/generations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(first)).encode()
            + b"\r\n\r\n"
            + first
            + b"POST /v2/video/generations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        answer = read_all(sock)
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:300]  # the image that did not come
    length = int(
        next(
            line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        ).split(b":")[1]
    )
    assert b"image_url" in rest[:length]
    assert rest[length:].startswith(b"HTTP/1.1 408"), answer  # then, on its own, the 408
