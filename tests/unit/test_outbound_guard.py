"""The outbound-address guard: which networks a client-named URL may reach, and which URL
forms are refused before any connection. No network: addresses are checked as given."""

from __future__ import annotations

import asyncio

import pytest

from reelforge.net import OutboundPolicy, OutboundRefused
from reelforge.net.transport import _attempt_timeout


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "2001:4860:4860::8888", "1.1.1.1", "64:ff9b::808:808"]
)
def test_public_addresses_are_reachable_by_default(address: str) -> None:
    OutboundPolicy().check_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1, which Python counts as global
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 of the metadata address
        "10.0.0.8",
        "192.168.1.1",
        "172.16.5.5",
        "100.64.0.1",
        "169.254.169.254",
        "169.254.1.1",
        "fe80::1",
        "fd00::1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
    ],
)
def test_internal_addresses_are_refused_by_default(address: str) -> None:
    with pytest.raises(OutboundRefused):
        OutboundPolicy(setting="REELFORGE_ALLOW_PRIVATE_URLS").check_address(address)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "10.1.2.3", "192.168.0.9", "fd12::1"])
def test_loopback_and_private_open_when_named(address: str) -> None:
    OutboundPolicy(["loopback", "private"]).check_address(address)


@pytest.mark.parametrize(
    "address", ["169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.1.1", "fe80::1"]
)
def test_private_does_not_open_link_local_or_metadata(address: str) -> None:
    with pytest.raises(OutboundRefused):
        OutboundPolicy(["loopback", "private"]).check_address(address)


def test_only_a_cidr_that_names_it_opens_the_metadata_address() -> None:
    OutboundPolicy(["169.254.169.254/32"]).check_address("169.254.169.254")
    with pytest.raises(OutboundRefused, match="metadata"):
        OutboundPolicy(["private"]).check_address("169.254.169.254")


def test_loopback_alone_keeps_private_networks_closed() -> None:
    policy = OutboundPolicy(["loopback"])
    policy.check_address("127.0.0.5")
    with pytest.raises(OutboundRefused):
        policy.check_address("10.0.0.1")


def test_refusal_names_the_setting_that_opens_networks() -> None:
    policy = OutboundPolicy(setting="REELFORGE_ALLOW_PRIVATE_URLS")
    with pytest.raises(OutboundRefused, match="REELFORGE_ALLOW_PRIVATE_URLS"):
        policy.check_address("127.0.0.1")


def test_unknown_network_name_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="neither a network name"):
        OutboundPolicy(["intranet"])


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "http://a:abc/x.png",
        "http://example.com:99999/x.png",
        "http://example.com:0/x.png",
        "http://xn--a/x.png",
        "http://exa\x00mple.com/x.png",
        "http://exa mple.com/x.png",
        "http:///x.png",
        "http://-leading.example/x.png",
        "ftp://example.com/x.png",
        "http://\u2603.net/",
    ],
)
def test_malformed_urls_are_refused_without_raising_anything_else(url: str) -> None:
    with pytest.raises(OutboundRefused):
        OutboundPolicy().parse(url)


def test_international_names_are_encoded_for_the_connection() -> None:
    target = OutboundPolicy().parse("https://bücher.example/cover.png")
    assert (target.host, target.port) == ("xn--bcher-kva.example", 443)


def test_resolution_checks_every_address() -> None:
    policy = OutboundPolicy()
    target = policy.parse("http://localhost:8080/x.png")
    with pytest.raises(OutboundRefused, match="non-public"):
        asyncio.run(policy.resolve(target))
    assert asyncio.run(OutboundPolicy(["loopback"]).resolve(target))


@pytest.mark.parametrize(
    ("timeout", "left", "share"),
    [(10.0, 1, 10.0), (10.0, 2, 5.0), (3.0, 3, 2.0), (1.0, 4, 1.0), (None, 3, None)],
)
def test_each_address_gets_a_share_of_the_connect_timeout(
    timeout: float | None, left: int, share: float | None
) -> None:
    """Addresses are tried in turn: a silent first one leaves time for the next."""
    assert _attempt_timeout(timeout, left) == share
