"""What the gate's own answers carry: `WWW-Authenticate` on every 401, `Retry-After`
and the rate-limit fields on a 429, the kit's slug on a 413."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from tollgate.kit import apikeys

from .inprocess import InProcessGateway, api_event, key_event

KEY = apikeys.generate().raw


@pytest.fixture(scope="module")
def gw() -> Iterator[InProcessGateway]:
    gateway = InProcessGateway(
        lambda upstream: [api_event("open", upstream)],
        [key_event(KEY, limits={"per_minute": 1})],
        settings={"max_body_bytes": 1024},
    )
    try:
        yield gateway
    finally:
        gateway.close()


@pytest.mark.parametrize(
    "headers", [{}, {"X-API-Key": "tg_live_x"}, {"X-API-Key": apikeys.generate().raw}]
)
def test_every_401_names_the_key_schemes(gw: InProcessGateway, headers: dict[str, str]) -> None:
    reply = gw.request("GET", "/open/x", headers)
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == 'ApiKey realm="tollgate", Bearer realm="tollgate"'


def test_413_uses_the_kits_slug(gw: InProcessGateway) -> None:
    reply = gw.request("POST", "/open/x", {"X-API-Key": KEY}, body=b"x" * 1025)
    assert reply.status == 413
    assert orjson.loads(reply.body)["type"].endswith("/too-large")


def test_429_says_when_to_retry(gw: InProcessGateway) -> None:
    first = gw.request("GET", "/open/x", {"X-API-Key": KEY})
    assert first.status == 200
    assert first.headers["ratelimit-remaining"] == "0"
    # draft-ietf-httpapi-ratelimit-headers-11: each named policy's remaining and reset.
    assert first.headers["ratelimit"].startswith('"key-minute";r=0;t=')
    refused = gw.request("GET", "/open/x", {"X-API-Key": KEY})
    assert refused.status == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 66
    assert refused.headers["x-ratelimit-limit"] == "1"
    assert orjson.loads(refused.body)["type"].endswith("/rate-limited")
