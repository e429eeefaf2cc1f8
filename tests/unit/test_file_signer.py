"""Signed file links (`api.files.FileSigner`): expiries rounded up to a whole minute, so the
polls of one minute get the same links (each signed once), never shorter than the TTL and
at most a minute longer; a link checks out until it expires, and is refused after."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from reelforge.api.files import FileSigner
from reelforge.errors import Forbidden

DAY_S = 24 * 3600


def expiry_and_signature(url: str) -> tuple[int, str]:
    query = parse_qs(urlsplit(url).query)
    return int(query["expires"][0]), query["signature"][0]


def test_links_of_one_minute_are_the_same_and_live_at_least_their_ttl() -> None:
    signer = FileSigner(b"secret", ttl_s=DAY_S)
    start = (time.time() // 60 + 2) * 60  # a whole minute, ahead of the clock
    urls = [signer.url("http://h", "jobs/a/video.mp4", now=start + 1 + t) for t in range(59)]
    assert len(set(urls)) == 1
    expires, signature = expiry_and_signature(urls[0])
    assert expires == start + DAY_S + 60 and expires % 60 == 0
    for now in (start + 0.5, start + 59.9, start + 60.0):
        expires, _ = expiry_and_signature(signer.url("http://h", "k", now=now))
        assert now + DAY_S <= expires < now + DAY_S + 60
    assert signer.url("http://h", "jobs/b/video.mp4", now=start + 1) != urls[0]
    signer.check("jobs/a/video.mp4", expiry_and_signature(urls[0])[0], signature)
    with pytest.raises(Forbidden, match="invalid"):
        signer.check("jobs/b/video.mp4", expiry_and_signature(urls[0])[0], signature)


def test_a_short_ttl_is_not_rounded_and_an_expired_link_is_refused() -> None:
    signer = FileSigner(b"secret", ttl_s=30)
    expires, signature = expiry_and_signature(signer.url("http://h", "k", now=1000.4))
    assert expires == 1031  # whole seconds, rounded up
    with pytest.raises(Forbidden, match="expired"):
        signer.check("k", expires, signature)  # the clock is far past 1030
