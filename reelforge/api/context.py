"""What the API's routes need, built once per server process and passed to the routers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from reelforge.api.auth import Authenticator
from reelforge.api.dbgate import DatabaseGate
from reelforge.api.files import FileLinks, FileSigner
from reelforge.api.images import ImageIntake
from reelforge.engines import Registry
from reelforge.jobs import JobStore
from reelforge.service import Generations
from reelforge.service.streams import EventStreams
from reelforge.settings import Settings
from reelforge.storage import Storage
from reelforge.tenancy.keys import KeyStore

__all__ = ["ApiContext"]

_MAX_REQUEST_BASES = 256


@dataclass
class ApiContext:
    settings: Settings
    store: JobStore
    storage: Storage
    registry: Registry
    auth: Authenticator
    signer: FileSigner
    links: FileLinks
    """Renders every file link in a generation object (signed, or the store's presigned)."""
    images: ImageIntake
    db: DatabaseGate
    generations: Generations
    streams: EventStreams
    keys: KeyStore
    background: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)
    """Loops the API process runs beside the routes while it serves (the retention sweeper,
    the webhook dispatcher): started with the app, canceled at shutdown. Each must keep its
    blocking work off the event loop and survive its own errors."""

    _request_bases: dict[tuple[object, ...], str] = field(default_factory=dict, repr=False)

    def base_url(self, request_base_url: str) -> str:
        """Where clients reach this server: the configured public URL, else the request's."""
        return (self.settings.public_base_url or request_base_url).rstrip("/")

    def base_url_of(self, request: Request) -> str:
        """`base_url` for `request`. Starlette builds `request.base_url` anew for each request
        (a tenth of a poll); it depends only on the scheme, the Host header, the server and
        the root path, so it is kept per those (a few hundred at most: the Host is the
        client's to choose)."""
        if self.settings.public_base_url:
            return self.settings.public_base_url.rstrip("/")
        scope = request.scope
        host = request.headers.get("host")
        server = None if host else tuple(scope.get("server") or ())  # used without a Host
        key = (scope.get("scheme"), host, server, scope.get("root_path", ""))
        base = self._request_bases.get(key)
        if base is None:
            base = str(request.base_url).rstrip("/")
            if len(self._request_bases) < _MAX_REQUEST_BASES:
                self._request_bases[key] = base
        return base

    def close(self) -> None:
        self.images.close()
        self.db.close()
