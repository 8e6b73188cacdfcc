"""URLs a workspace chooses that this server itself fetches or posts to: the guard.

A tenant who may name a URL that the server then requests could aim it at the server's
neighbourhood: a database on 127.0.0.1:5432, the cloud metadata service at
169.254.169.254, an internal service on 10.x. So such a URL is checked twice:

- when it is saved (``check_url``): http(s) only, and every address its host resolves
  to must be allowed (``core.addresses.forbidden_reason``), so the admin hears at once
  why it is refused;
- when the server connects (``GuardedConnector``, for every request of a
  ``guarded_session``): the addresses are checked again right after the lookup the
  connection itself uses, so a name that resolved to a public address at save time
  and to 127.0.0.1 later (DNS rebinding) is refused, and so is a redirect to such an
  address or an IP literal.

The operator may allow some private networks (``RUNDFUNK_ALLOWED_PRIVATE_NETWORKS``,
CIDRs), e.g. for an internal webhook receiver. Platform APIs (the Graph API) are not
tenant URLs: their address is the operator's own setting and is not guarded here.
Today no tenant URL is fetched server-side (media URLs are fetched by the platform);
the outgoing webhooks of the integrations take their sessions from here.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from rundfunk.core.addresses import Network, forbidden_reason

ALLOW_SETTING = "RUNDFUNK_ALLOWED_PRIVATE_NETWORKS"


class AddressRefused(OSError):
    """The URL's host is (or resolves to) an address a tenant URL may not reach."""

    def __init__(self, message: str) -> None:
        # (errno, text): aiohttp's connection error shows the text in its message.
        super().__init__(errno.EACCES, message)

    def __str__(self) -> str:
        return str(self.strerror)


def _refusal(host: str, address: str, reason: str) -> str:
    shown = host if host == address else f"{host} resolves to {address}"
    return (
        f"{shown}, a {reason} address: URLs a workspace chooses may not reach the "
        f"server's own networks (the operator can allow some with {ALLOW_SETTING})"
    )


def check_addresses(host: str, addresses: Iterable[str], allowed: Sequence[Network]) -> None:
    """Raise ``AddressRefused`` unless every one of ``addresses`` is allowed (and some are)."""
    found = list(addresses)
    if not found:
        raise AddressRefused(f"{host} does not resolve to any address")
    for address in found:
        reason = forbidden_reason(address, allowed)
        if reason is not None:
            raise AddressRefused(_refusal(host, address, reason))


async def check_url(
    url: str,
    *,
    allowed: Sequence[Network] = (),
    resolver: AbstractResolver | None = None,
) -> None:
    """At save time: ``ValueError`` for anything but an http(s) URL, ``AddressRefused``
    when its host is, or resolves to, an address that is not allowed."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("an http(s) URL with a host name")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ValueError(f"a valid port: {exc}") from exc
    if _is_ip(host):
        check_addresses(host, [host], allowed)
        return
    lookup = resolver or DefaultResolver()
    try:
        results = await lookup.resolve(host, port, family=socket.AF_UNSPEC)
    except OSError as exc:
        raise AddressRefused(f"{host} cannot be resolved ({exc})") from exc
    finally:
        if resolver is None:
            await lookup.close()
    check_addresses(host, (r["host"] for r in results), allowed)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class GuardedConnector(aiohttp.TCPConnector):
    """A connector that refuses to connect to an address ``check_addresses`` refuses.

    The check sits on the connector's own lookup (``_resolve_host``, which every
    connection, IP literal and redirect passes through), so what is checked is what
    is connected to: there is no second lookup an attacker's DNS could answer
    differently.
    """

    def __init__(self, *, allowed: Sequence[Network] = (), **kwargs: Any) -> None:
        kwargs.setdefault("use_dns_cache", False)  # a cached answer would outlive a change
        super().__init__(**kwargs)
        self._allowed = tuple(allowed)

    async def _resolve_host(
        self, host: str, port: int, traces: Any = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)
        check_addresses(host, (r["host"] for r in results), self._allowed)
        return results


def guarded_session(
    *,
    allowed: Sequence[Network] = (),
    resolver: AbstractResolver | None = None,
    **kwargs: Any,
) -> aiohttp.ClientSession:
    """A client session for tenant URLs: every connection passes ``GuardedConnector``."""
    connector = GuardedConnector(allowed=allowed, resolver=resolver)
    return aiohttp.ClientSession(connector=connector, **kwargs)
