"""The client's IP address as a service should count and record it.

`X-Forwarded-For` is written by whoever sends the request, so it is evidence only when
the TCP peer is a proxy the operator trusts: then the header's right end was written by
that proxy, and the nearest hop that is not itself a trusted proxy is the client. From
any other peer the header is ignored and the peer is the client, so a caller cannot pick
its own address for throttles and audit logs by sending the header.

Pure functions over strings: no I/O, never raises on request input. The HTTP server
must not rewrite the peer from the header on its own (`tollgate.kit.cli` runs uvicorn
with `proxy_headers=False`). The gateway keeps its own copy on its hot path.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PROXY_SECRET_HEADER = "X-Tollgate-Proxy-Secret"
"""A proxy whose address is not known in advance (the console) proves itself with a
secret the service shares with it, sent in this header (`client_ip(vouched=)`)."""

MAX_HOPS = 32
"""Hops read from the right of `X-Forwarded-For`; a longer chain of trusted proxies is
not a real deployment, and the header is client-controlled in size."""


def parse_address(value: str) -> IPAddress | None:
    """An IP address as proxies write hops (`198.51.100.1`, `198.51.100.1:4711`,
    `2001:db8::1`, `[2001:db8::1]:443`), IPv4-mapped IPv6 as IPv4; None otherwise."""
    text = value.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(cidrs: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs (a bare address is a /32 or /128); ValueError names a bad one."""
    networks = []
    for item in (c.strip() for c in cidrs.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"not a trusted proxy network: {item!r}") from exc
    return tuple(networks)


class TrustedProxies:
    """Decides the client IP from the peer address and `X-Forwarded-For`."""

    def __init__(self, cidrs: str) -> None:
        self._networks = parse_networks(cidrs)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: IPAddress) -> bool:
        return any(address in network for network in self._networks)

    def client_ip(self, peer: str, forwarded_for: str | None, *, vouched: bool = False) -> str:
        """The peer; behind trusted proxies the nearest untrusted `X-Forwarded-For` hop.

        Reading from the right, trusted proxies are skipped; the first hop that is not
        one is the client. A hop that is not an address ends the chain: the last
        trusted hop before it (the proxy that passed it on) is the furthest address
        known. So is the furthest hop read when every hop is a trusted proxy.
        `vouched`: the peer proved by other means that it is a proxy of the operator's
        (a shared secret), so it is trusted whatever its address.
        """
        peer_address = parse_address(peer)
        if peer_address is None or not (vouched or self.trusts(peer_address)):
            return str(peer_address) if peer_address is not None else peer
        client = peer_address
        if forwarded_for:
            for hop in reversed(forwarded_for.split(",")[-MAX_HOPS:]):
                address = parse_address(hop)
                if address is None:
                    break
                client = address
                if not self.trusts(address):
                    break
        return str(client)
