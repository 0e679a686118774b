"""Upstream HTTP clients that connect only to addresses the network policy allows.

An API's upstream name was checked when accounts registered it, but DNS can change
afterwards (rebinding): a name that resolved to a public address can later resolve
to loopback or a cloud metadata address. So the gateway checks at connect time, with
the one shared policy (`tollgate.kit.netpolicy`): the name is resolved, every address
checked, and the connection made to a checked address, never to a second lookup.

pyreqwest resolves names inside Rust and takes no resolver callback, but its builder
accepts a static mapping (`resolve(domain, ip, port)`). So there is one pooled client
per upstream *name*, built with its name pinned to the checked address; IP-literal
upstreams (checked once, they cannot change) share one client. A resolution is
trusted for `upstream_dns_ttl_s`; after that the next request still uses the pinned
(checked) client while a background task resolves and checks again: unchanged, the
client stays (and keeps its warm connections); moved, a new client is pinned to the
new address; refused or unresolvable, the name is dropped and its requests get 502
until a later check passes. The hot path is one dict probe and a clock comparison.

Redirects are never followed (the client relays them), so the pinned host is the
only one a client connects to. An HTTP(S) proxy set in the environment (`HTTPS_PROXY`
and friends, honoured by reqwest) resolves names itself: the policy then cannot see
the addresses, and the proxy must enforce its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.http import Url

from tollgate.gateway.config import Settings
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


def _builder(settings: Settings) -> ClientBuilder:
    """The upstream client's settings (pyreqwest: Rust reqwest/hyper).

    Bodies pass through untouched (no decompression), redirects are relayed to the
    client rather than followed, connections are kept alive per upstream host.
    """
    return (
        ClientBuilder()
        .http1_only()
        .gzip(False)
        .brotli(False)
        .zstd(False)
        .deflate(False)
        .follow_redirects(False)
        .user_agent("tollgate-gateway")
        .max_connections(settings.upstream_connections)
        .pool_max_idle_per_host(settings.upstream_connections)
        .pool_idle_timeout(timedelta(seconds=60))
        .connect_timeout(timedelta(milliseconds=settings.upstream_connect_timeout_ms))
        .read_timeout(timedelta(milliseconds=settings.upstream_read_timeout_ms))
    )


class _Pinned:
    """A name's client, pinned to one checked address until `expires`."""

    __slots__ = ("address", "client", "expires", "refresh", "refused")

    def __init__(
        self, client: Client | None, address: IpAddress | None, expires: float, refused: str
    ) -> None:
        self.client = client
        self.address = address
        self.expires = expires
        self.refused = refused  # why, when client is None
        self.refresh: asyncio.Task[None] | None = None


class UpstreamClients:
    """The pooled upstream clients, each connecting only to checked addresses."""

    def __init__(self, settings: Settings, resolve: Resolver = resolve_checked) -> None:
        self._settings = settings
        self._policy = NetworkPolicy(
            allow_private=settings.allow_private_upstreams,
            allowed=parse_networks(settings.upstream_allowed_networks),
        )
        self._ttl = settings.upstream_dns_ttl_s
        self._resolve = resolve
        self._literal_client: Client | None = None
        self._names: dict[str, _Pinned] = {}
        self._pinning: dict[str, asyncio.Future[_Pinned]] = {}
        self._literals: dict[str, str | None] = {}  # literal host -> refusal (None: allowed)
        self._by_literal: dict[str, Client] = {}  # upstream base -> client, allowed literals
        self._hosts: dict[str, str] = {}  # upstream base -> its name

    async def client_for(self, base: str) -> Client:
        """The client to call the upstream at `base` with; raises UpstreamRefused.

        The hot path: a dict probe for the base, one for its name and a clock
        comparison. A resolution past its TTL is still used while a background
        re-check runs.
        """
        client = self._by_literal.get(base)
        if client is not None:
            return client
        host = self._hosts.get(base)
        if host is not None:
            entry = self._names.get(host)
            if entry is not None and entry.client is not None:
                if entry.expires < time.monotonic() and entry.refresh is None:
                    entry.refresh = asyncio.create_task(self._recheck(host, entry))
                return entry.client
        return await self._first_call(base)

    async def _first_call(self, base: str) -> Client:
        try:
            parsed = Url(base)
        except Exception:
            raise UpstreamRefused("the upstream URL is not valid") from None
        domain = parsed.domain
        if domain is None:
            client = self._for_literal(parsed.host_str or "")
            self._by_literal[base] = client
            return client
        self._hosts[base] = domain
        entry = self._names.get(domain)
        if entry is not None and entry.client is not None:
            return entry.client
        if entry is not None and entry.expires >= time.monotonic():
            raise UpstreamRefused(entry.refused)  # refused a moment ago: not asked again yet
        entry = await self._pin_once(domain, parsed.port_or_known_default or 80)
        if entry.client is None:
            raise UpstreamRefused(entry.refused)
        return entry.client

    def _for_literal(self, host: str) -> Client:
        if host not in self._literals:
            try:
                address = ip_literal(host)
                if address is None:
                    raise DestinationRefused(f"{host} is not an address")
                self._literals[host] = self._policy.refusal(address)
            except DestinationRefused as exc:
                self._literals[host] = str(exc)
        refusal = self._literals[host]
        if refusal is not None:
            raise UpstreamRefused(refusal)
        if self._literal_client is None:
            self._literal_client = _builder(self._settings).build()
        return self._literal_client

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
            return _Pinned(None, None, time.monotonic() + _RETRY_REFUSED_S, str(exc))
        expires = time.monotonic() + self._ttl
        if current is not None and current.client is not None and current.address in addresses:
            current.expires = expires
            return current
        address = addresses[0]
        client = _builder(self._settings).resolve(host, str(address), 0).build()
        return _Pinned(client, address, expires, "")

    async def _recheck(self, host: str, entry: _Pinned) -> None:
        try:
            fresh = await self._pin(host, 0, entry)
        except Exception:
            log.exception("upstream re-check failed", extra={"host": host})
            fresh = _Pinned(None, None, time.monotonic() + _RETRY_REFUSED_S, "re-check failed")
        entry.refresh = None
        if self._names.get(host) is entry:
            self._names[host] = fresh
        # A replaced client is dropped, not closed: requests still streaming through
        # it keep it alive and it goes when they finish.

    async def close(self) -> None:
        for entry in self._names.values():
            if entry.refresh is not None:
                entry.refresh.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await entry.refresh
        clients = [e.client for e in self._names.values() if e.client is not None]
        if self._literal_client is not None:
            clients.append(self._literal_client)
        self._names.clear()
        for client in clients:
            await client.close()
