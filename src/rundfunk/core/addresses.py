"""Which IP addresses a URL chosen by a workspace may reach: the pure rule.

A URL a tenant chooses and this server then fetches or posts to (media fetched
server-side, outgoing webhooks) must not reach the server's own neighbourhood:
loopback (a database on 127.0.0.1:5432), link-local (the cloud metadata service at
169.254.169.254), private networks, multicast, and reserved ranges. The operator may
allow some of them (``RUNDFUNK_ALLOWED_PRIVATE_NETWORKS``, CIDRs). The DNS lookups and
the connection hook that apply this rule live in ``services/outbound_guard.py``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(value: str | Iterable[str]) -> tuple[Network, ...]:
    """CIDRs from a comma-separated setting (or a list); ``ValueError`` names a bad one."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    networks: list[Network] = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ValueError(f"{part!r} is not a network in CIDR form (10.0.0.0/8)") from exc
    return tuple(networks)


def forbidden_reason(address: str | Address, allowed: Iterable[Network] = ()) -> str | None:
    """Why ``address`` may not be reached (``"loopback"``, ``"private"``, …), or None."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 and 64:ff9b::/96-style wrappers reach the IPv4 address inside.
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is not None:
            ip = inner
    if any(ip.version == net.version and ip in net for net in allowed):
        return None
    for reason, hit in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("not globally routable", not ip.is_global),
    ):
        if hit:
            return reason
    return None
