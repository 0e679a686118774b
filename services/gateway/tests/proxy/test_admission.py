"""Admission as a pure function: every decision path, from request facts to a decision."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from tollgate.contracts.events.accounts import ApiStatus
from tollgate.contracts.events.billing import BalanceMode, BalanceState, BalanceStatus
from tollgate.contracts.events.gateway import RejectionReason
from tollgate.gateway.proxy.admission import Admitted, Refusal, admit, charged
from tollgate.gateway.registry.store import Registry
from tollgate.kit import apikeys
from tollgate.kit.sealing import Sealer

from .inprocess import PEPPER, SEALING_KEY, api_event, key_event

KEY = apikeys.generate().raw
UPSTREAM = "http://upstream.example"


def registry_with(api: dict[str, Any] | None = None, key: dict[str, Any] | None = None) -> Registry:
    registry = Registry(Sealer(SEALING_KEY))
    event = api_event("shop", UPSTREAM, **(api or {}))
    registry.apply_api(str(event.api_id), event)
    k = key_event(KEY, **(key or {}))
    registry.apply_key(str(k.key_id), k)
    return registry


def decide(
    registry: Registry,
    *,
    slug: str = "shop",
    path: str = "/items/1",
    method: str = "GET",
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    query: str = "",
    client_ip: str = "203.0.113.7",
    content_length: int | None = None,
) -> Admitted:
    given = headers if headers is not None else {"X-API-Key": KEY}
    return admit(
        registry,
        slug=slug,
        path=path,
        method=method,
        headers=CIMultiDictProxy(CIMultiDict(given)),
        query=query,
        client_ip=client_ip,
        now=time.time(),
        content_length=content_length,
        pepper=PEPPER.encode(),
        max_body=1000,
    )


def refused(registry: Registry, **facts: Any) -> Refusal:
    with pytest.raises(Refusal) as caught:
        decide(registry, **facts)
    return caught.value


# Refusals decided once the key was found (a revoked key is found, then refused).
KEY_KNOWN = {
    "expired-key",
    "disabled-key",
    "ip-not-allowed",
    "api-not-allowed",
    "route-not-allowed",
    "scope-missing",
    "route-retired",
    "too-large",
}

ROUTES = {
    "routes": [
        {
            "route_id": uuid.uuid4(),
            "method": "GET",
            "path_template": "/items/{id}",
            "price": 5,
        },
        {
            "route_id": uuid.uuid4(),
            "method": "POST",
            "path_template": "/items",
            "required_scopes": ["items:write"],
        },
    ]
}


def test_admitted_with_route_price_and_query_without_key() -> None:
    admitted = decide(registry_with(ROUTES), headers={}, query=f"api_key={KEY}&q=1")
    assert admitted.route is not None
    assert admitted.price == 5
    assert admitted.query == "q=1"
    assert not admitted.key_in_auth
    assert charged(admitted.api, admitted.route, 200) == 5
    assert charged(admitted.api, admitted.route, 502) == 0
    assert charged(admitted.api, admitted.route, 200, free=True) == 0


def test_api_price_without_routes_and_bearer_carrier() -> None:
    admitted = decide(registry_with(), headers={"Authorization": f"Bearer {KEY}"})
    assert admitted.route is None
    assert admitted.price == 1
    assert admitted.key_in_auth


@pytest.mark.parametrize(
    ("api", "key", "facts", "status", "reason", "slug"),
    [
        ({}, {}, {"slug": "nope"}, 404, RejectionReason.UNKNOWN_API, "unknown-api"),
        ({"status": ApiStatus.RETIRED}, {}, {}, 410, RejectionReason.API_RETIRED, "api-retired"),
        ({}, {}, {"headers": {}}, 401, RejectionReason.MISSING_KEY, "missing-key"),
        (
            {},
            {},
            {"headers": {"X-API-Key": "tg_live_nonsense"}},
            401,
            RejectionReason.UNKNOWN_KEY,
            "unknown-key",
        ),
        (
            {},
            {},
            {"headers": {"X-API-Key": apikeys.generate().raw}},
            401,
            RejectionReason.UNKNOWN_KEY,
            "unknown-key",
        ),
        ({}, {"revoked": True}, {}, 401, RejectionReason.UNKNOWN_KEY, "unknown-key"),
        (
            {},
            {},
            {"headers": [("X-API-Key", KEY), ("X-API-Key", apikeys.generate().raw)]},
            401,
            RejectionReason.UNKNOWN_KEY,
            "conflicting-keys",
        ),
        (
            {},
            {"expires_at": datetime.now(UTC) - timedelta(seconds=1)},
            {},
            401,
            RejectionReason.EXPIRED_KEY,
            "expired-key",
        ),
        ({}, {"enabled": False}, {}, 403, RejectionReason.DISABLED_KEY, "disabled-key"),
        (
            {},
            {"ip_allowlist": ["10.0.0.0/8"]},
            {},
            403,
            RejectionReason.IP_NOT_ALLOWED,
            "ip-not-allowed",
        ),
        (
            {},
            {"allowed_api_ids": [uuid.uuid4()]},
            {},
            403,
            RejectionReason.API_NOT_ALLOWED,
            "api-not-allowed",
        ),
        (
            ROUTES,
            {},
            {"path": "/other"},
            403,
            RejectionReason.ROUTE_NOT_ALLOWED,
            "route-not-allowed",
        ),
        (
            ROUTES,
            {},
            {"path": "/items", "method": "POST"},
            403,
            RejectionReason.SCOPE_MISSING,
            "scope-missing",
        ),
        (
            {
                "routes": [
                    {
                        "route_id": uuid.uuid4(),
                        "method": "GET",
                        "path_template": "/items/{id}",
                        "deprecated": True,
                        "sunset_at": datetime.now(UTC) - timedelta(seconds=1),
                    }
                ]
            },
            {},
            {},
            410,
            RejectionReason.API_RETIRED,
            "route-retired",
        ),
        ({}, {}, {"content_length": 1001}, 413, RejectionReason.PAYLOAD_TOO_LARGE, "too-large"),
    ],
)
def test_every_refusal(
    api: dict[str, Any],
    key: dict[str, Any],
    facts: dict[str, Any],
    status: int,
    reason: RejectionReason,
    slug: str,
) -> None:
    refusal = refused(registry_with(api, key), **facts)
    assert (refusal.status, refusal.reason, refusal.slug) == (status, reason, slug)
    # What was known goes on the rejection event.
    assert (refusal.api is not None) == (status != 404)
    assert (refusal.key is not None) == (slug in KEY_KNOWN or bool(key.get("revoked")))


def test_exhausted_prepaid_org_is_402_and_postpaid_is_admitted() -> None:
    org = uuid.uuid4()
    for mode, expected in ((BalanceMode.PREPAID, 402), (BalanceMode.POSTPAID, None)):
        registry = registry_with(key={"org_id": org})
        registry.apply_balance(
            str(org),
            BalanceState(
                org_id=org,
                balance=0,
                status=BalanceStatus.EXHAUSTED,
                mode=mode,
                low_threshold=0,
                version=1,
                as_of=datetime.now(UTC),
            ),
        )
        if expected is None:
            decide(registry)
        else:
            refusal = refused(registry)
            assert (refusal.status, refusal.reason) == (402, RejectionReason.CREDITS_EXHAUSTED)
