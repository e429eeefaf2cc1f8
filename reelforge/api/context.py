"""What the API's routes need, built once per server process and passed to the routers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

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

    def base_url(self, request_base_url: str) -> str:
        """Where clients reach this server: the configured public URL, else the request's."""
        return (self.settings.public_base_url or request_base_url).rstrip("/")

    def close(self) -> None:
        self.images.close()
        self.db.close()
