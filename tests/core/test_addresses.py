"""The pure rule: which addresses a URL a workspace chooses may reach."""

from __future__ import annotations

import pytest

from rundfunk.core.addresses import forbidden_reason, parse_networks


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.178.1", "private"),
        ("fd00::5", "private"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "private"),  # reserved: Python counts 240/4 as private too
        ("100.64.0.1", "not globally routable"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: the IPv4 address inside counts
        ("::ffff:10.0.0.1", "private"),
    ],
)
def test_the_servers_neighbourhood_is_refused(address: str, reason: str) -> None:
    assert forbidden_reason(address) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(address) is None


def test_the_operator_may_allow_networks() -> None:
    allowed = parse_networks("10.0.0.0/8, 127.0.0.1/32,fd00::/8")
    assert forbidden_reason("10.20.30.40", allowed) is None
    assert forbidden_reason("127.0.0.1", allowed) is None
    assert forbidden_reason("::ffff:127.0.0.1", allowed) is None
    assert forbidden_reason("fd00::5", allowed) is None
    assert forbidden_reason("127.0.0.2", allowed) == "loopback"  # only the listed ones
    assert forbidden_reason("192.168.0.1", allowed) == "private"


def test_networks_are_parsed_and_bad_ones_named() -> None:
    assert parse_networks("") == ()
    assert [str(n) for n in parse_networks(["192.168.1.7/24"])] == ["192.168.1.0/24"]
    with pytest.raises(ValueError, match="'10.0.0.0/33' is not a network"):
        parse_networks("10.0.0.0/8, 10.0.0.0/33")
