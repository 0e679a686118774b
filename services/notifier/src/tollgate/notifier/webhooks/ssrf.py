"""SSRF-safe name resolution for outbound webhooks.

A customer chooses the URL, so the notifier must never be steered into the
operator's own network. `GuardedResolver` is the aiohttp resolver of the webhook
session: it resolves the name itself, refuses the whole name when any resolved
address is loopback, private, link-local (cloud metadata included), CGNAT,
multicast, reserved or unspecified, and hands aiohttp only the checked addresses,
which aiohttp then connects to (no second lookup, so no DNS rebinding window).
Literal IPs skip resolvers in aiohttp, so `check_literal_host` covers those.
Decimal (`2130706433`), octal (`0177.0.0.1`) and hex forms are refused before any
connection: parsers disagree on what they denote.
The operator allowlist (`webhook_allowed_networks`) exempts networks for local runs.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_EXTRA_BLOCKED = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT
    ipaddress.ip_network("169.254.0.0/16"),  # link-local, cloud metadata
    ipaddress.ip_network("fd00:ec2::/32"),  # AWS IPv6 metadata
)


class BlockedDestination(Exception):
    """The webhook URL resolves to an address the notifier must not reach."""


def parse_allowlist(value: str) -> tuple[IpNetwork, ...]:
    """Comma-separated CIDRs into networks (a bare address is one host)."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in value.split(",")
        if part.strip()
    )


def is_blocked(address: IpAddress, allowed: Sequence[IpNetwork] = ()) -> bool:
    """True when `address` is internal and not in the operator's allowlist."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in net for net in allowed if net.version == address.version):
        return False
    if any(address in net for net in _EXTRA_BLOCKED if net.version == address.version):
        return True
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


_LEGACY_NUMERIC = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


def check_literal_host(host: str, allowed: Sequence[IpNetwork] = ()) -> None:
    """Raise BlockedDestination when `host` is a literal IP that is blocked.

    Legacy numeric forms (`2130706433`, `0177.0.0.1`, `0x7f.1`) mean different things
    to different parsers, so they are refused outright, whatever they denote.
    """
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if _LEGACY_NUMERIC.match(host):
            try:
                denoted = socket.inet_ntoa(socket.inet_aton(host))
            except OSError:
                denoted = "an invalid address"
            raise BlockedDestination(f"non-canonical numeric host {host} (= {denoted})") from None
        return
    if is_blocked(address, allowed):
        raise BlockedDestination(f"{address} is an internal address")


class GuardedResolver(AbstractResolver):
    """Resolves with `inner` (the system resolver by default) and lets through only
    names whose every address is allowed."""

    def __init__(
        self, allowed: Sequence[IpNetwork] = (), inner: AbstractResolver | None = None
    ) -> None:
        self._allowed = tuple(allowed)
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if is_blocked(ipaddress.ip_address(result["host"]), self._allowed):
                raise BlockedDestination(f"{host} resolves to an internal address")
        return results

    async def close(self) -> None:
        await self._inner.close()
