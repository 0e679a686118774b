"""Test mode end to end: a real gateway process in front of the demo upstream, the real
broker, and billing (unchanged) `kill -9`ed while it works through mixed live and test
traffic.

- Live keys reach the live upstream only, test keys the sandbox upstream or, for an API
  without one, the built-in mock (petstore, the registry's import test data): never the
  live upstream (the demo upstream echoes the path it was called on).
- Every test-key event says `mode: test` and costs 0; billing, crashed again and again
  mid-stream, debits exactly the live cost, each live request once.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tollgate.kit import apikeys
from tollgate.kit.testing.polling import eventually
from tollgate.kit.testing.tokens import TokenMint

from .gateway_support import (
    StatePublisher,
    api_event,
    gateway,
    key_event,
    start_upstream,
    wait_events,
)
from .services import service_process
from .test_billing_crash import debited_count, jwks_server

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
PETSTORE = yaml.safe_load((ROOT / "services/accounts/tests/data/petstore.yaml").read_text())
PRICE = 3
LIVE_SHOP, TEST_SHOP, TEST_PETS, LIVE_PETS = 160, 160, 80, 40
KILLS = 3


async def test_test_keys_cost_nothing_and_never_reach_live_through_billing_crashes(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    rng = random.Random(5)
    org = uuid.uuid4()
    live, test = apikeys.generate("live").raw, apikeys.generate("test").raw
    upstream = start_upstream(tmp_path)
    base = f"http://127.0.0.1:{upstream.port}"
    async with StatePublisher(kafka_bootstrap, topic_prefix) as state:
        await state.publish(
            key_event(org, live),
            key_event(org, test, environment="test"),
            api_event("shop", base + "/echo/live", sandbox_url=base + "/echo/sandbox", price=PRICE),
            api_event("pets", base + "/echo/live-pets", openapi_document=PETSTORE, price=PRICE),
        )
    gw = gateway(tmp_path, kafka_bootstrap, topic_prefix)
    gw.start()
    mint = TokenMint()
    db_url = database_factory("billing")
    engine = create_async_engine(db_url)
    try:
        calls = (
            [("shop", live, "/things/1")] * LIVE_SHOP
            + [("shop", test, "/things/1")] * TEST_SHOP
            + [("pets", test, "/pets/7")] * (TEST_PETS // 2)
            + [("pets", test, "/pets")] * (TEST_PETS // 2)
            + [("pets", live, "/pets/7")] * LIVE_PETS
        )
        rng.shuffle(calls)
        calls.append(("shop", live, "/things/last"))  # live last: billing has read the rest
        limit = asyncio.Semaphore(16)
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:

            async def call(slug: str, key: str, path: str) -> tuple[str, str, httpx.Response]:
                async with limit:
                    return slug, key, await client.get(f"/{slug}{path}", headers={"X-API-Key": key})

            answers = await asyncio.gather(*(call(*c) for c in calls))
        reached: dict[tuple[str, str], set[str]] = {}
        for slug, key, response in answers:
            assert response.status_code == 200, response.text
            body = orjson.loads(response.content)
            where = body.get("path", "mock") if isinstance(body, dict) else "mock"
            mode = "test" if key == test else "live"
            reached.setdefault((slug, mode), set()).add(where.rsplit("/", 2)[0])
        assert reached == {
            ("shop", "live"): {"/echo/live"},
            ("shop", "test"): {"/echo/sandbox"},
            ("pets", "test"): {"mock"},
            ("pets", "live"): {"/echo/live-pets"},
        }
        live_calls = LIVE_SHOP + LIVE_PETS + 1
        events = await wait_events(kafka_bootstrap, topic_prefix, len(calls), within=30)
        assert len(events) == len(calls)
        by_mode: dict[str, list[dict[str, object]]] = {}
        for event in events:
            by_mode.setdefault(str(event["data"]["mode"]), []).append(event["data"])
        assert len(by_mode["live"]) == live_calls
        assert {e["cost"] for e in by_mode["live"]} == {PRICE}
        assert len(by_mode["test"]) == TEST_SHOP + TEST_PETS
        assert {e["cost"] for e in by_mode["test"]} == {0}
        assert {e["served_by"] for e in by_mode["test"]} == {"sandbox", "mock"}

        # Billing takes the stream in, killed mid-way again and again.
        with jwks_server(mint.jwks()) as jwks_url:
            billing = service_process(
                "billing",
                tmp_path,
                kafka_bootstrap=kafka_bootstrap,
                topic_prefix=topic_prefix,
                database_url=db_url,
                extra={
                    "JWKS_URL": jwks_url,
                    "CONSUME_BATCH_MAX": "20",
                    "KAFKA_SESSION_TIMEOUT_MS": "1000",
                    "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
                },
            )
            try:
                await asyncio.to_thread(billing.start)
                for _ in range(KILLS):
                    before = await debited_count(engine)
                    await eventually(
                        lambda: debited_count(engine),
                        lambda n, before=before: n > before or n >= live_calls,
                        within=30,
                        interval=0.01,
                    )
                    await asyncio.sleep(rng.uniform(0, 0.05))
                    billing.kill9()
                    await asyncio.to_thread(billing.start)
                done = await eventually(
                    lambda: debited_count(engine), lambda n: n >= live_calls, within=60
                )
            finally:
                billing.stop()
        assert done == live_calls
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT sum(amount) FILTER (WHERE kind = 'debit') AS debited, "
                        "sum(request_count) FILTER (WHERE kind = 'debit') AS requests "
                        "FROM ledger_entries WHERE org_id = :org"
                    ),
                    {"org": org},
                )
            ).one()
        assert -row.debited == live_calls * PRICE
        assert row.requests == live_calls
    finally:
        gw.stop()
        upstream.stop()
        await engine.dispose()
