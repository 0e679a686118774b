"""Compact, request-path-friendly forms of the contract's key, API and balance states.

The contract models (`KeyUpserted`, `ApiUpserted`, `BalanceState`) are validated once
when a record arrives and turned into the slotted records below, which hold only
what a decision needs, pre-parsed (networks, route regexes, header lists, epoch
timestamps). Memory per key matters at millions of keys: ids are strings shared
where possible, the key hash is 32 raw bytes, and empty collections are shared
singletons.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import orjson

from tollgate.contracts.events.accounts import (
    ApiStatus,
    ApiUpserted,
    KeyEnvironment,
    KeyUpserted,
    Limits,
    SandboxSettings,
)
from tollgate.contracts.events.billing import BalanceMode, BalanceState, BalanceStatus
from tollgate.gateway.registry.openapi import Contract
from tollgate.kit.sealing import Sealer

log = logging.getLogger(__name__)

Window = tuple[int, int]
"""A rate limit: (requests allowed, window length in seconds)."""

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_EMPTY_SCOPES: frozenset[str] = frozenset()
_WINDOWS: tuple[tuple[str, int], ...] = (
    ("per_second", 1),
    ("per_minute", 60),
    ("per_hour", 3600),
    ("per_day", 86400),
    ("per_month", 30 * 86400),
)


def limit_windows(limits: Limits) -> tuple[Window, ...]:
    """The configured windows of a `Limits`, shortest first; () when unlimited."""
    return tuple(
        (value, seconds)
        for name, seconds in _WINDOWS
        if (value := getattr(limits, name)) is not None
    )


class KeyRecord:
    """An API key as the gateway needs it; looked up by the hash of the raw key."""

    __slots__ = (
        "allowed_api_ids",
        "enabled",
        "expires_at",
        "grace",
        "identity",
        "key_hash",
        "key_id",
        "name",
        "networks",
        "org_id",
        "revoked",
        "scopes",
        "test",
        "version",
        "windows",
    )

    def __init__(
        self,
        *,
        key_id: str,
        org_id: str,
        key_hash: bytes,
        enabled: bool,
        revoked: bool,
        expires_at: float | None,
        scopes: frozenset[str],
        allowed_api_ids: frozenset[str] | None,
        networks: tuple[IpNetwork, ...] | None,
        windows: tuple[Window, ...],
        grace: tuple[tuple[bytes, float], ...],
        version: int,
        name: str = "",
        test: bool = False,
    ) -> None:
        self.key_id = key_id
        self.name = name
        self.test = test  # a `tg_test_` key: never charged, never reaches a live upstream
        self.org_id = org_id
        self.key_hash = key_hash
        self.enabled = enabled
        self.revoked = revoked
        self.expires_at = expires_at
        self.scopes = scopes
        self.allowed_api_ids = allowed_api_ids
        self.networks = networks
        self.windows = windows
        self.grace = grace
        self.version = version
        # The identity signer's parts for this record, made on its first use (`proxy.identity`).
        self.identity: tuple[str, str] | None = None

    @classmethod
    def from_event(
        cls,
        event: KeyUpserted,
        intern: dict[str, str],
        shared_windows: dict[tuple[Window, ...], tuple[Window, ...]],
    ) -> KeyRecord:
        """Build the record; org ids and limit tuples are shared between keys."""
        org = str(event.org_id)
        windows = limit_windows(event.limits)
        return cls(
            key_id=str(event.key_id),
            org_id=intern.setdefault(org, org),
            key_hash=bytes.fromhex(event.key_hash),
            enabled=event.enabled,
            revoked=event.revoked,
            expires_at=event.expires_at.timestamp() if event.expires_at else None,
            scopes=frozenset(event.scopes) if event.scopes else _EMPTY_SCOPES,
            allowed_api_ids=(
                frozenset(str(a) for a in event.allowed_api_ids) if event.allowed_api_ids else None
            ),
            networks=(
                tuple(ipaddress.ip_network(c, strict=False) for c in event.ip_allowlist)
                if event.ip_allowlist
                else None
            ),
            windows=shared_windows.setdefault(windows, windows),
            grace=tuple(
                (bytes.fromhex(s.key_hash), s.expires_at.timestamp()) for s in event.retired_secrets
            ),
            version=event.version,
            name=event.name,
            test=event.environment is KeyEnvironment.TEST,
        )

    def allows_ip(self, ip: str) -> bool:
        """True when the key has no allowlist or `ip` is inside it."""
        if self.networks is None:
            return True
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)


Headers = tuple[tuple[str, str], ...]


class RouteRecord:
    """One route of an API, with its path template compiled and its lifecycle headers
    (the API's and its own deprecation merged) ready to send."""

    __slots__ = (
        "lifecycle_headers",
        "method",
        "pattern",
        "price",
        "route_id",
        "sandbox",
        "scopes",
        "sunset_s",
        "template",
        "windows",
    )

    def __init__(
        self,
        *,
        route_id: str,
        method: str,
        template: str,
        pattern: re.Pattern[str],
        price: int | None,
        windows: tuple[Window, ...],
        scopes: frozenset[str],
        sandbox: Sandbox | None = None,
        lifecycle_headers: Headers = (),
        sunset_s: float | None = None,
    ) -> None:
        self.route_id = route_id
        self.method = method
        self.template = template
        self.pattern = pattern
        self.price = price
        self.windows = windows
        self.scopes = scopes
        self.sandbox = sandbox or OFF
        # `Deprecation`/`Sunset` for answers to this route (the API's when it has none).
        self.lifecycle_headers = lifecycle_headers
        # The route's own Sunset (epoch seconds): from then on admission answers 410.
        self.sunset_s = sunset_s


class Sandbox:
    """Mock and validation behaviour of an API or route (a route's merged with its API's)."""

    __slots__ = (
        "active",
        "error_percent",
        "latency_s",
        "mock",
        "stateful",
        "validate_requests",
        "validate_responses",
    )

    def __init__(self, settings: SandboxSettings, base: Sandbox | None = None) -> None:
        def pick(value: Any, inherited: Any) -> Any:
            return inherited if value is None else value

        self.mock: bool = bool(pick(settings.mock, base.mock if base else False))
        self.stateful: bool = bool(pick(settings.mock_stateful, base.stateful if base else False))
        self.latency_s: float = (
            pick(settings.mock_latency_ms, base.latency_s * 1000 if base else 0) / 1000
        )
        self.error_percent: int = pick(
            settings.mock_error_percent, base.error_percent if base else 0
        )
        self.validate_requests: bool = bool(
            pick(settings.validate_requests, base.validate_requests if base else False)
        )
        self.validate_responses: bool = bool(
            pick(settings.validate_responses, base.validate_responses if base else False)
        )
        # What sends a live key's request off the plain proxy path.
        self.active = self.mock or self.validate_requests


OFF = Sandbox(SandboxSettings())
"""No mock, no validation: the plain proxy."""


_PARAM = re.compile(r"\{[^/{}]+\}")


def compile_template(template: str) -> re.Pattern[str]:
    """`/pets/{petId}` → a regex matching `/pets/42` (one segment per parameter)."""
    parts = _PARAM.split(template)
    return re.compile("^" + "[^/]+".join(re.escape(p) for p in parts) + "/?$")


def _http_date(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def lifecycle_headers(deprecated_since: datetime | None, sunset: datetime | None) -> Headers:
    """`Deprecation: @<epoch>` (RFC 9745) and `Sunset: <HTTP date>` (RFC 8594), formatted
    once per API version, at replay, never per request."""
    headers: list[tuple[str, str]] = []
    if deprecated_since is not None:
        headers.append(("Deprecation", f"@{int(deprecated_since.timestamp())}"))
    if sunset is not None:
        headers.append(("Sunset", _http_date(sunset)))
    return tuple(headers)


def _earliest(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None or second is None:
        return first or second
    return min(first, second)


class ApiRecord:
    """An API of the registry as the gateway serves it."""

    __slots__ = (
        "api_id",
        "charge_failed_calls",
        "contract",
        "credentials_broken",
        "lifecycle_headers",
        "price",
        "request_drop",
        "retired",
        "routes",
        "sandbox",
        "sandbox_base",
        "sandboxed",
        "slug",
        "timeout_s",
        "upstream_base",
        "upstream_headers",
        "version",
        "windows",
    )

    def __init__(self, event: ApiUpserted, sealer: Sealer | None) -> None:
        self.api_id = str(event.api_id)
        self.slug = event.slug
        self.upstream_base = event.upstream_url.rstrip("/")
        self.retired = event.status is ApiStatus.RETIRED
        self.timeout_s = event.timeout_ms / 1000
        self.price = event.price
        self.charge_failed_calls = event.charge_failed_calls
        self.windows = limit_windows(event.limits)
        self.version = event.version
        self.sandbox_base = event.sandbox_url.rstrip("/") if event.sandbox_url else None
        self.sandbox = Sandbox(event.sandbox) if event.sandbox != SandboxSettings() else OFF
        # Compiled once per API version, here (replay or live update), never per request.
        self.contract = compiled(self.api_id, event.openapi_document)
        deprecated_since = (
            (event.deprecated_at or event.updated_at)
            if event.status is ApiStatus.DEPRECATED
            else None
        )
        sunset = event.sunset_at if event.status is not ApiStatus.RETIRED else None
        self.lifecycle_headers = lifecycle_headers(deprecated_since, sunset)
        # Exact methods are tried before `*` so a specific route wins over a catch-all.
        ordered = sorted(event.routes, key=lambda r: r.method == "*")
        self.routes = tuple(
            RouteRecord(
                route_id=str(r.route_id),
                method=r.method,
                template=r.path_template,
                pattern=compile_template(r.path_template),
                price=r.price,
                windows=limit_windows(r.limits),
                scopes=frozenset(r.required_scopes),
                sandbox=(
                    Sandbox(r.sandbox, self.sandbox) if r.sandbox is not None else self.sandbox
                ),
                lifecycle_headers=(
                    # A route deprecated or sunset on its own: the earlier of its dates
                    # and the API's (the route is gone when either is).
                    lifecycle_headers(
                        _earliest(
                            deprecated_since,
                            (r.deprecated_at or event.updated_at) if r.deprecated else None,
                        ),
                        _earliest(sunset, r.sunset_at),
                    )
                    if r.deprecated or r.sunset_at is not None
                    else self.lifecycle_headers
                ),
                sunset_s=r.sunset_at.timestamp() if r.sunset_at is not None else None,
            )
            for r in ordered
        )
        # One attribute the request path reads: does any live call leave the plain proxy?
        self.sandboxed = self.sandbox.active or any(r.sandbox.active for r in self.routes)
        self.upstream_headers: tuple[tuple[str, str], ...] = ()
        self.credentials_broken = False
        if event.upstream_headers_sealed:
            try:
                self.upstream_headers = unseal_headers(event.upstream_headers_sealed, sealer)
            except ValueError:
                # Serving without the credentials would call the upstream anonymously;
                # the request path answers 502 instead (and the log says why).
                self.credentials_broken = True
        # Request fields never forwarded (the gateway's, and a client's copies of the
        # headers this API injects): made by the gate at this version's first request.
        self.request_drop: frozenset[str] | None = None

    def match_route(self, method: str, path: str) -> RouteRecord | None:
        """The first route whose method and template match (exact methods first).

        HEAD is GET without the body (RFC 9110 9.3.2): it takes a GET route's
        permissions, limits and price.
        """
        for route in self.routes:
            if (
                route.method == method
                or route.method == "*"
                or (route.method == "GET" and method == "HEAD")
            ) and route.pattern.match(path):
                return route
        return None


def compiled(api_id: str, document: dict[str, Any] | None) -> Contract | None:
    """The API's compiled OpenAPI document; None without one, or when it cannot be
    compiled at all (the replay goes on: the mock then answers 503, validation is off)."""
    if not document:
        return None
    try:
        return Contract.compile(document)
    except Exception:  # foreign data on the replay path: never stop the replay
        log.exception("OpenAPI document not compiled", extra={"api_id": api_id})
        return None


def unseal_headers(sealed: str, sealer: Sealer | None) -> tuple[tuple[str, str], ...]:
    """Open the sealed `{"Header-Name": "value"}` object of an API's upstream credentials."""
    if sealer is None:
        raise ValueError("no sealing keys configured")
    value: Any = orjson.loads(sealer.unseal(sealed))
    if not isinstance(value, dict):
        raise ValueError("sealed upstream headers are not a JSON object")
    headers: list[tuple[str, str]] = []
    for name, text in value.items():
        if not isinstance(name, str) or not isinstance(text, str):
            raise ValueError("sealed upstream headers must map strings to strings")
        if any(c in name + text for c in "\r\n\0") or not name or ":" in name:
            raise ValueError("sealed upstream header is malformed")
        headers.append((name, text))
    return tuple(headers)


class BalanceRecord:
    """Whether an org may still spend."""

    __slots__ = ("blocked", "version")

    def __init__(self, event: BalanceState) -> None:
        self.blocked = event.mode is BalanceMode.PREPAID and event.status is BalanceStatus.EXHAUSTED
        self.version = event.version
