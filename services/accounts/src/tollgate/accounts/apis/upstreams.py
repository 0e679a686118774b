"""Upstream URL validation against SSRF.

The gateway will send customer traffic (with injected credentials) to whatever URL an
API names, so the registry refuses URLs that point inside the platform: loopback,
private and shared ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) unless
the operator allows them (`allow_private_upstreams`, for local runs), and always
link-local (169.254/16, fe80::/10, cloud metadata), multicast, unspecified and
reserved addresses. The address rules are `tollgate.kit.netpolicy`, shared with the
gateway and the notifier: legacy IPv4 spellings and IPv6 forms carrying an IPv4 address
are decoded first, so they cannot smuggle an address past the check. Host names are
resolved and every address checked. A resolver can still change its answer later (DNS
rebinding): the gateway re-checks the address it connects to; this is the registry half.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from tollgate.kit.netpolicy import (
    DestinationRefused,
    IpAddress,
    NetworkPolicy,
    ip_literal,
    resolve_checked,
)
from tollgate.kit.problems import Problem, Unprocessable

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
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$"
)


class UpstreamRefused(ValueError):
    """The URL is not acceptable as an upstream; the message says why."""


def _refuse(reason: str) -> Problem:
    return Unprocessable("upstream-refused", reason)


def _check_address(address: IpAddress, allow_private: bool, shown: str) -> None:
    reason = NetworkPolicy(allow_private=allow_private).refusal(address)
    if reason is not None:
        raise UpstreamRefused(f"{shown}: {reason}")


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
    try:
        address = ip_literal(host)
    except DestinationRefused as exc:
        raise UpstreamRefused(str(exc)) from None
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


async def validate_upstream(url: str, *, allow_private: bool, resolve: bool) -> str:
    """The normalised upstream URL, or a 422 problem saying why it is refused."""
    try:
        normalised, hostname = check_url_syntax(url, allow_private=allow_private)
        if hostname and resolve and not (hostname == "localhost" and allow_private):
            try:
                await resolve_checked(hostname, 0, NetworkPolicy(allow_private=allow_private))
            except DestinationRefused as exc:
                if "does not resolve" not in str(exc):
                    raise UpstreamRefused(str(exc)) from None
                # unresolvable here; the gateway checks again at connect time
    except UpstreamRefused as exc:
        raise _refuse(f"Upstream URL refused: {exc}.") from exc
    return normalised
