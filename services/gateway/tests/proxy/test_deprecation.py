"""Deprecation of an API and of single operations (routes): `Deprecation` (RFC 9745) and
`Sunset` (RFC 8594) on every answer for a deprecated route, 410 problem+json once the
route's Sunset has passed, and nothing for the API's other routes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tollgate.contracts.events.accounts import ApiStatus
from tollgate.kit import apikeys

from .inprocess import InProcessGateway, api_event, key_event

KEY = apikeys.generate().raw
DEPRECATED_AT = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
API_DEPRECATED_AT = datetime(2026, 3, 1, tzinfo=UTC)
SUNSET = (datetime.now(UTC) + timedelta(days=60)).replace(microsecond=0)
API_SUNSET = SUNSET + timedelta(days=30)


def route(method: str, path: str, **fields: object) -> dict[str, object]:
    return {"route_id": uuid.uuid4(), "method": method, "path_template": path, **fields}


@pytest.fixture(scope="module")
def gw() -> Iterator[InProcessGateway]:
    gateway = InProcessGateway(
        lambda upstream: [
            api_event(
                "shop",
                upstream,
                routes=[
                    route(
                        "GET",
                        "/v1/items",
                        deprecated=True,
                        deprecated_at=DEPRECATED_AT,
                        sunset_at=SUNSET,
                    ),
                    route("GET", "/v1/orders", deprecated=True, deprecated_at=DEPRECATED_AT),
                    route(
                        "GET",
                        "/v0/items",
                        deprecated=True,
                        sunset_at=datetime.now(UTC) - timedelta(seconds=1),
                    ),
                    route("GET", "/v2/items"),
                    route(
                        "GET",
                        "/v1/reports",
                        deprecated=True,
                        deprecated_at=DEPRECATED_AT,
                        required_scopes=["reports:read"],
                    ),
                ],
            ),
            api_event(
                "legacy",
                upstream,
                status=ApiStatus.DEPRECATED,
                deprecated_at=API_DEPRECATED_AT,
                sunset_at=API_SUNSET,
                routes=[
                    route(
                        "GET",
                        "/early",
                        deprecated=True,
                        deprecated_at=DEPRECATED_AT,
                        sunset_at=SUNSET,
                    ),
                    route("GET", "/plain"),
                ],
            ),
        ],
        [key_event(KEY)],
    )
    try:
        yield gateway
    finally:
        gateway.close()


def http_date(value: datetime) -> str:
    return value.strftime("%a, %d %b %Y %H:%M:%S GMT")


def test_a_deprecated_route_says_so_and_when_it_goes(gw: InProcessGateway) -> None:
    reply = gw.request("GET", "/shop/v1/items", {"X-API-Key": KEY})
    assert reply.status == 200
    assert reply.headers["deprecation"] == f"@{int(DEPRECATED_AT.timestamp())}"
    assert reply.headers["sunset"] == http_date(SUNSET)
    without_date = gw.request("GET", "/shop/v1/orders", {"X-API-Key": KEY})
    assert without_date.headers["deprecation"] == f"@{int(DEPRECATED_AT.timestamp())}"
    assert "sunset" not in without_date.headers


def test_the_apis_other_routes_are_unaffected(gw: InProcessGateway) -> None:
    reply = gw.request("GET", "/shop/v2/items", {"X-API-Key": KEY})
    assert reply.status == 200
    assert "deprecation" not in reply.headers
    assert "sunset" not in reply.headers


def test_refusals_after_the_route_is_known_carry_the_headers_too(
    gw: InProcessGateway,
) -> None:
    # A caller refused on a deprecated route still learns that it is going away.
    reply = gw.request("GET", "/shop/v1/reports", {"X-API-Key": KEY})
    assert reply.status == 403
    assert orjson.loads(reply.body)["type"].endswith("/scope-missing")
    assert reply.headers["deprecation"] == f"@{int(DEPRECATED_AT.timestamp())}"


def test_after_its_sunset_a_route_is_gone_with_a_problem(gw: InProcessGateway) -> None:
    before = len(gw.seen)
    reply = gw.request("GET", "/shop/v0/items", {"X-API-Key": KEY})
    assert reply.status == 410
    assert reply.headers["content-type"] == "application/problem+json"
    problem = orjson.loads(reply.body)
    assert problem["status"] == 410
    assert problem["type"].endswith("/route-retired")
    assert len(gw.seen) == before  # never forwarded
    event_type, data = gw.publisher.events[-1]
    assert event_type.endswith("request.rejected.v1")
    assert (data["status"], data["reason"]) == (410, "api_retired")
    assert data["route_id"] is not None


def test_a_route_of_a_deprecated_api_takes_the_earlier_dates(gw: InProcessGateway) -> None:
    early = gw.request("GET", "/legacy/early", {"X-API-Key": KEY})
    assert early.headers["deprecation"] == f"@{int(DEPRECATED_AT.timestamp())}"
    assert early.headers["sunset"] == http_date(SUNSET)
    plain = gw.request("GET", "/legacy/plain", {"X-API-Key": KEY})
    assert plain.headers["deprecation"] == f"@{int(API_DEPRECATED_AT.timestamp())}"
    assert plain.headers["sunset"] == http_date(API_SUNSET)
