"""Every decision of the gateway's request path, against a real upstream process and
the real broker: status, problem+json body with the request id, headers in both
directions, and exactly one request event per request."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from tollgate.contracts.decoding import decode
from tollgate.contracts.events.accounts import ApiStatus
from tollgate.contracts.events.billing import BalanceMode, BalanceStatus
from tollgate.kit import apikeys, localdeps
from tollgate.kit.sealing import Sealer, new_sealing_key
from tollgate.kit.testing import unique_name

from .gateway_support import (
    StatePublisher,
    api_event,
    balance_event,
    gateway,
    key_event,
    now,
    start_upstream,
    wait_events,
)

pytestmark = pytest.mark.system(timed=False)
MAX_BODY = 65_536


@dataclass
class Stack:
    url: str
    bootstrap: str
    prefix: str
    keys: dict[str, str]
    ids: dict[str, uuid.UUID]
    pid: int
    seen: list[str] = field(default_factory=list)

    async def call(
        self, method: str, path: str, key: str | None = None, **kwargs: object
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})  # type: ignore[call-overload]
        if key is not None:
            headers["X-API-Key"] = self.keys.get(key, key)
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            response = await client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        self.seen.append(response.headers["x-request-id"])
        return response


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Iterator[Stack]:
    workdir: Path = tmp_path_factory.mktemp("gateway-decisions")
    prefix = unique_name("t", sep="") + "."
    upstream = start_upstream(workdir)
    sealing_key = new_sealing_key()
    org_a, org_b, org_c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    keys = {
        name: apikeys.generate().raw
        for name in (
            "good",
            "disabled",
            "revoked",
            "expired",
            "ip",
            "apionly",
            "scoped",
            "broke",
            "postpaid",
            "limited",
            "rotated",
            "old_secret",
        )
    }
    ids = {name: uuid.uuid4() for name in ("shop", "open", "old", "gone", "dead", "hello_route")}
    sealed = Sealer(sealing_key).seal(orjson.dumps({"X-Upstream-Token": "s3cret"}))
    closed_port = localdeps.free_port()
    apis = [
        api_event(
            "shop",
            upstream.url,
            api_id=ids["shop"],
            timeout_ms=500,
            upstream_headers_sealed=sealed,
            routes=[
                {
                    "route_id": ids["hello_route"],
                    "method": "GET",
                    "path_template": "/hello",
                    "price": 3,
                },
                {"route_id": uuid.uuid4(), "method": "*", "path_template": "/echo/{thing}"},
                {
                    "route_id": uuid.uuid4(),
                    "method": "GET",
                    "path_template": "/admin/{x}",
                    "required_scopes": ["admin"],
                },
                {"route_id": uuid.uuid4(), "method": "GET", "path_template": "/slow"},
                {"route_id": uuid.uuid4(), "method": "GET", "path_template": "/status/{code}"},
                {"route_id": uuid.uuid4(), "method": "GET", "path_template": "/bytes/{n}"},
            ],
        ),
        api_event("open", upstream.url, api_id=ids["open"], price=0),
        api_event(
            "old",
            upstream.url,
            api_id=ids["old"],
            status=ApiStatus.DEPRECATED,
            deprecated_at=now() - timedelta(days=1),
            sunset_at=now() + timedelta(days=30),
        ),
        api_event("gone", upstream.url, api_id=ids["gone"], status=ApiStatus.RETIRED),
        api_event("dead", f"http://127.0.0.1:{closed_port}", api_id=ids["dead"]),
    ]
    k = keys
    key_events = [
        key_event(org_a, k["good"]),
        key_event(org_a, k["disabled"], enabled=False),
        key_event(org_a, k["revoked"], revoked=True),
        key_event(org_a, k["expired"], expires_at=now() - timedelta(minutes=1)),
        key_event(org_a, k["ip"], ip_allowlist=["10.0.0.0/8"]),
        key_event(org_a, k["apionly"], allowed_api_ids=[ids["open"]]),
        key_event(org_a, k["scoped"], scopes=["admin"]),
        key_event(org_b, k["broke"]),
        key_event(org_c, k["postpaid"]),
        key_event(org_a, k["limited"], limits={"per_minute": 3}),
        key_event(
            org_a,
            k["rotated"],
            retired_secrets=[
                {
                    "key_hash": apikeys.hash_key(k["old_secret"], "test-pepper-for-gateway"),
                    "expires_at": now() + timedelta(hours=1),
                }
            ],
        ),
    ]
    balances = [
        balance_event(org_b, BalanceStatus.EXHAUSTED, version=1),
        balance_event(org_c, BalanceStatus.EXHAUSTED, version=1, mode=BalanceMode.POSTPAID),
    ]

    async def publish() -> None:
        async with StatePublisher(kafka_bootstrap, prefix) as state:
            await state.publish(*apis, *key_events, *balances)

    asyncio.run(publish())
    service = gateway(
        workdir,
        kafka_bootstrap,
        prefix,
        {"SEALING_KEYS": sealing_key, "MAX_BODY_BYTES": str(MAX_BODY)},
    )
    service.start()
    assert service.proc is not None
    try:
        yield Stack(service.url, kafka_bootstrap, prefix, keys, ids, service.proc.pid)
    finally:
        service.stop()
        upstream.stop()


def problem(response: httpx.Response) -> dict[str, object]:
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["status"] == response.status_code
    return body


async def test_forwards_with_credentials_and_without_the_key(stack: Stack) -> None:
    trace = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    response = await stack.call(
        "POST",
        "/shop/echo/thing?a=1&api_key=nothing&b=2",
        "good",
        content=b"x" * 1000,
        headers={
            "traceparent": trace,
            "tracestate": "vendor=abc",
            "X-Upstream-Token": "forged",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "1",
            "X-Forwarded-For": "6.6.6.6",
        },
    )
    assert response.status_code == 200
    seen = response.json()
    assert seen["method"] == "POST"
    assert seen["path"] == "/echo/thing"
    assert seen["query"] == "a=1&b=2"
    assert seen["body_bytes"] == 1000
    upstream_headers = seen["headers"]
    assert "x-api-key" not in upstream_headers
    assert "x-hop" not in upstream_headers
    assert upstream_headers["x-upstream-token"] == "s3cret"
    assert upstream_headers["x-forwarded-for"] == "127.0.0.1"
    assert upstream_headers["x-forwarded-proto"] == "http"
    assert upstream_headers["x-forwarded-host"].startswith("127.0.0.1:")
    assert upstream_headers["x-request-id"] == response.headers["x-request-id"]
    assert upstream_headers["traceparent"].startswith("00-" + "ab" * 16 + "-")
    assert upstream_headers["traceparent"] != trace
    assert upstream_headers["tracestate"] == "vendor=abc"
    assert "x-upstream-token" not in response.headers


async def test_key_from_bearer_and_query_is_stripped(stack: Stack) -> None:
    bearer = await stack.call(
        "GET", "/open/echo/x", headers={"Authorization": f"Bearer {stack.keys['good']}"}
    )
    assert bearer.status_code == 200
    assert "authorization" not in bearer.json()["headers"]
    query = await stack.call("GET", f"/open/echo/x?api_key={stack.keys['good']}&keep=1")
    assert query.status_code == 200
    assert query.json()["query"] == "keep=1"


async def test_rotated_key_accepts_the_old_secret_in_its_grace_period(stack: Stack) -> None:
    assert (await stack.call("GET", "/open/hello", "rotated")).status_code == 200
    assert (await stack.call("GET", "/open/hello", "old_secret")).status_code == 200


@pytest.mark.parametrize(
    ("path", "key", "status", "slug"),
    [
        ("/nope/hello", "good", 404, "unknown-api"),
        ("/gone/hello", "good", 410, "api-retired"),
        ("/shop/hello", None, 401, "missing-key"),
        ("/shop/hello", "tg_live_notavalidkeyatall000000000", 401, "unknown-key"),
        ("/shop/hello", "unknown", 401, "unknown-key"),
        ("/shop/hello", "revoked", 401, "unknown-key"),
        ("/shop/hello", "expired", 401, "expired-key"),
        ("/shop/hello", "disabled", 403, "disabled-key"),
        ("/shop/hello", "ip", 403, "ip-not-allowed"),
        ("/shop/hello", "apionly", 403, "api-not-allowed"),
        ("/shop/not/a/route", "good", 403, "route-not-allowed"),
        ("/shop/admin/1", "good", 403, "scope-missing"),
        ("/shop/hello", "broke", 402, "credits-exhausted"),
    ],
)
async def test_refusals(stack: Stack, path: str, key: str | None, status: int, slug: str) -> None:
    if key == "unknown":
        key = apikeys.generate().raw  # well formed, never issued
    response = await stack.call("GET", path, key)
    assert response.status_code == status
    body = problem(response)
    assert body["type"] == f"https://tollgate.dev/problems/{slug}"


async def test_scoped_key_and_postpaid_org_pass(stack: Stack) -> None:
    assert (await stack.call("GET", "/shop/admin/1", "scoped")).status_code == 404  # upstream's
    assert (await stack.call("GET", "/shop/hello", "postpaid")).status_code == 200


async def test_rate_limit_headers_and_429(stack: Stack) -> None:
    answers = [await stack.call("GET", "/open/hello", "limited") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    first = answers[0].headers
    assert first["ratelimit-limit"] == "3"
    assert first["ratelimit-remaining"] == "2"
    assert first["ratelimit-policy"] == '"key-minute";q=3;w=60'
    assert first["ratelimit"].startswith('"key-minute";r=2;t=')
    assert first["x-ratelimit-limit"] == "3"
    assert 1 <= int(first["ratelimit-reset"]) <= 66  # a window plus one slot
    assert answers[2].headers["ratelimit-remaining"] == "0"
    refused = answers[3]
    problem(refused)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"


async def test_deprecated_api_carries_deprecation_and_sunset(stack: Stack) -> None:
    response = await stack.call("GET", "/old/hello", "good")
    assert response.status_code == 200
    assert response.headers["deprecation"].startswith("@")
    assert response.headers["sunset"].endswith("GMT")


async def test_upstream_failures(stack: Stack) -> None:
    slow = await stack.call("GET", "/shop/slow?ms=3000", "good")
    assert slow.status_code == 504
    problem(slow)
    dead = await stack.call("GET", "/dead/hello", "good")
    assert dead.status_code == 502
    problem(dead)
    relayed = await stack.call("GET", "/shop/status/503", "good")
    assert relayed.status_code == 503  # the upstream's own answer, relayed


async def test_body_cap(stack: Stack) -> None:
    declared = await stack.call("POST", "/open/echo/x", "good", content=b"x" * (MAX_BODY + 1))
    assert declared.status_code == 413
    problem(declared)

    async def chunks() -> object:
        for _ in range(4):
            yield b"y" * 32_768

    streamed = await stack.call("POST", "/open/echo/x", "good", content=chunks())
    assert streamed.status_code == 413


async def test_large_download_streams(stack: Stack) -> None:
    size = 30_000_000
    process = psutil.Process(stack.pid)
    before = process.memory_info().rss
    received = 0
    async with (
        httpx.AsyncClient(base_url=stack.url, timeout=30) as client,
        client.stream(
            "GET", f"/shop/bytes/{size}", headers={"X-API-Key": stack.keys["good"]}
        ) as response,
    ):
        stack.seen.append(response.headers["x-request-id"])
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            received += len(chunk)
    assert received == size
    assert process.memory_info().rss - before < size // 2


async def test_head_passes_through_without_a_body_and_keeps_the_connection(
    stack: Stack,
) -> None:
    headers = {"X-API-Key": stack.keys["good"]}
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        head = await client.head("/shop/bytes/5000", headers=headers)
        # The same keep-alive connection must still be in step after a bodiless answer.
        after = await client.get("/shop/bytes/7", headers=headers)
    stack.seen += [head.headers["x-request-id"], after.headers["x-request-id"]]
    assert head.status_code == 200
    assert head.headers["content-length"] == "5000"
    assert head.content == b""
    assert after.status_code == 200
    assert after.content == b"x" * 7


async def test_expect_continue_is_answered_once_admitted(stack: Stack) -> None:
    host, port = stack.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            (
                "POST /open/echo/x HTTP/1.1\r\n"
                f"Host: {host}\r\nX-API-Key: {stack.keys['good']}\r\n"
                "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert interim.startswith(b"HTTP/1.1 100")
        writer.write(b"hello")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        request_id = next(
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"x-request-id:")
        )
        stack.seen.append(request_id)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_one_event_per_request(stack: Stack) -> None:
    events = await wait_events(stack.bootstrap, stack.prefix, len(stack.seen))
    ids = [e["id"] for e in events]
    assert sorted(ids) == sorted(stack.seen)
    by_id = {e["id"]: decode(orjson.dumps(e)) for e in events}
    hello = [
        ev.data
        for ev in by_id.values()
        if getattr(ev.data, "route_id", None) == stack.ids["hello_route"] and ev.data.status == 200  # type: ignore[attr-defined]
    ]
    assert hello
    assert all(h.cost == 3 for h in hello)  # type: ignore[attr-defined]
    failed = [ev.data for ev in by_id.values() if getattr(ev.data, "status", 0) >= 500]
    assert failed
    assert all(getattr(f, "cost", 0) == 0 for f in failed)
    reasons = {getattr(ev.data, "reason", None) for ev in by_id.values()} - {None}
    assert {"unknown_api", "missing_key", "credits_exhausted", "rate_limited"} <= {
        str(r) for r in reasons
    }
    for event in events:
        assert "?" not in event["data"]["path"]
        assert "api_key" not in orjson.dumps(event).decode()
