"""Bearer-key authentication; with no keys configured, only loopback clients are served."""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reelforge.errors import Forbidden, Unauthorized
from reelforge.tenancy.keys import ALL_SCOPES, SECRET_PREFIX, KeyLimits, Scope
from reelforge.tenancy.ring import KeyRing

__all__ = ["LOCAL_TENANT", "Authenticator", "Principal", "is_loopback"]

LOCAL_TENANT = "local"

# Declares the bearer scheme in the OpenAPI document; the check itself is ours (below), so
# its errors come in the dialect's error body.
_bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API key (`reelforge keys create`, or one of REELFORGE_API_KEYS); not "
    "needed by loopback clients of a server without keys.",
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant whose jobs they see, and what they may do."""

    tenant: str
    scopes: frozenset[Scope]
    key_id: str | None = None  # a managed key's id; None for a bootstrap key or loopback
    limits: KeyLimits | None = None

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        return self.key_id or ("bootstrap" if self.tenant != LOCAL_TENANT else "loopback")


class Authenticator:
    """Checks `Authorization: Bearer <key>` and names the caller's tenant and scopes.

    Keys: managed keys (`tenancy.keys`, through a `KeyRing`), with the scopes each was given;
    and the bootstrap keys of REELFORGE_API_KEYS, which have every scope. With neither, the
    server is keyless and serves loopback clients only, with every scope.

    Routes depend on `reader`, `generator` or `admin` (a missing scope is a 403); each
    returns the tenant and leaves the `Principal` in `request.state.principal`.
    """

    def __init__(
        self,
        api_keys: list[str],
        *,
        keyless: bool | None = None,
        ring: KeyRing | None = None,
        rate_limit: Callable[[Principal], Awaitable[None]] | None = None,
    ) -> None:
        """`keyless`: whether the server has no credentials of any kind other than managed
        keys (default: no API keys); a server with only other credentials (Kling's) refuses
        every bearer here."""
        self._keys = [key.encode() for key in api_keys]
        self._keyless = not self._keys if keyless is None else keyless
        self.ring = ring
        # Counts the request against its key's rate limit (raises TooManyRequests).
        self.rate_limit = rate_limit
        self.reader = _ScopeCheck(self, Scope.READ)
        self.generator = _ScopeCheck(self, Scope.GENERATE)
        self.admin = _ScopeCheck(self, Scope.ADMIN)

    @property
    def open_to_loopback_only(self) -> bool:
        return self._keyless and not (self.ring is not None and self.ring.has_keys)

    async def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
    ) -> str:
        """FastAPI dependency for routes open to any valid caller: the tenant id."""
        principal = self.principal(request)
        if self.rate_limit is not None and principal.limits is not None:
            await self.rate_limit(principal)
        return principal.tenant

    def principal(self, request: Request) -> Principal:
        """The caller, or raise 401/403. No I/O (managed keys are read from the ring's
        copy), so dependencies run it on the event loop instead of a thread hop."""
        if self.open_to_loopback_only:
            host = request.client.host if request.client else ""
            if not is_loopback(host):
                raise Forbidden(
                    "this server has no API keys configured and serves loopback clients only; "
                    "set REELFORGE_API_KEYS or create a key with `reelforge keys create`"
                )
            principal = Principal(LOCAL_TENANT, ALL_SCOPES)
        else:
            principal = self._from_header(request.headers.get("authorization", ""))
        request.state.principal = principal
        request.state.tenant = principal.tenant  # for the access log
        return principal

    def _from_header(self, header: str) -> Principal:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
        secret = token.strip()
        if self.ring is not None and secret.startswith(SECRET_PREFIX):
            key = self.ring.lookup(secret)
            if key is not None:
                return Principal(key.tenant, key.scopes, key.id, key.limits)
        presented = secret.encode()
        # Compare against every key in constant time, so timing does not reveal a prefix.
        if any(hmac.compare_digest(presented, key) for key in self._keys):
            return Principal(hashlib.sha256(presented).hexdigest()[:16], ALL_SCOPES)
        raise Unauthorized("invalid API key")


class _ScopeCheck:
    """A FastAPI dependency: the caller's tenant, if its key has `scope` (else 403)."""

    def __init__(self, auth: Authenticator, scope: Scope) -> None:
        self.auth = auth
        self.scope = scope

    async def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
    ) -> str:
        return await self.authorize(request)

    async def authorize(self, request: Request) -> str:
        """The check itself, for a plain route that has no FastAPI dependencies
        (`api.aimlapi.poll`)."""
        principal = self.auth.principal(request)
        if self.scope not in principal.scopes:
            raise Forbidden(f"this API key lacks the '{self.scope}' scope")
        if self.auth.rate_limit is not None and principal.limits is not None:
            await self.auth.rate_limit(principal)
        return principal.tenant


@functools.lru_cache(maxsize=1024)  # a few clients' addresses, asked on every request
def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
