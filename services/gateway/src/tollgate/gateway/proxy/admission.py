"""Admission: from the facts of one request to a decision, before anything is sent.

A pure function of the request's facts (API slug and normalised path, method,
headers, query, client IP, time, declared body length) and the replayed registry:
which API, key and route it is, what it costs, and what is forwarded of the query,
or the first refusal, in the order the README's table gives:

1. unknown API slug → 404; retired API → 410
2. missing, malformed, unknown or revoked key, or two different keys → 401; expired → 401
3. disabled key, client IP outside the key's allowlist, API not allowed for the key,
   no route of the API matches → 403; the matched route is past its Sunset → 410
   (`route-retired`); a scope the route requires missing → 403
4. org prepaid and out of credits → 402 (not for a test key: it is never charged)
5. declared body larger than the cap → 413

Rate limits (429) come after, in the gate: they count, and with the `redis` policy
they do I/O. This module does no I/O and keeps no state; a `Refusal` carries what was
known when it was decided (API, key, route), for the rejection event.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from aiohttp import hdrs
from multidict import CIMultiDictProxy

from tollgate.contracts.events.gateway import RejectionReason
from tollgate.gateway.proxy.headers import X_API_KEY, is_key_bearer, query_keys, strip_query_key
from tollgate.gateway.registry.records import ApiRecord, KeyRecord, RouteRecord
from tollgate.gateway.registry.store import Registry

# The kit's slug for a body over the cap (`tollgate.kit.service`): one vocabulary.
TOO_LARGE_SLUG = "too-large"


class Refusal(Exception):
    """The gateway answers itself: status, the event's reason, problem detail and slug,
    extra headers, and the API, key and route known when it was decided."""

    def __init__(
        self,
        status: int,
        reason: RejectionReason,
        detail: str,
        headers: list[tuple[str, str]] | None = None,
        slug: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.headers = headers or []
        self.slug = slug or reason.value.replace("_", "-")
        self.api: ApiRecord | None = None
        self.key: KeyRecord | None = None
        self.route: RouteRecord | None = None


class Admitted:
    """An admitted request: who calls what, at which price, and what is forwarded."""

    __slots__ = ("api", "key", "key_in_auth", "price", "query", "route")

    def __init__(
        self,
        api: ApiRecord,
        key: KeyRecord,
        route: RouteRecord | None,
        query: str,
        key_in_auth: bool,
    ) -> None:
        self.api = api
        self.key = key
        self.route = route
        self.price = price_of(api, route)
        self.query = query
        self.key_in_auth = key_in_auth


@functools.lru_cache(maxsize=4)
def _keyed(pepper: bytes) -> hmac.HMAC:
    """HMAC-SHA256 with the pepper's key schedule done once: each request copies it
    (about 1.5 µs against 3.5 for `hmac.digest`, which sets the key up every time)."""
    return hmac.new(pepper, digestmod=hashlib.sha256)


def key_digest(raw: str, pepper: bytes) -> bytes:
    """The 32-byte hash the registry indexes keys by, as accounts computes it."""
    if not pepper:
        return hashlib.sha256(raw.encode()).digest()
    mac = _keyed(pepper).copy()
    mac.update(raw.encode())
    return mac.digest()


def price_of(api: ApiRecord, route: RouteRecord | None) -> int:
    """Credits a successful call costs: the route's price, else the API's."""
    return route.price if route is not None and route.price is not None else api.price


def charged(api: ApiRecord, route: RouteRecord | None, status: int, *, free: bool = False) -> int:
    """Credits an answered call costs: 0 when `free` or for a 5xx (unless the API
    charges failed calls)."""
    if free or (status >= 500 and not api.charge_failed_calls):
        return 0
    return price_of(api, route)


def presented_key(headers: CIMultiDictProxy[str], query: str) -> tuple[str | None, str, bool]:
    """The key the request presents, the query without `api_key`, and whether an
    `Authorization` header carries a Tollgate key.

    Every carrier counts (each `X-API-Key`, each `Authorization: Bearer`, each `api_key`
    parameter); different keys in one request are refused. A bearer token that is no
    Tollgate key is forwarded (it is the upstream's) unless nothing else carries a key.
    """
    if hdrs.AUTHORIZATION not in headers and (
        not query or ("api_key" not in query and "%" not in query)
    ):
        # The common case: the key in X-API-Key only.
        single = headers.getall(X_API_KEY, ())
        if len(single) <= 1:
            return (single[0].strip() if single else None), query, False
    found: list[str] = []
    key_in_auth = False
    if X_API_KEY in headers:
        found.extend(v.strip() for v in headers.getall(X_API_KEY))
    if hdrs.AUTHORIZATION in headers:
        for value in headers.getall(hdrs.AUTHORIZATION):
            if value[:7].lower() == "bearer ":
                found.append(value[7:].strip())
                key_in_auth = key_in_auth or is_key_bearer(value)
    if query and ("api_key" in query or "%" in query):
        in_query = query_keys(query)
        if in_query:
            found.extend(in_query)
            query = strip_query_key(query)
    # Only values that look like Tollgate keys can conflict (`api_key=nothing` next to
    # a key is stripped, not a second key); without any, the first value is judged.
    keys = {value for value in found if value.startswith("tg_")}
    if len(keys) > 1:
        raise Refusal(
            401,
            RejectionReason.UNKNOWN_KEY,
            "The request carries more than one API key; send exactly one.",
            slug="conflicting-keys",
        )
    if keys:
        return keys.pop(), query, key_in_auth
    return next((value for value in found if value), None), query, key_in_auth


def admit(
    registry: Registry,
    *,
    slug: str,
    path: str,
    method: str,
    headers: CIMultiDictProxy[str],
    query: str,
    client_ip: str,
    now: float,
    content_length: int | None,
    pepper: bytes,
    max_body: int,
) -> Admitted:
    """Checks 1-5 for one request (`path`: normalised, below the API slug; `now`: epoch
    seconds); the first failing one raises its `Refusal`."""
    api = registry.api_for_slug(slug)
    if api is None:
        raise Refusal(404, RejectionReason.UNKNOWN_API, "No API is served at this path.")
    try:
        return _admit_to(
            api,
            registry,
            path,
            method,
            headers,
            query,
            client_ip,
            now,
            content_length,
            pepper,
            max_body,
        )
    except Refusal as refusal:
        refusal.api = api
        raise


def _admit_to(
    api: ApiRecord,
    registry: Registry,
    path: str,
    method: str,
    headers: CIMultiDictProxy[str],
    query: str,
    client_ip: str,
    now: float,
    content_length: int | None,
    pepper: bytes,
    max_body: int,
) -> Admitted:
    if api.retired:
        raise Refusal(410, RejectionReason.API_RETIRED, "This API has been retired.")
    raw, query, key_in_auth = presented_key(headers, query)
    if not raw:
        raise Refusal(401, RejectionReason.MISSING_KEY, "An API key is required.")
    # No format check first: only keys accounts issued (well formed) have a hash in the
    # registry, so a malformed key is an unknown one, and the hash is the cheaper test.
    key = registry.key_for_hash(key_digest(raw, pepper))
    if key is None:
        raise Refusal(401, RejectionReason.UNKNOWN_KEY, "The API key is not valid.")
    route: RouteRecord | None = None
    try:
        if key.revoked:
            raise Refusal(401, RejectionReason.UNKNOWN_KEY, "The API key has been revoked.")
        if key.expires_at is not None and now >= key.expires_at:
            raise Refusal(401, RejectionReason.EXPIRED_KEY, "The API key has expired.")
        if not key.enabled:
            raise Refusal(403, RejectionReason.DISABLED_KEY, "The API key is disabled.")
        if not key.allows_ip(client_ip):
            raise Refusal(
                403, RejectionReason.IP_NOT_ALLOWED, "The key may not be used from this address."
            )
        if key.allowed_api_ids is not None and api.api_id not in key.allowed_api_ids:
            raise Refusal(403, RejectionReason.API_NOT_ALLOWED, "The key may not call this API.")
        if api.routes:
            route = api.match_route(method, path)
            if route is None:
                raise Refusal(
                    403, RejectionReason.ROUTE_NOT_ALLOWED, "No route of this API matches."
                )
            if route.sunset_s is not None and now >= route.sunset_s:
                # The contract's reasons are a closed v1 enum: a retired route is told
                # apart from a retired API by its slug and the event's route id.
                raise Refusal(
                    410,
                    RejectionReason.API_RETIRED,
                    "This operation has been retired (see the Sunset header).",
                    slug="route-retired",
                )
            if route.scopes and not route.scopes <= key.scopes:
                raise Refusal(
                    403,
                    RejectionReason.SCOPE_MISSING,
                    "The key lacks a scope this route requires: "
                    + ", ".join(sorted(route.scopes - key.scopes)),
                )
        if not key.test and registry.org_blocked(key.org_id):
            raise Refusal(
                402, RejectionReason.CREDITS_EXHAUSTED, "The organisation has no credits left."
            )
        if content_length is not None and content_length > max_body:
            raise Refusal(
                413,
                RejectionReason.PAYLOAD_TOO_LARGE,
                f"Request bodies are limited to {max_body} bytes.",
                slug=TOO_LARGE_SLUG,
            )
    except Refusal as refusal:
        refusal.key = key
        refusal.route = route
        raise
    return Admitted(api, key, route, query, key_in_auth)
