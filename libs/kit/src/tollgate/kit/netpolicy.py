"""Which network addresses a service may send traffic to (the one SSRF policy).

Three services connect to URLs that someone else chose: accounts registers upstreams,
the gateway connects to them, the notifier delivers webhooks. All three decide with this
module, so a spelling that slips past one cannot slip past another:

- every IP literal spelling is decoded first: legacy IPv4 (`2130706433`, `0177.0.0.1`,
  `0x7f.1`, `127.1`) and every IPv6 form that embeds an IPv4 address (mapped
  `::ffff:a.b.c.d`, compatible `::a.b.c.d`, 6to4 `2002::/16`, Teredo `2001::/32`,
  NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`); the embedded address is what is judged;
- `forbidden` (never reachable, whatever the operator allows unless named explicitly in
  `allowed`): link-local (169.254/16, fe80::/10, cloud metadata), multicast,
  unspecified, reserved;
- `private` (reachable only with `allow_private`, for local runs): loopback, RFC 1918,
  CGNAT 100.64/10, ULA fc00::/7 and anything else that is not global;
- `public`: the rest.

A name must be resolved and every address checked, then the connection made to a
checked address (no second lookup, so no DNS-rebinding window); `resolve_checked` does
the first two. This module never opens a connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Literal

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
AddressClass = Literal["public", "private", "forbidden"]

_METADATA_IPS = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254")
)
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_LEGACY_NUMERIC_V4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.I)
_RESOLVE_TIMEOUT_S = 3.0


class DestinationRefused(ValueError):
    """The address (or name) is one this service must not connect to; the message says why."""


def ip_literal(host: str) -> IpAddress | None:
    """The address `host` denotes when it is an IP literal in any spelling, else None.

    Raises DestinationRefused for a numeric host that is not a valid address.
    """
    host = host.strip().strip("[]").rstrip(".").lower().split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_NUMERIC_V4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise DestinationRefused(f"malformed IPv4 address {host!r}") from None
    return None


def is_legacy_spelling(host: str) -> bool:
    """True for numeric IPv4 spellings other than dotted-quad decimal (`0x7f.1`, `2130706433`)."""
    host = host.strip().rstrip(".")
    if not _LEGACY_NUMERIC_V4.match(host):
        return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return True
    return False


def embedded_ipv4(address: IpAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _COMPATIBLE and int(address) > 1:  # ::a.b.c.d; not :: or ::1
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IpAddress) -> AddressClass:
    """`public`, `private` (allowed by an operator setting) or `forbidden`."""
    embedded = embedded_ipv4(address)
    if embedded is not None:
        return classify(embedded)
    if (
        address in _METADATA_IPS
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
    ):
        return "forbidden"
    if address.is_loopback:
        return "private"
    if address.is_reserved:
        return "forbidden"
    if address.is_private or (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT):
        return "private"
    return "public" if address.is_global else "private"


def parse_networks(value: str) -> tuple[IpNetwork, ...]:
    """Comma-separated CIDRs into networks (a bare address is one host)."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False)
        for part in value.split(",")
        if part.strip()
    )


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """What one service may connect to.

    `allow_private` opens loopback and private ranges (local runs); `allowed` names
    networks the operator opens explicitly, which win over every other rule.
    """

    allow_private: bool = False
    allowed: tuple[IpNetwork, ...] = ()

    def refusal(self, address: IpAddress) -> str | None:
        """None when `address` may be reached, else the reason it may not."""
        judged = embedded_ipv4(address) or address
        for candidate in (address, judged):
            if any(candidate in net for net in self.allowed if net.version == candidate.version):
                return None
        kind = classify(address)
        if kind == "forbidden":
            return f"{address} is a link-local, metadata, multicast or reserved address"
        if kind == "private" and not self.allow_private:
            return f"{address} is a loopback or private address"
        return None

    def check(self, address: IpAddress) -> None:
        """Raise DestinationRefused unless `address` may be reached."""
        reason = self.refusal(address)
        if reason is not None:
            raise DestinationRefused(reason)


async def resolve_checked(host: str, port: int, policy: NetworkPolicy) -> list[IpAddress]:
    """Every address `host` resolves to, all of them allowed by `policy`.

    Refuses the whole name when any address is refused (an attacker who controls a
    name's records can order them). Connect to one of the returned addresses.
    """
    literal = ip_literal(host)
    if literal is not None:
        policy.check(literal)
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=_RESOLVE_TIMEOUT_S
        )
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise DestinationRefused(f"{host} does not resolve") from exc
    addresses = list(
        dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    )
    if not addresses:
        raise DestinationRefused(f"{host} does not resolve")
    for address in addresses:
        reason = policy.refusal(address)
        if reason is not None:
            raise DestinationRefused(f"{host} resolves to a refused address: {reason}")
    return addresses
