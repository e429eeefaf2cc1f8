"""What the API's routes need, built once per server process and passed to the routers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reelforge.api.auth import Authenticator
from reelforge.api.dbgate import DatabaseGate
from reelforge.api.files import FileSigner
from reelforge.api.images import ImageIntake
from reelforge.engines import Registry
from reelforge.jobs import JobStore
from reelforge.settings import Settings
from reelforge.storage import Storage

__all__ = ["ApiContext"]


def _no_problems() -> list[str]:
    return []


@dataclass
class ApiContext:
    settings: Settings
    store: JobStore
    storage: Storage
    registry: Registry
    auth: Authenticator
    signer: FileSigner
    images: ImageIntake
    db: DatabaseGate
    worker_problems: Callable[[], list[str]] = _no_problems
    """Why this server's own worker processes gave up (a model that cannot load)."""

    def base_url(self, request_base_url: str) -> str:
        """Where clients reach this server: the configured public URL, else the request's."""
        return (self.settings.public_base_url or request_base_url).rstrip("/")

    def close(self) -> None:
        self.images.close()
        self.db.close()
