"""The usage API end to end, in process: events produced to the real broker, taken in
by the real consumer into a real Postgres, read back over HTTP.

Percentiles from the API are within 1 % of the exact nearest-rank percentiles of the
raw latencies (a long-tailed set spread over keys, routes and hours, so the answer
merges many histograms); every route hides another org's data; rejections, gaps,
pagination and the live stream behave as documented.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from tollgate.contracts import topics
from tollgate.contracts.events.gateway import RequestCompleted, RequestRejected
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.kafka import make_producer, topic_name
from tollgate.kit.testing.pages import check_list_contract
from tollgate.kit.testing.polling import eventually
from tollgate.kit.testing.tokens import TokenMint
from tollgate.usage import histogram
from tollgate.usage.app import create_app
from tollgate.usage.config import Settings
from tollgate.usage.ingest.service import Delivery, record_requests
from tollgate.usage.retention.jobs import policy_from
from tollgate.usage.retention.service import PartitionDays, enforce_retention, ensure_partitions

from ..factories import completed, encoded, long_tail_latency, migrated, rejected

Event = RequestCompleted | RequestRejected


def settings_for(database_url: str, kafka_bootstrap: str, topic_prefix: str) -> Settings:
    return Settings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=topic_prefix,
        kafka_enable_idempotence=False,
        kafka_session_timeout_ms=3000,
        kafka_heartbeat_interval_ms=1000,
        live_max_stream_seconds=2,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings, mint: TokenMint) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings, jwt_verifier=mint.verifier())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://usage") as client:
            yield client


async def produce(settings: Settings, events: list[Event]) -> None:
    producer = make_producer(settings, client="api-test")
    await producer.start()
    try:
        topic = topic_name(topics.GATEWAY_REQUESTS, settings)
        sends = [
            await producer.send(
                topic, value=encoded(e), key=str(e.org_id).encode() if e.org_id else None
            )
            for e in events
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def exact(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[histogram.rank_of(q, len(ordered)) - 1]


async def ingested(client: httpx.AsyncClient, headers: dict[str, str], org: uuid.UUID) -> int:
    response = await client.get(
        "/v1/usage/summary",
        params={"org_id": str(org), "from": WINDOW_START.isoformat()},
        headers=headers,
    )
    return int(response.json()["requests"]) if response.status_code == 200 else -1


WINDOW_START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)


async def test_usage_api_end_to_end(
    database_factory: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    rng = random.Random(11)
    settings = settings_for(
        await migrated(database_factory("usage")), kafka_bootstrap, topic_prefix
    )
    mint = TokenMint()
    org, other_org = uuid.uuid4(), uuid.uuid4()
    keys = [uuid.uuid4() for _ in range(4)]
    other_key = uuid.uuid4()
    apis = [uuid.uuid4() for _ in range(3)]
    routes = [uuid.uuid4() for _ in range(5)]
    events: list[Event] = []
    latencies: list[int] = []
    for n in range(6000):
        latency = long_tail_latency(rng)
        latencies.append(latency)
        events.append(
            completed(
                org_id=org,
                key_id=keys[n % 4],
                api_id=apis[n % 3],
                route_id=routes[n % 5],
                status=(200, 200, 200, 404, 503)[n % 5],
                latency_ms=latency,
                cost=2,
                path=f"/orders/{n % 7}",
                # Spread over ~4 h 10 min: whole hours and partial edges.
                time=WINDOW_START + timedelta(minutes=10, seconds=2.5 * n),
            )
        )
    events += [rejected(org_id=org, key_id=keys[0], api_id=apis[0]) for _ in range(50)]
    events += [
        completed(org_id=other_org, key_id=other_key, api_id=apis[0], time=WINDOW_START)
        for _ in range(30)
    ]
    member = mint.headers(orgs={org: "viewer"})
    outsider = mint.headers(orgs={other_org: "owner"})
    admin = mint.headers(admin=True)

    async with running(settings, mint) as client:
        await produce(settings, events)
        seen = await eventually(
            lambda: ingested(client, member, org), lambda n: n >= 6050, within=60
        )
        assert seen == 6050

        # Summary: counts, rejections apart, and percentiles within 1 % of exact.
        params = {"org_id": str(org), "from": WINDOW_START.isoformat()}
        summary = (await client.get("/v1/usage/summary", params=params, headers=member)).json()
        assert summary["requests"] == 6050
        assert summary["rejected"] == 50
        assert summary["completed"] == 6000
        assert summary["server_errors"] == 1200
        assert summary["client_errors"] == 1200
        assert summary["credits"] == 12000
        for q, name in ((0.5, "p50_ms"), (0.9, "p90_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
            truth = exact(latencies, q)
            assert abs(summary["latency"][name] - truth) <= 0.01 * truth, (name, truth)

        # A key and a route: percentiles of that slice, too.
        key_latencies = [lat for n, lat in enumerate(latencies) if n % 4 == 1]
        key_summary = (
            await client.get(
                "/v1/usage/summary", params={**params, "key_id": str(keys[1])}, headers=member
            )
        ).json()
        truth = exact(key_latencies, 0.99)
        assert abs(key_summary["latency"]["p99_ms"] - truth) <= 0.01 * truth

        # Time series: every bucket present, gaps as zeros, totals add up.
        series = (
            await client.get(
                "/v1/usage/timeseries",
                params={
                    **params,
                    "granularity": "hour",
                    "to": (WINDOW_START + timedelta(hours=8)).isoformat(),
                },
                headers=member,
            )
        ).json()
        assert len(series["points"]) == 8
        assert sum(p["requests"] for p in series["points"]) == 6050
        assert series["points"][-1]["requests"] == 0
        minutes = (
            await client.get(
                "/v1/usage/timeseries",
                params={
                    **params,
                    "granularity": "minute",
                    "to": (WINDOW_START + timedelta(hours=1)).isoformat(),
                },
                headers=member,
            )
        ).json()
        assert len(minutes["points"]) == 60
        assert minutes["points"][0]["requests"] == 0  # the first 10 minutes had no traffic

        # Top-N and errors.
        top = (
            await client.get("/v1/usage/top", params={**params, "by": "key"}, headers=member)
        ).json()
        assert {item["value"] for item in top["items"]} == {str(k) for k in keys}
        assert top["items"][0]["value"] == str(keys[0])  # the 50 rejections
        errors = (await client.get("/v1/usage/errors", params=params, headers=member)).json()
        assert errors["rejected_by_reason"] == {"rate_limited": 50}
        assert errors["by_class"] == {"4xx": 1200, "5xx": 1200}

        # Request log: filters and cursor pagination visit every row once.
        seen_ids: set[str] = set()
        cursor = None
        while True:
            page_params: dict[str, Any] = {
                **params,
                "status": "5xx",
                "path_prefix": "/orders/3",
                "limit": 100,
            }
            if cursor:
                page_params["cursor"] = cursor
            page = (await client.get("/v1/usage/logs", params=page_params, headers=member)).json()
            seen_ids |= {item["request_id"] for item in page["items"]}
            assert all(item["status"] == 503 for item in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        expected = {
            str(e.request_id)
            for e in events
            if isinstance(e, RequestCompleted)
            and e.org_id == org
            and e.status == 503
            and e.path == "/orders/3"
        }
        assert seen_ids == expected
        await check_list_contract(
            client,
            "/v1/usage/logs",
            headers=member,
            params={**params, "status": "5xx", "path_prefix": "/orders/3"},
            expected=expected,
            key=lambda item: item["request_id"],
            page_size=max(2, len(expected) // 3),
        )
        one = next(iter(expected))
        found = await client.get(f"/v1/usage/logs/{one}", headers=member)
        assert found.status_code == 200
        assert found.json()["request_id"] == one

        # Per-key stats with recent requests.
        stats = (
            await client.get(
                f"/v1/usage/keys/{keys[0]}",
                params={"from": WINDOW_START.isoformat()},
                headers=member,
            )
        ).json()
        assert stats["totals"]["rejected"] == 50
        assert stats["org_id"] == str(org)
        assert len(stats["recent"]) == 20

        # Isolation: the other org's user gets nothing from any route.
        for path, extra in (
            ("/v1/usage/summary", {}),
            ("/v1/usage/timeseries", {}),
            ("/v1/usage/top", {"by": "key"}),
            ("/v1/usage/errors", {}),
            ("/v1/usage/logs", {}),
            ("/v1/usage/live", {}),
        ):
            response = await client.get(path, params={**params, **extra}, headers=outsider)
            assert response.status_code == 404, path
            assert response.headers["content-type"].startswith("application/problem+json")
        for path, slug in (
            (f"/v1/usage/keys/{keys[0]}", "key-not-found"),
            (f"/v1/usage/logs/{one}", "request-not-found"),
        ):
            response = await client.get(path, headers=outsider)
            assert response.status_code == 404, path
            assert response.json()["type"] == "https://tollgate.dev/problems/" + slug
        # ... and its own view holds only its own traffic.
        own = (
            await client.get(
                "/v1/usage/summary",
                params={"org_id": str(other_org), "from": WINDOW_START.isoformat()},
                headers=outsider,
            )
        ).json()
        assert own["requests"] == 30
        no_org = await client.get("/v1/usage/summary", headers=member)
        assert no_org.status_code == 422
        everything = (
            await client.get(
                "/v1/usage/summary", params={"from": WINDOW_START.isoformat()}, headers=admin
            )
        ).json()
        assert everything["requests"] == 6080

        # Bad input: problem+json, never a 500.
        for bad in (
            {"from": "2024-01-02T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
            {"from": "2020-01-01T00:00:00Z", "to": "2024-01-01T00:00:00Z"},
            {"from": "2024-01-01T00:00:00"},
        ):
            response = await client.get(
                "/v1/usage/summary", params={"org_id": str(org), **bad}, headers=member
            )
            assert response.status_code == 422, bad
        bad_cursor = await client.get(
            "/v1/usage/logs", params={"org_id": str(org), "cursor": "nope"}, headers=member
        )
        assert bad_cursor.status_code == 422

        # Live stream: per-second counts, gaps as zeros, ends after its duration.
        live = await client.get(
            "/v1/usage/live", params={"org_id": str(org), "seconds": 1}, headers=member
        )
        assert live.status_code == 200
        assert live.headers["content-type"].startswith("text/event-stream")
        frames = [f for f in live.text.split("\n\n") if f.startswith("event: counts")]
        assert frames
        assert '"seconds":[{"second"' in frames[0]


async def test_top_keys_past_the_minute_retention_counts_what_top_apis_counts(
    database_factory: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Top keys reads a range that is most of a UTC day as the day's row minus the rest of
    # the day. Once retention had dropped that day's minutes, the rest's edge minutes were
    # taken away as nothing: a key that called only there was listed, counted too much.
    settings = settings_for(
        await migrated(database_factory("usage")), kafka_bootstrap, topic_prefix
    )
    mint = TokenMint()
    now = datetime.now(UTC)
    day = datetime.combine((now - timedelta(days=60)).date(), datetime.min.time(), tzinfo=UTC)
    org, api, inside, outside = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events: list[Event] = [
        completed(org_id=org, key_id=outside, api_id=api, time=day + timedelta(minutes=310)),
        completed(org_id=org, key_id=inside, api_id=api, time=day + timedelta(hours=9)),
    ]
    engine = create_engine(settings.database_url, pool_size=2)
    sessions = session_maker(engine)
    try:
        async with sessions() as session, session.begin():
            await ensure_partitions(session, {day.date()}, PartitionDays())
            deliveries = [Delivery(0, n, event) for n, event in enumerate(events)]
            await record_requests(session, group_id="usage", topic="t", deliveries=deliveries)
        async with sessions() as session, session.begin():
            await enforce_retention(session, policy_from(settings), now, PartitionDays())
    finally:
        await engine.dispose()
    member = mint.headers(orgs={org: "viewer"})
    span = {
        "from": (day + timedelta(minutes=330)).isoformat(),
        "to": (day + timedelta(days=1)).isoformat(),
    }
    app = create_app(settings, jwt_verifier=mint.verifier(), consume=False)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://usage") as client,
    ):
        ranked = {}
        for by in ("api", "key"):
            params = {"org_id": str(org), "by": by, **span}
            reply = await client.get("/v1/usage/top", params=params, headers=member)
            assert reply.status_code == 200, reply.text
            ranked[by] = [(i["value"], i["requests"]) for i in reply.json()["items"]]
    assert ranked == {"api": [(str(api), 1)], "key": [(str(inside), 1)]}


async def test_a_read_that_cannot_finish_in_time_is_a_503_problem(
    database_factory: Callable[[str], str], kafka_bootstrap: str, topic_prefix: str
) -> None:
    # Before: nothing bounded a read, so a query over a large range (top keys of one API
    # over 400 days reads every key-hour of the org) held its connection for as long as
    # it took; any viewer could start many. Here the rollup is locked: the read must give
    # up after `read_timeout_seconds` with a problem, not hang.
    settings = settings_for(
        await migrated(database_factory("usage")), kafka_bootstrap, topic_prefix
    ).model_copy(update={"read_timeout_seconds": 0.5})
    mint = TokenMint()
    org = uuid.uuid4()
    engine = create_engine(settings.database_url, pool_size=1)
    app = create_app(settings, jwt_verifier=mint.verifier(), consume=False)
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://usage") as client,
            engine.connect() as blocker,
        ):
            await blocker.execute(text("LOCK TABLE usage_org_hour IN ACCESS EXCLUSIVE MODE"))
            params = {
                "org_id": str(org),
                "from": "2026-01-01T00:00:00Z",
                "to": "2026-02-01T00:00:00Z",
            }
            reply = await asyncio.wait_for(
                client.get(
                    "/v1/usage/summary", params=params, headers=mint.headers(orgs={org: "viewer"})
                ),
                timeout=20,
            )
            await blocker.rollback()
            assert reply.status_code == 503, reply.text
            assert reply.headers["content-type"].startswith("application/problem+json")
            assert reply.json()["type"].endswith("/query-timeout")
            assert "Retry-After" in reply.headers
            later = await client.get(
                "/v1/usage/summary", params=params, headers=mint.headers(orgs={org: "viewer"})
            )
            assert later.status_code == 200
    finally:
        await engine.dispose()
