"""Bearer-key authentication; with no keys configured, only loopback clients are served."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reelforge.errors import Forbidden, Unauthorized

__all__ = ["LOCAL_TENANT", "Authenticator", "is_loopback"]

LOCAL_TENANT = "local"

# Declares the bearer scheme in the OpenAPI document; the check itself is ours (below), so
# its errors come in the dialect's error body.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API key from REELFORGE_API_KEYS; not needed by loopback clients of a "
    "server without keys.",
)


class Authenticator:
    """Checks `Authorization: Bearer <key>` and names the caller's tenant."""

    def __init__(self, api_keys: list[str], *, keyless: bool | None = None) -> None:
        """`keyless`: whether the server has no credentials of any kind (default: no API
        keys); a server with only other credentials (Kling's) refuses every bearer here."""
        self._keys = [key.encode() for key in api_keys]
        self._keyless = not self._keys if keyless is None else keyless

    @property
    def open_to_loopback_only(self) -> bool:
        return self._keyless

    async def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
    ) -> str:
        """FastAPI dependency: return the tenant id, or raise 401/403. Async: it does no I/O,
        so it runs on the event loop instead of costing a thread hop per request."""
        if self.open_to_loopback_only:
            host = request.client.host if request.client else ""
            if not is_loopback(host):
                raise Forbidden(
                    "this server has no API keys configured and serves loopback clients only; "
                    "set REELFORGE_API_KEYS to accept remote requests"
                )
            return LOCAL_TENANT
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
        presented = token.strip().encode()
        # Compare against every key in constant time, so timing does not reveal a prefix.
        if not any(hmac.compare_digest(presented, key) for key in self._keys):
            raise Unauthorized("invalid API key")
        return hashlib.sha256(presented).hexdigest()[:16]


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
