"""Kling's JWT check: each way a token can be wrong gets its own Kling code, and only a token
signed with the access key's secret inside its validity window names a tenant."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from reelforge.api.kling.auth import CLOCK_SKEW_S, KLING_AUTH_CODES, KlingAuthenticator
from reelforge.api.kling.auth import KlingAuthError as AuthError
from reelforge.settings import Settings

ACCESS, SECRET = "AK-test", "s" * 40
OTHER_ACCESS, OTHER_SECRET = "AK-other", "o" * 40


@pytest.fixture
def auth() -> KlingAuthenticator:
    return KlingAuthenticator({ACCESS: SECRET, OTHER_ACCESS: OTHER_SECRET}, keyless=lambda: False)


def token(secret: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    """A token as Kling's documented example makes it, with `claims` changed (None drops)."""
    now = int(time.time())
    payload: dict[str, Any] = {"iss": ACCESS, "exp": now + 1800, "nbf": now - 5}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, secret, algorithm=algorithm, headers={"typ": "JWT"})


def refusal(auth: KlingAuthenticator, header: str) -> tuple[int, str]:
    with pytest.raises(AuthError) as caught:
        auth.tenant_of(header)
    assert caught.value.status_code == 401
    return KLING_AUTH_CODES[caught.value.code], caught.value.message


def test_a_documented_token_names_the_access_keys_tenant(auth: KlingAuthenticator) -> None:
    tenant = auth.tenant_of(f"Bearer {token()}")
    assert tenant == auth.tenant_of(f"Bearer {token(exp=int(time.time()) + 60)}")
    other = auth.tenant_of(f"Bearer {token(OTHER_SECRET, iss=OTHER_ACCESS)}")
    assert tenant != other


def test_an_expired_token_is_1004(auth: KlingAuthenticator) -> None:
    expired = token(exp=int(time.time()) - CLOCK_SKEW_S - 5)
    assert refusal(auth, f"Bearer {expired}") == (1004, "the token has expired (exp)")


def test_a_token_expired_within_the_clock_skew_still_passes(auth: KlingAuthenticator) -> None:
    auth.tenant_of(f"Bearer {token(exp=int(time.time()) - CLOCK_SKEW_S // 2)}")


def test_a_token_not_valid_yet_beyond_the_skew_is_1003(auth: KlingAuthenticator) -> None:
    early = token(nbf=int(time.time()) + CLOCK_SKEW_S + 30)
    assert refusal(auth, f"Bearer {early}")[0] == 1003
    auth.tenant_of(f"Bearer {token(nbf=int(time.time()) + CLOCK_SKEW_S // 2)}")


def test_a_wrong_secret_is_1000(auth: KlingAuthenticator) -> None:
    code, message = refusal(auth, f"Bearer {token('x' * 40)}")
    assert code == 1000
    assert "signature" in message


def test_another_access_keys_secret_is_1000(auth: KlingAuthenticator) -> None:
    assert refusal(auth, f"Bearer {token(OTHER_SECRET)}")[0] == 1000


def test_an_unknown_access_key_is_1000(auth: KlingAuthenticator) -> None:
    code, message = refusal(auth, f"Bearer {token(iss='AK-nobody')}")
    assert (code, message) == (1000, "unknown access key (iss)")


def test_no_authorization_is_1001(auth: KlingAuthenticator) -> None:
    assert refusal(auth, "")[0] == 1001


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        f"Token {token()}",
    ],
)
def test_a_malformed_authorization_is_1002(auth: KlingAuthenticator, header: str) -> None:
    assert refusal(auth, header)[0] == 1002


def test_a_token_without_exp_or_iss_is_1002(auth: KlingAuthenticator) -> None:
    code, message = refusal(auth, f"Bearer {token(exp=None)}")
    assert (code, message) == (1002, "the token has no exp claim")
    assert refusal(auth, f"Bearer {token(iss=None)}")[0] == 1002


def test_only_hs256_is_accepted(auth: KlingAuthenticator) -> None:
    assert refusal(auth, f"Bearer {token('h' * 64, algorithm='HS512')}")[0] == 1002
    unsigned = jwt.encode({"iss": ACCESS, "exp": int(time.time()) + 60}, None, algorithm="none")
    assert refusal(auth, f"Bearer {unsigned}")[0] == 1002


def test_kling_keys_are_access_secret_pairs() -> None:
    settings = Settings(kling_keys=f" {ACCESS}:{SECRET} ,{OTHER_ACCESS}:{OTHER_SECRET}:x")  # type: ignore[arg-type]
    assert settings.kling_key_pairs == {ACCESS: SECRET, OTHER_ACCESS: OTHER_SECRET + ":x"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("no-colon", "ACCESS:SECRET"),
        (":" + SECRET, "ACCESS:SECRET"),
        ("AK:", "ACCESS:SECRET"),
        ("AK:short", "at least 32 characters"),
    ],
)
def test_malformed_kling_keys_are_refused(value: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings(kling_keys=value)  # type: ignore[arg-type]
