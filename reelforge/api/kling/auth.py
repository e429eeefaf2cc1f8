"""Kling's authentication: `Authorization: Bearer <JWT>`, the JWT signed (HS256) with the
secret key of the access key it names in `iss`, valid between `nbf` and `exp`.

What Kling's documentation has every client do (PyJWT):

    payload = {"iss": ACCESS_KEY, "exp": int(time.time()) + 1800, "nbf": int(time.time()) - 5}
    token = jwt.encode(payload, SECRET_KEY, headers={"alg": "HS256", "typ": "JWT"})

Each access key is its own tenant. A server with no credentials at all (neither Kling keys
nor API keys) serves loopback clients without a token, as `api.auth.Authenticator` does.
Each refusal carries the reason's Kling code (`KLING_AUTH_CODES`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from reelforge.api.auth import LOCAL_TENANT, Authenticator, is_loopback
from reelforge.errors import Forbidden, Unauthorized
from reelforge.tenancy.keys import SECRET_PREFIX, Scope

__all__ = ["CLOCK_SKEW_S", "KLING_AUTH_CODES", "KlingAuthError", "KlingAuthenticator"]

CLOCK_SKEW_S = 10
"""Leeway on `exp` and `nbf`, for a client whose clock is a little off."""

KLING_AUTH_CODES = {
    "authentication_failed": 1000,
    "authorization_empty": 1001,
    "authorization_invalid": 1002,
    "token_not_yet_valid": 1003,
    "token_expired": 1004,
}
"""Why a token was refused -> Kling's error code (all answered 401)."""

# Declares the scheme in the OpenAPI document; the check is ours, so errors come in
# Kling's envelope.
_kling_scheme = HTTPBearer(
    scheme_name="KlingJWT",
    bearerFormat="JWT",
    auto_error=False,
    description="A JWT signed HS256 with the secret key of an access key in "
    "REELFORGE_KLING_KEYS: `iss` the access key, `exp` and `nbf` epoch seconds; or a "
    "managed API key (`rf_...`, `reelforge keys create`) as it is. Not needed by loopback "
    "clients of a server without keys.",
)


class KlingAuthError(Unauthorized):
    """A 401 with its Kling reason (`code`, a key of `KLING_AUTH_CODES`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, field="Authorization")
        self.code = code


class KlingAuthenticator:
    """FastAPI dependency for Kling's routes: checks the JWT and names the caller's tenant."""

    def __init__(
        self,
        keys: Mapping[str, str],
        *,
        keyless: Callable[[], bool],
        managed: Authenticator | None = None,
        scope: Scope = Scope.READ,
    ) -> None:
        """`keys`: access key -> secret key; `keyless`: whether the server has no credentials
        of any kind now (loopback clients need none), asked at every request: the first
        managed key, made while the server runs, ends the keyless mode at once; `managed`:
        the server's own authenticator, so a managed key (`Bearer rf_...`) works here too,
        with its scopes and limits; `scope`: what such a key needs for these routes
        (`generator` is the one for creates)."""
        self._secrets = {access: secret.encode() for access, secret in keys.items()}
        self.keyless = keyless
        self.managed = managed
        self.scope = scope
        if scope is Scope.READ:
            self.generator = KlingAuthenticator(
                keys, keyless=keyless, managed=managed, scope=Scope.GENERATE
            )

    async def __call__(
        self,
        request: Request,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_kling_scheme)],
    ) -> str:
        """Return the tenant id, or raise 401 (`KlingAuthError`) / 403. Async: no I/O but a
        managed key's rate-limit count."""
        _scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        if self.managed is not None and token.strip().startswith(SECRET_PREFIX):
            principal = self.managed.principal(request)
            if self.scope not in principal.scopes:
                raise Forbidden(f"this API key lacks the '{self.scope}' scope")
            if self.managed.rate_limit is not None and principal.limits is not None:
                await self.managed.rate_limit(principal)
            return principal.tenant
        if self.keyless():
            host = request.client.host if request.client else ""
            if not is_loopback(host):
                raise Forbidden(
                    "this server has no keys configured and serves loopback clients only; "
                    "set REELFORGE_KLING_KEYS to accept remote requests"
                )
            tenant = LOCAL_TENANT
        else:
            tenant = self.tenant_of(request.headers.get("authorization", ""))
        request.state.tenant = tenant  # for the access log
        return tenant

    def tenant_of(self, authorization: str) -> str:
        """The tenant of an `Authorization` header value, or `KlingAuthError`."""
        scheme, _, token = authorization.strip().partition(" ")
        if not authorization.strip():
            raise KlingAuthError(
                "authorization_empty",
                "Authorization is empty: send 'Authorization: Bearer <JWT>'",
            )
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise KlingAuthError(
                "authorization_invalid", "Authorization must be 'Bearer <JWT>' (one space)"
            )
        access = self._issuer(token)
        secret = self._secrets.get(access)
        if secret is None:
            # Access keys are not secret (every token carries one in clear); secret keys are
            # only ever compared inside the HMAC check.
            raise KlingAuthError("authentication_failed", "unknown access key (iss)")
        self._verify(token, secret)
        return "kling-" + hashlib.sha256(access.encode()).hexdigest()[:16]

    def _issuer(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise KlingAuthError(
                "authorization_invalid", "the token is not a JWT (header.payload.signature)"
            ) from None
        if header.get("alg") != "HS256":
            raise KlingAuthError("authorization_invalid", "the token must be signed with HS256")
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise KlingAuthError("authorization_invalid", "the token has no iss (access key)")
        return issuer

    def _verify(self, token: str, secret: bytes) -> None:
        try:
            jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                leeway=CLOCK_SKEW_S,
                options={"require": ["exp", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise KlingAuthError("token_expired", "the token has expired (exp)") from None
        except jwt.ImmatureSignatureError:
            raise KlingAuthError(
                "token_not_yet_valid", "the token is not valid yet (nbf)"
            ) from None
        except jwt.InvalidSignatureError:
            raise KlingAuthError(
                "authentication_failed", "the token's signature does not match the access key"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise KlingAuthError(
                "authorization_invalid", f"the token has no {exc.claim} claim"
            ) from None
        except jwt.PyJWTError as exc:
            raise KlingAuthError("authorization_invalid", f"invalid token: {exc}") from None
