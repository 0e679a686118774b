"""Every carrier of a Tollgate key is stripped before forwarding, whichever one
authenticated, and a request carrying two different keys is refused (issue #10)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tollgate.kit import apikeys

from .inprocess import InProcessGateway, api_event, key_event

KEY = apikeys.generate().raw
OTHER = apikeys.generate().raw


def carrier_id(value: object) -> str:
    """Test ids name the keys, not their random values: parallel workers collect alike."""
    return str(value).replace(KEY, "KEY").replace(OTHER, "OTHER")


@pytest.fixture(scope="module")
def gw() -> Iterator[InProcessGateway]:
    gateway = InProcessGateway(
        lambda upstream: [api_event("open", upstream)], [key_event(KEY), key_event(OTHER)]
    )
    try:
        yield gateway
    finally:
        gateway.close()


def carried(gw: InProcessGateway) -> list[str]:
    """Every place the last upstream request still holds a Tollgate key."""
    seen = gw.seen[-1]
    found = [name for name, value in seen.headers.items() if "tg_" in value]
    if "tg_" in seen.raw_path:
        found.append("query")
    return found


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"X-API-Key": KEY, "Authorization": f"Bearer {KEY}"}, ""),
        ({"X-API-Key": KEY}, f"?api_key={KEY}"),
        ({"Authorization": f"Bearer {KEY}"}, f"?api_key={KEY}&x=1"),
        ({"Authorization": f"bearer {KEY}"}, ""),
        ({}, f"?api_key={KEY}&api%5Fkey={KEY}"),
        ({"X-API-Key": KEY}, f"?%61pi_key={KEY}"),
    ],
    ids=carrier_id,
)
def test_no_carrier_reaches_the_upstream(
    gw: InProcessGateway, headers: dict[str, str], query: str
) -> None:
    reply = gw.request("GET", "/open/echo" + query, headers)
    assert reply.status == 200, reply.body
    assert carried(gw) == []


def test_the_upstreams_own_authorization_still_passes(gw: InProcessGateway) -> None:
    reply = gw.request(
        "GET", "/open/echo?b=2", {"X-API-Key": KEY, "Authorization": "Bearer upstream-token"}
    )
    assert reply.status == 200
    assert gw.seen[-1].headers["Authorization"] == "Bearer upstream-token"
    assert gw.seen[-1].raw_path == "/echo?b=2"


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"X-API-Key": KEY, "Authorization": f"Bearer {OTHER}"}, ""),
        ({"X-API-Key": KEY}, f"?api_key={OTHER}"),
        ({"Authorization": f"Bearer {KEY}"}, f"?api_key={OTHER}"),
        ({}, f"?api_key={KEY}&api_key={OTHER}"),
        ({"X-API-Key": KEY}, f"?api%5Fkey={OTHER}"),
    ],
    ids=carrier_id,
)
def test_two_different_keys_are_refused(
    gw: InProcessGateway, headers: dict[str, str], query: str
) -> None:
    before = len(gw.seen)
    reply = gw.request("GET", "/open/echo" + query, headers)
    assert reply.status == 401, reply.body
    assert b"conflicting-keys" in reply.body
    assert len(gw.seen) == before


def test_two_x_api_key_headers_with_different_keys_are_refused(gw: InProcessGateway) -> None:
    before = len(gw.seen)
    target = "/open/echo"
    lines = [f"X-API-Key: {KEY}", f"X-API-Key: {OTHER}"]
    reply = gw.request("GET", target, {"X-Extra": "1\r\n" + "\r\n".join(lines).rstrip()})
    assert reply.status == 401, reply.body
    assert len(gw.seen) == before


def test_the_upstream_gets_the_clients_user_agent_or_the_gateways(gw: InProcessGateway) -> None:
    assert gw.request("GET", "/open/echo", {"X-API-Key": KEY}).status == 200
    assert gw.seen[-1].headers["User-Agent"] == "tollgate-gateway"
    headers = {"X-API-Key": KEY, "User-Agent": "curl/8.0 (user-agent: x)"}
    assert gw.request("GET", "/open/echo?q=user-agent:", headers).status == 200
    assert gw.seen[-1].headers["User-Agent"] == "curl/8.0 (user-agent: x)"
