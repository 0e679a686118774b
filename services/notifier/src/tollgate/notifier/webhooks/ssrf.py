"""The webhook session's side of the SSRF policy: an aiohttp resolver that applies
`tollgate.kit.netpolicy` (the one policy accounts and the gateway apply too).

A customer chooses the URL, so the notifier must never be steered into the
operator's own network. `GuardedResolver` resolves the name itself, refuses the
whole name when the policy refuses any resolved address (loopback, private,
link-local and cloud metadata, CGNAT, multicast, reserved, unspecified, and every
IPv6 form that embeds one of those IPv4 addresses: mapped, compatible, 6to4, Teredo,
NAT64), and hands aiohttp only the checked addresses, which aiohttp then connects to
(no second lookup, so no DNS-rebinding window). aiohttp does not ask resolvers about
IP literals, so `refuse_literal_host` checks those before a request is made (and
when a URL is registered); legacy numeric spellings (`2130706433`, `0177.0.0.1`,
`0x7f.1`) are refused whatever they denote, because parsers disagree on that.
This module classifies nothing itself: every address decision is the kit policy's.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from tollgate.kit.netpolicy import DestinationRefused, NetworkPolicy, ip_literal, is_legacy_spelling


def refuse_literal_host(host: str, policy: NetworkPolicy) -> None:
    """Raise DestinationRefused when `host` is an IP literal the policy refuses, or a
    legacy numeric spelling of an IPv4 address. Names pass (the resolver checks them)."""
    if is_legacy_spelling(host):
        raise DestinationRefused(f"non-canonical numeric host {host}")
    literal = ip_literal(host)
    if literal is not None:
        policy.check(literal)


class GuardedResolver(AbstractResolver):
    """Resolves with `inner` (the system resolver by default) and lets through only
    names whose every address `policy` allows."""

    def __init__(self, policy: NetworkPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            reason = self._policy.refusal(ipaddress.ip_address(result["host"]))
            if reason is not None:
                raise DestinationRefused(f"{host} resolves to a refused address: {reason}")
        return results

    async def close(self) -> None:
        await self._inner.close()
