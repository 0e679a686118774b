"""A request head is bounded as a whole (`max_head_bytes`), not only field by field:
aiohttp's parser allows 128 fields of 16 KiB, so a client could have 2 MiB heads held
and forwarded on each of its connections."""

from __future__ import annotations

import orjson

from tollgate.kit import apikeys

from .inprocess import InProcessGateway, api_event, key_event

KEY = apikeys.generate().raw


def test_a_head_past_the_limit_is_431_and_never_forwarded() -> None:
    gw = InProcessGateway(
        lambda upstream: [api_event("open", upstream)], [key_event(KEY)], {"max_head_bytes": 16_384}
    )
    try:
        fields = {f"X-Filler-{i}": "v" * 2_000 for i in range(10)}  # 20 KB, each field small
        refused = gw.request("GET", "/open/x", {"X-API-Key": KEY, **fields})
        within = gw.request("GET", "/open/x", {"X-API-Key": KEY, **dict(list(fields.items())[:6])})
    finally:
        gw.close()
    assert refused.status == 431, refused.body
    assert refused.headers["content-type"] == "application/problem+json"
    problem = orjson.loads(refused.body)
    assert problem["type"].endswith("/head-too-large")
    assert problem["request_id"] == refused.headers["x-request-id"]
    assert KEY not in refused.body.decode()
    assert within.status == 200
    assert len(gw.seen) == 1  # only the request within the limit reached the upstream
    assert [kind for kind, _ in gw.publisher.events] == ["tollgate.gateway.request.completed.v1"]
