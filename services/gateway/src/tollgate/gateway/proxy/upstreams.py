"""Upstream connections only to addresses the network policy allows.

An API's upstream name was checked when accounts registered it, but DNS can change
afterwards (rebinding): a name that resolved to a public address can later resolve
to loopback or a cloud metadata address. So the gateway checks at connect time, with
the one shared policy (`tollgate.kit.netpolicy`): the name is resolved, every address
checked, and connections made to a checked address, never to a second lookup.

Each upstream (scheme, name, port) has one connection pool (`upstream_http.Origin`)
pinned to the checked address; IP-literal upstreams are checked once (they cannot
change). A resolution is trusted for `upstream_dns_ttl_s`; after that the next
request still uses the pinned (checked) pool while a background task resolves and
checks again: unchanged, the pool stays (and keeps its warm connections); moved, new
pools are pinned to the new address (the old ones close as their requests finish);
refused or unresolvable, the name is dropped and its requests get 502 until a later
check passes. The hot path is three dict probes and a clock comparison.

Redirects are never followed (the gate relays them), so the pinned address is the
only one a pool connects to, and environment proxies (`HTTPS_PROXY`) are not used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from tollgate.gateway.config import Settings
from tollgate.gateway.proxy.upstream_http import Origin
from tollgate.kit.netpolicy import (
    DestinationRefused,
    IpAddress,
    NetworkPolicy,
    ip_literal,
    parse_networks,
    resolve_checked,
)

log = logging.getLogger(__name__)

Resolver = Callable[[str, int, NetworkPolicy], Awaitable[list[IpAddress]]]
_RETRY_REFUSED_S = 1.0  # a refused or unresolvable name is looked up again after this


class UpstreamRefused(Exception):
    """The upstream may not be connected to (policy) or cannot be resolved."""


class _Pinned:
    """A name's checked address, trusted until `expires`, and its pools."""

    __slots__ = ("address", "expires", "origins", "refresh", "refused")

    def __init__(self, address: IpAddress | None, expires: float, refused: str) -> None:
        self.address = address
        self.expires = expires
        self.refused = refused  # why, when address is None
        self.origins: dict[tuple[str, int], Origin] = {}  # (scheme, port) -> pool
        self.refresh: asyncio.Task[None] | None = None


class UpstreamClients:
    """The pooled upstream connections, each to a checked address."""

    def __init__(self, settings: Settings, resolve: Resolver = resolve_checked) -> None:
        self._settings = settings
        self._policy = NetworkPolicy(
            allow_private=settings.allow_private_upstreams,
            allowed=parse_networks(settings.upstream_allowed_networks),
        )
        self._ttl = settings.upstream_dns_ttl_s
        self._resolve = resolve
        self._names: dict[str, _Pinned] = {}
        self._pinning: dict[str, asyncio.Future[_Pinned]] = {}
        self._literals: dict[str, str | None] = {}  # literal host -> refusal (None: allowed)
        self._by_literal: dict[str, Origin] = {}  # upstream base -> pool, allowed literals
        self._literal_origins: dict[tuple[str, str, int], Origin] = {}
        self._hosts: dict[str, tuple[str, str, int]] = {}  # base -> (name, scheme, port)
        self._paths: dict[str, str] = {}  # base -> its path, the prefix of every target

    def path_of(self, base: str) -> str:
        """The path of `base` without its trailing slash: the upstream's target prefix."""
        path = self._paths.get(base)
        if path is None:
            path = self._paths[base] = urlsplit(base).path.rstrip("/")
        return path

    async def client_for(self, base: str) -> Origin:
        """The pool to call the upstream at `base` with; raises UpstreamRefused.

        The hot path: a dict probe for the base, one for its name, one for its pool
        and a clock comparison. A resolution past its TTL is still used while a
        background re-check runs.
        """
        origin = self._by_literal.get(base)
        if origin is not None:
            return origin
        target = self._hosts.get(base)
        if target is not None:
            entry = self._names.get(target[0])
            if entry is not None and entry.address is not None:
                if entry.expires < time.monotonic() and entry.refresh is None:
                    entry.refresh = asyncio.create_task(self._recheck(target[0], entry))
                return self._origin(entry, *target)
        return await self._first_call(base)

    async def _first_call(self, base: str) -> Origin:
        try:
            parsed = urlsplit(base)
            scheme, host = parsed.scheme, parsed.hostname or ""
            port = parsed.port or (443 if scheme == "https" else 80)
        except ValueError:
            raise UpstreamRefused("the upstream URL is not valid") from None
        if scheme not in ("http", "https") or not host:
            raise UpstreamRefused("the upstream URL is not valid")
        if not host.isascii():
            try:  # an internationalised name: its ASCII form is what DNS, TLS and Host use
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise UpstreamRefused("the upstream's name is not a valid domain name") from None
        try:
            literal = ip_literal(host)
        except DestinationRefused as exc:
            raise UpstreamRefused(str(exc)) from None
        if literal is not None:
            origin = self._for_literal(scheme, literal, port)
            self._by_literal[base] = origin
            return origin
        self._hosts[base] = (host, scheme, port)
        entry = self._names.get(host)
        if entry is not None and entry.address is not None:
            return self._origin(entry, host, scheme, port)
        if entry is not None and entry.expires >= time.monotonic():
            raise UpstreamRefused(entry.refused)  # refused a moment ago: not asked again yet
        entry = await self._pin_once(host, port)
        if entry.address is None:
            raise UpstreamRefused(entry.refused)
        return self._origin(entry, host, scheme, port)

    def _origin(self, entry: _Pinned, host: str, scheme: str, port: int) -> Origin:
        origin = entry.origins.get((scheme, port))
        if origin is None:
            assert entry.address is not None
            origin = entry.origins[scheme, port] = self._pool(scheme, host, port, entry.address)
        return origin

    def _pool(self, scheme: str, host: str, port: int, address: IpAddress) -> Origin:
        settings = self._settings
        return Origin(
            scheme,
            host,
            port,
            str(address),
            max_connections=settings.upstream_connections,
            connect_timeout=settings.upstream_connect_timeout_ms / 1000,
            read_timeout=settings.upstream_read_timeout_ms / 1000,
        )

    def _for_literal(self, scheme: str, address: IpAddress, port: int) -> Origin:
        host = str(address)
        if host not in self._literals:
            self._literals[host] = self._policy.refusal(address)
        refusal = self._literals[host]
        if refusal is not None:
            raise UpstreamRefused(refusal)
        origin = self._literal_origins.get((scheme, host, port))
        if origin is None:
            origin = self._literal_origins[scheme, host, port] = self._pool(
                scheme, host, port, address
            )
        return origin

    async def _pin_once(self, host: str, port: int) -> _Pinned:
        """Resolve and check `host`; concurrent first requests share one lookup."""
        pending = self._pinning.get(host)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Pinned] = asyncio.get_running_loop().create_future()
        self._pinning[host] = future
        try:
            entry = await self._pin(host, port, None)
            self._names[host] = entry
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._pinning[host]

    async def _pin(self, host: str, port: int, current: _Pinned | None) -> _Pinned:
        try:
            addresses = await self._resolve(host, port, self._policy)
        except DestinationRefused as exc:
            log.warning("upstream refused by the network policy", extra={"reason": str(exc)})
            return _Pinned(None, time.monotonic() + _RETRY_REFUSED_S, str(exc))
        expires = time.monotonic() + self._ttl
        if current is not None and current.address in addresses:
            current.expires = expires
            return current
        return _Pinned(addresses[0], expires, "")

    async def _recheck(self, host: str, entry: _Pinned) -> None:
        try:
            fresh = await self._pin(host, 0, entry)
        except Exception:
            log.exception("upstream re-check failed", extra={"host": host})
            fresh = _Pinned(None, time.monotonic() + _RETRY_REFUSED_S, "re-check failed")
        entry.refresh = None
        if self._names.get(host) is entry:
            self._names[host] = fresh
        if fresh is not entry:
            # Moved or refused: the old pools take no new requests; their connections
            # close as the requests still on them finish.
            for origin in entry.origins.values():
                origin.close()

    async def close(self) -> None:
        for entry in self._names.values():
            if entry.refresh is not None:
                entry.refresh.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await entry.refresh
        for entry in self._names.values():
            for origin in entry.origins.values():
                origin.close()
        for origin in self._literal_origins.values():
            origin.close()
        self._names.clear()
