"""Browsers on a listed origin (the portal's try-it panel) may call APIs through the
gateway; other origins get no CORS headers, and preflights never reach the upstream."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tollgate.kit import apikeys

from .inprocess import InProcessGateway, api_event, key_event

KEY = apikeys.generate().raw
PORTAL = "http://console.example:8085"


@pytest.fixture(scope="module")
def gw() -> Iterator[InProcessGateway]:
    gateway = InProcessGateway(
        lambda upstream: [api_event("open", upstream)],
        [key_event(KEY)],
        settings={"cors_origins": f"{PORTAL}, http://other.example"},
    )
    try:
        yield gateway
    finally:
        gateway.close()


def test_a_preflight_from_a_listed_origin_is_answered_without_a_key_or_the_upstream(
    gw: InProcessGateway,
) -> None:
    before, events = len(gw.seen), len(gw.publisher.events)
    reply = gw.request(
        "OPTIONS",
        "/open/echo",
        {
            "Origin": PORTAL,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type",
        },
    )
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == PORTAL
    assert reply.headers["access-control-allow-methods"] == "POST"
    assert reply.headers["access-control-allow-headers"] == "x-api-key, content-type"
    assert "access-control-allow-credentials" not in reply.headers
    assert len(gw.seen) == before  # the upstream never saw it
    assert len(gw.publisher.events) == events  # nothing recorded or billed


def test_answers_to_a_listed_origin_are_readable_and_expose_the_rate_limit_fields(
    gw: InProcessGateway,
) -> None:
    served = gw.request("GET", "/open/echo", {"Origin": PORTAL, "X-API-Key": KEY})
    assert served.status == 200
    assert served.headers["access-control-allow-origin"] == PORTAL
    assert "RateLimit" in served.headers["access-control-expose-headers"]
    refused = gw.request("GET", "/open/echo", {"Origin": PORTAL})
    assert refused.status == 401
    assert refused.headers["access-control-allow-origin"] == PORTAL


def test_an_unlisted_origin_gets_no_cors_headers(gw: InProcessGateway) -> None:
    preflight = gw.request(
        "OPTIONS",
        "/open/echo",
        {"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    served = gw.request("GET", "/open/echo", {"Origin": "http://evil.example", "X-API-Key": KEY})
    assert served.status == 200
    assert "access-control-allow-origin" not in served.headers
