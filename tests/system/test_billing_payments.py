"""Stripe fulfilment through crashes: a real billing process (real Postgres, real
broker) takes Checkout purchases from several orgs against a loopback fake Stripe
(official SDK), then receives every payment event three times, shuffled, while it is
`kill -9`ed again and again; Stripe's retry rule is played: an event is redelivered
until billing answers 2xx. Then refunds arrive the same way through one more kill.
Afterwards every purchase is credited exactly once and every refund taken back once.
Prints deliveries, kills and outcomes.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tollgate.kit.testing.fake_stripe import FakeStripe
from tollgate.kit.testing.tokens import TokenMint

from .services import ServiceProcess, service_process
from .test_billing_crash import jwks_server

pytestmark = pytest.mark.system

ORGS = 4
PURCHASES_PER_ORG = 6
KILLS = 2
SECRET_KEY = "sk_test_" + "k" * 24
WEBHOOK_SECRET = "whsec_" + "h" * 32
PACK_CREDITS, PACK_PRICE = 10_000, 1_000  # the default "small" pack


async def deliver_until_acknowledged(
    client: httpx.AsyncClient, fake: FakeStripe, payload: bytes, outcomes: collections.Counter[str]
) -> int:
    """Stripe's rule: deliver again until the endpoint answers 2xx; returns attempts."""
    attempts = 0
    while True:
        attempts += 1
        try:
            answer = await fake.deliver(client, payload)
        except httpx.TransportError:
            answer = None
        if answer is not None and answer.status_code == 200:
            outcomes[answer.json()["outcome"]] += 1
            return attempts
        assert answer is None or answer.status_code >= 500, answer.text
        assert attempts < 400, "never acknowledged"
        await asyncio.sleep(0.05)


async def kill_now_and_then(billing: ServiceProcess, kills: int, rng: random.Random) -> None:
    for _ in range(kills):
        await asyncio.sleep(rng.uniform(0.2, 0.6))
        billing.kill9()
        await asyncio.to_thread(billing.start)


async def test_no_purchase_lost_or_doubled_through_kill9(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    rng = random.Random(13)
    fake = await FakeStripe(SECRET_KEY, WEBHOOK_SECRET).start()
    mint = TokenMint()
    admin = mint.headers(admin=True, ttl_seconds=3600)
    db_url = database_factory("payments_billing")
    orgs = [uuid.uuid4() for _ in range(ORGS)]
    with jwks_server(mint.jwks()) as jwks_url:
        billing = service_process(
            "billing",
            tmp_path,
            kafka_bootstrap=kafka_bootstrap,
            topic_prefix=topic_prefix,
            database_url=db_url,
            extra={
                "JWKS_URL": jwks_url,
                "STRIPE_SECRET_KEY": SECRET_KEY,
                "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "STRIPE_API_BASE": fake.url,
            },
        )
        engine = create_async_engine(db_url)
        started = time.monotonic()
        try:
            await asyncio.to_thread(billing.start)
            async with httpx.AsyncClient(base_url=billing.url, timeout=10, headers=admin) as client:
                for org in orgs:
                    for _ in range(PURCHASES_PER_ORG):
                        r = await client.post(
                            f"/v1/orgs/{org}/checkout-sessions", json={"pack_id": "small"}
                        )
                        assert r.status_code == 201, r.text
                sessions = list(fake.sessions)
                assert len(sessions) == ORGS * PURCHASES_PER_ORG
                # Some methods confirm later: completed (unpaid) then async succeeded.
                delayed = set(rng.sample(sessions, len(sessions) // 4))
                payments = [fake.pay(s, delayed=s in delayed) for s in sessions]
                payments += [fake.async_succeeded(s) for s in delayed]
                deliveries = payments * 3
                rng.shuffle(deliveries)

                outcomes: collections.Counter[str] = collections.Counter()
                gate = asyncio.Semaphore(8)

                async def one(payload: bytes) -> int:
                    async with gate:
                        return await deliver_until_acknowledged(client, fake, payload, outcomes)

                killer = asyncio.create_task(kill_now_and_then(billing, KILLS, rng))
                attempts = sum(await asyncio.gather(*(one(p) for p in deliveries)))
                await killer

                refunded = rng.sample(sessions, 6)
                refunds = [fake.refund(s, PACK_PRICE // 2) for s in refunded]
                refund_deliveries = refunds * 2
                rng.shuffle(refund_deliveries)
                killer = asyncio.create_task(kill_now_and_then(billing, 1, rng))
                attempts += sum(await asyncio.gather(*(one(p) for p in refund_deliveries)))
                await killer

                org_of = {s: fake.sessions[s]["metadata"]["org_id"] for s in sessions}
                expected = collections.Counter({str(org): 0 for org in orgs})
                for s in sessions:
                    expected[org_of[s]] += PACK_CREDITS
                for s in refunded:
                    expected[org_of[s]] -= PACK_CREDITS // 2
                for org in orgs:
                    balance = (await client.get(f"/v1/orgs/{org}/balance")).json()["balance"]
                    assert balance == expected[str(org)], org
                    receipts = (
                        await client.get(f"/v1/orgs/{org}/purchases", params={"limit": 50})
                    ).json()["items"]
                    assert [r["status"] for r in receipts] == ["paid"] * PURCHASES_PER_ORG
            async with engine.connect() as conn:
                top_ups = await conn.scalar(
                    text("SELECT count(*) FROM ledger_entries WHERE kind = 'top_up'")
                )
                takebacks = await conn.scalar(
                    text("SELECT count(*) FROM ledger_entries WHERE kind = 'adjustment'")
                )
        finally:
            billing.stop()
            await engine.dispose()
            await fake.stop()
    assert top_ups == len(sessions)
    assert takebacks == len(refunded)
    # A kill between the commit and the answer loses an acknowledgement, never a credit:
    # Stripe's redelivery then finds the purchase paid.
    assert outcomes["credited"] <= len(sessions)
    print(
        f"\n{len(sessions)} purchases, {len(deliveries) + len(refund_deliveries)} deliveries "
        f"({attempts} attempts) through {billing.starts - 1} kill -9s in "
        f"{time.monotonic() - started:.1f} s: outcomes {dict(outcomes)}; "
        f"each purchase credited once, each refund taken back once"
    )
