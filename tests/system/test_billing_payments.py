"""Stripe payments through crashes, a real billing process (real Postgres, real broker)
against a loopback fake Stripe (official SDK).

Checkout: purchases from several orgs, then every payment event three times, shuffled,
while billing is `kill -9`ed again and again; Stripe's retry rule is played: an event is
redelivered until billing answers 2xx. Then refunds arrive the same way through one more
kill. Afterwards every purchase is credited exactly once and every refund taken back once.

Auto top-up: orgs cross their thresholds in rounds; in each round billing is killed while
an off-session PaymentIntent has been created at Stripe and its answer has not reached
billing yet (the worst moment: the card is charged, billing has booked nothing), while
Stripe's `payment_intent.succeeded` webhooks race the restarted worker. Afterwards every
crossing was charged exactly once at Stripe, credited exactly once, and none was lost.

Each prints deliveries, kills and outcomes.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
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


AUTO_ORGS = 4
AUTO_ROUNDS = 2
THRESHOLD, TARGET, SPEND = 1_000, 5_000, 4_500
CREDITS_PER_UNIT = 10  # billing's default AUTO_TOP_UP_CREDITS_PER_UNIT


class SlowStripe(FakeStripe):
    """The fake Stripe, answering a PaymentIntent only `hold` seconds after creating it:
    the window in which the card is charged and billing does not know yet. `charging`
    is set while an answer is held."""

    def __init__(self, *args: Any, hold: float) -> None:
        super().__init__(*args)
        self.hold = hold
        self.charging = asyncio.Event()

    async def _create_payment_intent(self, request: web.Request) -> web.Response:
        answer = await super()._create_payment_intent(request)
        self.charging.set()
        await asyncio.sleep(self.hold)
        return answer


async def until_acknowledged(call: Callable[[], Any]) -> httpx.Response:
    """Call billing until it answers (it may be down between a kill and its restart)."""
    for _ in range(400):
        try:
            answer: httpx.Response = await call()
        except httpx.TransportError:
            answer = None  # type: ignore[assignment]
        if answer is not None and answer.status_code < 500:
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError("billing never answered")


async def test_auto_top_up_never_charged_twice_credited_twice_or_lost_through_kill9(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    rng = random.Random(31)
    fake = await SlowStripe(SECRET_KEY, WEBHOOK_SECRET, hold=0.3).start()
    mint = TokenMint()
    admin = mint.headers(admin=True, ttl_seconds=3600)
    db_url = database_factory("auto_top_up_billing")
    orgs = [uuid.uuid4() for _ in range(AUTO_ORGS)]
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
                "AUTO_TOP_UP_WORKERS": "2",
                "AUTO_TOP_UP_POLL_SECONDS": "0.1",
            },
        )
        engine = create_async_engine(db_url)
        started = time.monotonic()
        outcomes: collections.Counter[str] = collections.Counter()
        try:
            await asyncio.to_thread(billing.start)
            async with httpx.AsyncClient(base_url=billing.url, timeout=10) as client:
                for org in orgs:
                    owner = mint.headers(orgs={org: "owner"}, ttl_seconds=3600)
                    setup = await client.post(
                        f"/v1/orgs/{org}/auto-top-up/setup-session", headers=owner
                    )
                    assert setup.status_code == 201, setup.text
                    session_id = setup.json()["checkout_url"].rsplit("/", 1)[-1]
                    await deliver_until_acknowledged(
                        client, fake, fake.save_card(session_id), outcomes
                    )
                    settings = {
                        "enabled": True,
                        "threshold": THRESHOLD,
                        "target": TARGET,
                        "monthly_cap": 1_000_000,
                    }
                    r = await client.put(
                        f"/v1/orgs/{org}/auto-top-up", json=settings, headers=owner
                    )
                    assert r.status_code == 200, r.text
                    r = await client.post(
                        f"/v1/orgs/{org}/credits",
                        json={"amount": TARGET},
                        headers={**admin, "Idempotency-Key": str(uuid.uuid4())},
                    )
                    assert r.status_code in (200, 201), r.text

                async def paid_back(org: uuid.UUID) -> bool:
                    answer = await until_acknowledged(
                        lambda: client.get(f"/v1/orgs/{org}/balance", headers=admin)
                    )
                    return bool(answer.json()["balance"] == TARGET)

                webhooks_sent: set[str] = set()
                for _ in range(AUTO_ROUNDS):
                    fake.charging.clear()
                    for org in orgs:
                        # The spend that crosses the threshold; retried with its key.
                        key = str(uuid.uuid4())
                        spent = await until_acknowledged(
                            lambda org=org, key=key: client.post(  # type: ignore[misc]
                                f"/v1/orgs/{org}/adjustments",
                                json={"amount": -SPEND, "kind": "adjustment", "reason": "spend"},
                                headers={**admin, "Idempotency-Key": key},
                            )
                        )
                        assert spent.status_code in (200, 201), spent.text
                    await asyncio.wait_for(fake.charging.wait(), 30)
                    billing.kill9()  # a PaymentIntent is created, its answer not yet read
                    await asyncio.to_thread(billing.start)
                    # Stripe tells billing about every charge too, twice, racing the worker.
                    created = [p for p in fake.payment_intents if p not in webhooks_sent]
                    webhooks_sent.update(created)
                    events = [fake.payment_intent_succeeded(p) for p in created] * 2
                    rng.shuffle(events)
                    for payload in events:
                        await deliver_until_acknowledged(client, fake, payload, outcomes)
                    for org in orgs:
                        deadline = time.monotonic() + 20
                        while not await paid_back(org):
                            assert time.monotonic() < deadline, f"{org} never topped up"
                            await asyncio.sleep(0.1)
                # Late webhooks of charges made after the last deliveries.
                for p in [p for p in fake.payment_intents if p not in webhooks_sent]:
                    await deliver_until_acknowledged(
                        client, fake, fake.payment_intent_succeeded(p), outcomes
                    )
                for org in orgs:
                    receipts = (
                        await client.get(
                            f"/v1/orgs/{org}/purchases", params={"limit": 50}, headers=admin
                        )
                    ).json()["items"]
                    assert [(r["pack_id"], r["status"]) for r in receipts] == [
                        ("auto-top-up", "paid")
                    ] * AUTO_ROUNDS, org
            async with engine.connect() as conn:
                charges = (
                    await conn.execute(
                        text("SELECT id, org_id, status, credits FROM auto_top_up_charges")
                    )
                ).all()
                credited = (
                    await conn.execute(
                        text(
                            "SELECT idempotency_key, amount FROM ledger_entries "
                            "WHERE kind = 'top_up' AND idempotency_key LIKE 'purchase:%'"
                        )
                    )
                ).all()
        finally:
            billing.stop()
            await engine.dispose()
            await fake.stop()
    crossings = AUTO_ORGS * AUTO_ROUNDS
    # Never lost: one charge per crossing, each succeeded.
    assert len(charges) == crossings
    assert {c.status for c in charges} == {"succeeded"}
    assert all(c.credits == SPEND for c in charges)
    # Never charged twice: Stripe holds one PaymentIntent per charge although billing
    # asked again after each kill (the charge id is the idempotency key).
    charged = collections.Counter(
        pi["metadata"]["purchase_id"]
        for pi in fake.payment_intents.values()
        if pi["metadata"].get("purpose") == "auto_top_up"
    )
    assert charged == collections.Counter({str(c.id): 1 for c in charges})
    assert all(pi["amount"] == SPEND // CREDITS_PER_UNIT for pi in fake.payment_intents.values())
    # Never credited twice: one top-up entry per charge.
    assert sorted(k for k, _ in credited) == sorted(f"purchase:{c.id}" for c in charges)
    assert fake.payment_intent_attempts > len(charges)  # the kills made billing ask again
    print(
        f"\n{crossings} auto top-up crossings, {billing.starts - 1} kill -9s each while a "
        f"charge was in flight, {fake.payment_intent_attempts} PaymentIntent requests for "
        f"{len(charged)} PaymentIntents in {time.monotonic() - started:.1f} s; webhook "
        f"outcomes {dict(outcomes)}; each crossing charged once, credited once"
    )
