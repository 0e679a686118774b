"""Upstream URL validation against SSRF.

The gateway will send customer traffic (with injected credentials) to whatever URL an
API names, so the registry refuses URLs that point inside the platform: loopback,
private and shared ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) unless
the operator allows them (`allow_private_upstreams`, for local runs), and always
link-local (169.254/16, fe80::/10, cloud metadata), multicast, unspecified and
reserved addresses. Legacy IPv4 spellings (`2130706433`, `0177.0.0.1`, `0x7f.1`,
`127.1`) and IPv4-mapped IPv6 are decoded first, so they cannot smuggle an address
past the check. Host names are resolved and every address checked. A resolver can
still change its answer later (DNS rebinding): the gateway must pin or re-check the
address it connects to; this is the registry-side half.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from urllib.parse import urlsplit, urlunsplit

from tollgate.kit.problems import Problem

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
    }
)
_METADATA_IPS = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "100.100.100.200", "fd00:ec2::254")
)
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$"
)
_NUMERIC_V4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")
_RESOLVE_TIMEOUT = 3.0


class UpstreamRefused(ValueError):
    """The URL is not acceptable as an upstream; the message says why."""


def _refuse(reason: str) -> Problem:
    return Problem(422, "Unprocessable Content", reason, slug="upstream-refused")


def ip_literal(host: str) -> IpAddress | None:
    """The address a host string denotes when it is an IP literal in any spelling."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_V4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise UpstreamRefused(f"malformed IPv4 address {host!r}") from None
    return None


def classify(address: IpAddress) -> str:
    """`public`, `private` (allowed by the operator setting) or `forbidden`."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
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
    if address.is_private or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED):
        return "private"
    return "public" if address.is_global else "private"


def _check_address(address: IpAddress, allow_private: bool, shown: str) -> None:
    kind = classify(address)
    if kind == "forbidden":
        raise UpstreamRefused(f"{shown} is a link-local, metadata or reserved address")
    if kind == "private" and not allow_private:
        raise UpstreamRefused(f"{shown} is a loopback or private address")


def check_url_syntax(url: str, *, allow_private: bool) -> tuple[str, str]:
    """Normalise `url` and check everything that needs no DNS; returns (url, hostname)
    where hostname is empty when the host was an IP literal."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UpstreamRefused("malformed URL") from exc
    if parts.scheme not in ("http", "https"):
        raise UpstreamRefused("the upstream must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise UpstreamRefused("no credentials in the URL; use upstream headers")
    if parts.query or parts.fragment:
        raise UpstreamRefused("no query string or fragment in an upstream URL")
    host = (parts.hostname or "").lower()
    if not host:
        raise UpstreamRefused("the URL has no host")
    address = ip_literal(host)
    if address is not None:
        _check_address(address, allow_private, host)
        hostname = ""
    else:
        name = host.rstrip(".")
        if not _HOSTNAME.match(name):
            raise UpstreamRefused("invalid host name")
        if name in _METADATA_HOSTS:
            raise UpstreamRefused(f"{name} is a metadata service")
        if (name == "localhost" or name.endswith(".localhost")) and not allow_private:
            raise UpstreamRefused(f"{name} is a loopback address")
        hostname = name
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if port is not None and not 1 <= port <= 65535:
        raise UpstreamRefused("invalid port")
    normalised = urlunsplit((parts.scheme, netloc.lower(), parts.path.rstrip("/"), "", ""))
    return normalised, hostname


async def _resolve(hostname: str) -> list[IpAddress]:
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(hostname, None, type=socket.SOCK_STREAM), timeout=_RESOLVE_TIMEOUT
    )
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def validate_upstream(url: str, *, allow_private: bool, resolve: bool) -> str:
    """The normalised upstream URL, or a 422 problem saying why it is refused."""
    try:
        normalised, hostname = check_url_syntax(url, allow_private=allow_private)
        if hostname and resolve and not (hostname == "localhost" and allow_private):
            try:
                addresses = await _resolve(hostname)
            except (OSError, TimeoutError, UnicodeError):
                addresses = []  # unresolvable here; the gateway checks at connect time
            for address in addresses:
                _check_address(address, allow_private, f"{hostname} ({address})")
    except UpstreamRefused as exc:
        raise _refuse(f"Upstream URL refused: {exc}.") from exc
    return normalised
