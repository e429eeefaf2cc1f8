"""Network faults for tests: a TCP proxy on loopback that can refuse or black-hole a server.

    with FaultProxy(5432) as proxy:
        engine = open_engine(proxy.url_for(POSTGRES_URL))
        proxy.refuse()      # open connections close; new ones get ECONNREFUSED
        proxy.heal()        # listening again on the same port
        proxy.blackhole()   # connections stay open, nothing is relayed, new ones hang
        proxy.heal()        # relaying resumes, with whatever was sent meanwhile

A black-hole here is the server side going silent (a frozen server, a stuck middlebox): the
proxy's kernel still acknowledges bytes, so TCP keepalives and `tcp_user_timeout` cannot
notice it; only a client-side deadline does. One thread runs the proxy (non-blocking
sockets and `poll`); mode changes are handed to it and return once applied, so after
`refuse()` returns a new connect is refused.
"""

from __future__ import annotations

import contextlib
import ipaddress
import queue
import select
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from sqlalchemy.engine import make_url

__all__ = ["FaultProxy"]

_BUFFER_LIMIT = 1 << 20  # per direction; reading stops while the other side lags
_COMMAND_TIMEOUT_S = 5.0
_POLL_MS = 200  # the loop also wakes on commands; this only bounds a missed wake-up


@dataclass(eq=False)
class _Pair:
    """One proxied connection: the client's socket and ours to the upstream server."""

    client: socket.socket
    upstream: socket.socket | None = None
    to_upstream: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            if sock is not None:
                sock.close()


class FaultProxy:
    """Relays 127.0.0.1:`port` to a loopback `upstream_port`, until told to fail."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        if not ipaddress.ip_address(upstream_host).is_loopback:
            raise ValueError(f"FaultProxy only proxies loopback servers, not {upstream_host}")
        self._upstream = (upstream_host, upstream_port)
        self._listener: socket.socket | None = _listen(0)
        self.port: int = self._listener.getsockname()[1]
        self.mode = "pass"
        self._pairs: list[_Pair] = []
        self._commands: queue.SimpleQueue[tuple[Callable[[], None], _Done]] = queue.SimpleQueue()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._stopping = False
        self._crash: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"fault-proxy-{self.port}", daemon=True
        )
        self._thread.start()

    def url_for(self, database_url: str) -> str:
        """`database_url` with its host and port pointed at this proxy."""
        url = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    def refuse(self) -> None:
        """Close every proxied connection and stop listening: connects get ECONNREFUSED."""
        self._call(self._refuse)

    def blackhole(self) -> None:
        """Relay nothing either way; keep accepting connections but never serve them."""
        self._call(lambda: setattr(self, "mode", "blackhole"))

    def heal(self) -> None:
        """Back to relaying: listen again on the same port, deliver what was held back."""
        self._call(self._heal)

    def close(self) -> None:
        """Stop the proxy and close every socket; the thread ends."""
        if self._thread.is_alive():
            self._call(self._stop)
            self._thread.join(_COMMAND_TIMEOUT_S)
        self._wake_write.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # Everything below runs on the proxy's thread, except `_call`.

    def _call(self, command: Callable[[], None]) -> None:
        if self._crash is not None:
            raise RuntimeError(f"the fault proxy on port {self.port} crashed") from self._crash
        done = _Done()
        self._commands.put((command, done))
        # The loop, woken by its poll tick, may run a stop before this wake-up reaches it
        # and close its end: `done` tells whether the command ran.
        with contextlib.suppress(OSError):
            self._wake_write.send(b"!")
        if not done.event.wait(_COMMAND_TIMEOUT_S):
            raise RuntimeError(
                f"the fault proxy on port {self.port} stopped answering"
            ) from self._crash
        if done.error is not None:
            raise done.error

    def _refuse(self) -> None:
        self.mode = "refuse"
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for pair in self._pairs:
            pair.close()
        self._pairs.clear()

    def _heal(self) -> None:
        if self._listener is None:
            # SO_REUSEADDR: the connections `refuse` closed linger in TIME_WAIT on this port.
            self._listener = _listen(self.port)
        self.mode = "pass"
        for pair in list(self._pairs):
            if pair.upstream is None:
                self._connect_upstream(pair)

    def _stop(self) -> None:
        self._stopping = True
        self._refuse()

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._step()
        except BaseException as exc:
            self._crash = exc  # told to whoever calls next, not lost in a thread
            raise
        finally:
            self._refuse()
            self._wake_read.close()

    def _step(self) -> None:
        poller = select.poll()
        targets: dict[int, tuple[_Pair, bool] | None] = {self._wake_read.fileno(): None}
        poller.register(self._wake_read, select.POLLIN)
        if self._listener is not None:
            poller.register(self._listener, select.POLLIN)
        if self.mode == "pass":
            for pair in self._pairs:
                self._register(poller, targets, pair)
        for fd, events in poller.poll(_POLL_MS):
            if self._listener is not None and fd == self._listener.fileno():
                self._accept()
            elif fd in targets and targets[fd] is not None:
                pair, from_client = targets[fd]  # type: ignore[misc]
                if pair in self._pairs:
                    self._serve(pair, from_client, events)
        self._run_commands()

    def _register(
        self, poller: select.poll, targets: dict[int, tuple[_Pair, bool] | None], pair: _Pair
    ) -> None:
        assert pair.upstream is not None
        for sock, inbox, outbox, from_client in (
            (pair.client, pair.to_upstream, pair.to_client, True),
            (pair.upstream, pair.to_client, pair.to_upstream, False),
        ):
            mask = select.POLLIN if len(inbox) < _BUFFER_LIMIT else 0
            if outbox:
                mask |= select.POLLOUT
            poller.register(sock, mask)
            targets[sock.fileno()] = (pair, from_client)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        client.setblocking(False)
        pair = _Pair(client)
        self._pairs.append(pair)
        if self.mode == "pass":
            self._connect_upstream(pair)

    def _connect_upstream(self, pair: _Pair) -> None:
        try:
            upstream = socket.create_connection(self._upstream, timeout=2)
        except OSError:
            self._drop(pair)
            return
        upstream.setblocking(False)
        pair.upstream = upstream

    def _serve(self, pair: _Pair, from_client: bool, events: int) -> None:
        sock = pair.client if from_client else pair.upstream
        assert sock is not None
        inbox = pair.to_upstream if from_client else pair.to_client
        outbox = pair.to_client if from_client else pair.to_upstream
        try:
            if events & select.POLLOUT and outbox:
                del outbox[: sock.send(outbox)]
            if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                data = sock.recv(65536)
                if not data:
                    self._drop(pair)
                    return
                inbox.extend(data)
        except BlockingIOError:
            pass
        except OSError:
            self._drop(pair)

    def _drop(self, pair: _Pair) -> None:
        # One side ended: hand the other what it was already sent (an error message, say).
        for sock, pending in ((pair.client, pair.to_client), (pair.upstream, pair.to_upstream)):
            if sock is not None and pending:
                with contextlib.suppress(OSError):
                    sock.send(pending)
        pair.close()
        self._pairs.remove(pair)

    def _run_commands(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                command, done = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                command()
            except Exception as exc:  # reported to the caller of refuse()/heal()
                done.error = exc
            done.event.set()


@dataclass
class _Done:
    event: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


def _listen(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    listener.setblocking(False)
    return listener
