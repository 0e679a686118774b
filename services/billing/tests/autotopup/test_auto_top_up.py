"""Auto top-up against a loopback fake Stripe API driven by the official SDK, on a real
database: a card saved through a setup-mode Checkout, a debit that crosses the
threshold queues exactly one charge in its own transaction, the worker charges it
off-session and credits it once even when Stripe's `payment_intent.succeeded` also
arrives (before or after), a refill re-arms it, the monthly cap is never exceeded, a
declined card ends failed with a notice and no credit, transient errors are retried
with back-off, other tenants are kept out, and 50 orgs crossing at once are each
charged exactly once (crossing → credited times printed)."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from sqlalchemy import text

from tollgate.billing.config import Settings
from tollgate.billing.ledger import service as ledger
from tollgate.billing.payments import auto_top_up_worker as worker
from tollgate.billing.payments.providers import PaymentProvider, SavedPaymentMethod
from tollgate.billing.payments.providers import payment_provider as provider_for
from tollgate.contracts import topics
from tollgate.kit.db import SessionMaker
from tollgate.kit.testing.fake_stripe import FakeStripe
from tollgate.kit.testing.tokens import TokenMint

from ..factories import api_client, migrated, outbox_data, request_event, settings_for

SECRET_KEY = "sk_test_" + "a" * 24
WEBHOOK_SECRET = "whsec_" + "b" * 32


@dataclass
class Billing:
    client: httpx.AsyncClient
    fake: FakeStripe
    mint: TokenMint
    settings: Settings
    sessions: SessionMaker
    provider: PaymentProvider

    async def balance(self, org: uuid.UUID) -> int:
        answer = await self.client.get(
            f"/v1/orgs/{org}/balance", headers=self.mint.headers(admin=True)
        )
        return int(answer.json()["balance"])

    async def credit(self, org: uuid.UUID, amount: int) -> None:
        answer = await self.client.post(
            f"/v1/orgs/{org}/credits",
            json={"amount": amount},
            headers={**self.mint.headers(admin=True), "Idempotency-Key": str(uuid.uuid4())},
        )
        assert answer.status_code in (200, 201), answer.text

    async def save_card(self, org: uuid.UUID, payment_method: str = "pm_card_visa") -> None:
        """The owner saves a card through a setup-mode Checkout; Stripe reports it."""
        started = await self.client.post(
            f"/v1/orgs/{org}/auto-top-up/setup-session",
            headers=self.mint.headers(orgs={org: "owner"}),
        )
        assert started.status_code == 201, started.text
        session_id = started.json()["checkout_url"].rsplit("/", 1)[-1]
        assert self.fake.sessions[session_id]["mode"] == "setup"
        saved = await self.fake.deliver(
            self.client, self.fake.save_card(session_id, payment_method)
        )
        assert saved.json()["outcome"] == "payment-method-saved", saved.text

    async def configure(self, org: uuid.UUID, **body: Any) -> httpx.Response:
        values = {"enabled": True, "threshold": 1_000, "target": 5_000, "monthly_cap": 10_000}
        return await self.client.put(
            f"/v1/orgs/{org}/auto-top-up",
            json={**values, **body},
            headers=self.mint.headers(orgs={org: "owner"}),
        )

    async def spend(self, org: uuid.UUID, cost: int) -> None:
        """Requests the gateway served, debited as billing's consumer does."""
        async with self.sessions() as session, session.begin():
            await ledger.debit_for_requests(session, [request_event(org, cost=cost)], self.settings)

    async def run_worker(self) -> int:
        """Worker rounds until nothing is due; returns how many charges it handled."""
        handled = 0
        while await worker.charge_round(self.sessions, self.provider, self.settings):
            handled += 1
        return handled

    async def charges(self, org: uuid.UUID) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            rows = await session.execute(
                text(
                    "SELECT status, amount, credits, failure, attempts, payment_intent_id "
                    "FROM auto_top_up_charges WHERE org_id = :o ORDER BY id"
                ),
                {"o": org},
            )
            return [dict(row._mapping) for row in rows]


@asynccontextmanager
async def billing(
    database_factory: Callable[[str], str], **overrides: Any
) -> AsyncIterator[Billing]:
    fake = await FakeStripe(SECRET_KEY, WEBHOOK_SECRET).start()
    settings = settings_for(
        await migrated(database_factory("billing")),
        stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=fake.url,
        console_url="https://console.example.com",
        **overrides,
    )
    mint = TokenMint()
    provider = provider_for(settings)
    try:
        async with api_client(settings, mint) as (client, app):
            yield Billing(client, fake, mint, settings, app.state.sessions, provider)
    finally:
        await provider.aclose()
        await fake.stop()


def auto_top_up_notices(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if "charge_id" in e and "reason" in e]


async def test_a_crossing_charges_once_and_credits_once_with_the_webhook_after(
    database_factory: Callable[[str], str],
) -> None:
    org = uuid.uuid4()
    async with billing(database_factory) as b:
        await b.credit(org, 5_000)
        await b.save_card(org)
        assert (await b.configure(org)).status_code == 200
        await b.spend(org, 3_000)  # 2 000: above the threshold, nothing queued
        assert await b.run_worker() == 0
        await b.spend(org, 1_100)  # 900: crossed
        await b.spend(org, 100)  # 800: still below, the same crossing
        assert await b.run_worker() == 1
        # Priced when the crossing was seen: (5 000 - 900) credits at 10 per cent.
        (intent,) = b.fake.payment_intents.values()
        assert (intent["amount"], intent["currency"], intent["off_session"]) == (410, "usd", True)
        assert intent["customer"]
        assert intent["payment_method"] == "pm_card_visa"
        assert await b.balance(org) == 4_900
        late = await b.fake.deliver(b.client, b.fake.payment_intent_succeeded(intent["id"]))
        assert late.json()["outcome"] == "already-paid"
        assert await b.balance(org) == 4_900
        (charge,) = await b.charges(org)
        assert (charge["status"], charge["credits"]) == ("succeeded", 4_100)
        receipts = (
            await b.client.get(
                f"/v1/orgs/{org}/purchases", headers=b.mint.headers(orgs={org: "viewer"})
            )
        ).json()["items"]
        assert [(r["pack_id"], r["status"], r["payment_intent_id"]) for r in receipts] == [
            ("auto-top-up", "paid", intent["id"])
        ]
        shown = await b.client.get(
            f"/v1/orgs/{org}/auto-top-up", headers=b.mint.headers(orgs={org: "viewer"})
        )
        assert shown.json()["spent_this_month"] == 410
        assert shown.json()["payment_method_saved"] is True
        assert "pm_card_visa" not in shown.text


async def test_the_webhook_arriving_first_credits_and_the_worker_does_not_again(
    database_factory: Callable[[str], str],
) -> None:
    org = uuid.uuid4()
    async with billing(database_factory) as b:
        await b.credit(org, 5_000)
        await b.save_card(org)
        await b.configure(org)
        await b.spend(org, 4_000)  # 1 000: at the threshold
        async with b.sessions() as session:
            charge_id = (
                await session.execute(
                    text("SELECT id FROM auto_top_up_charges WHERE org_id = :o"), {"o": org}
                )
            ).scalar_one()
        # Stripe charged and told us before the worker's own answer was booked (a
        # worker that crashed after the charge, say): same idempotency key, same intent.
        async with b.sessions() as session:
            method = (
                await session.execute(
                    text(
                        "SELECT payment_method_id, customer_id FROM auto_top_ups WHERE org_id = :o"
                    ),
                    {"o": org},
                )
            ).one()
        paid = await b.provider.charge_off_session(
            charge_id=charge_id,
            org_id=org,
            method=SavedPaymentMethod(method[0], method[1]),
            amount=400,
            currency="usd",
        )
        early = await b.fake.deliver(
            b.client, b.fake.payment_intent_succeeded(str(paid.payment_intent_id))
        )
        assert early.json()["outcome"] == "credited"
        assert await b.balance(org) == 5_000
        assert await b.run_worker() == 0  # the webhook settled the charge: nothing due
        assert len(b.fake.payment_intents) == 1
        assert await b.balance(org) == 5_000
        assert [c["status"] for c in await b.charges(org)] == ["succeeded"]


async def test_a_refill_rearms_and_the_monthly_cap_is_never_exceeded(
    database_factory: Callable[[str], str],
) -> None:
    org = uuid.uuid4()
    async with billing(database_factory) as b:
        await b.credit(org, 5_000)
        await b.save_card(org)
        await b.configure(org, monthly_cap=500)
        await b.spend(org, 4_100)  # 900 → 410 charged, back to 5 000
        await b.run_worker()
        assert await b.balance(org) == 5_000
        await b.spend(org, 4_100)  # crossed again: only 90 left under the cap
        await b.run_worker()
        assert await b.balance(org) == 900 + 900
        await b.spend(org, 1_000)  # 800: crossed again (1 800 re-armed it), cap reached
        assert await b.run_worker() == 0
        assert await b.balance(org) == 800
        amounts = [i["amount"] for i in b.fake.payment_intents.values()]
        assert amounts == [410, 90]
        charges = await b.charges(org)
        assert [(c["status"], c["failure"]) for c in charges] == [
            ("succeeded", None),
            ("succeeded", None),
            ("failed", "monthly_cap_reached"),
        ]
        notices = auto_top_up_notices(await outbox_data(engine_of(b), topics.BILLING_EVENTS.name))
        assert [n["reason"] for n in notices] == ["monthly_cap_reached"]


def engine_of(b: Billing) -> Any:
    return b.sessions.kw["bind"]


async def test_a_declined_card_fails_with_a_notice_and_credits_nothing(
    database_factory: Callable[[str], str],
) -> None:
    declined, needs_customer = uuid.uuid4(), uuid.uuid4()
    async with billing(database_factory) as b:
        for org, card in (
            (declined, "pm_card_chargeDeclined"),
            (needs_customer, "pm_card_authenticationRequired"),
        ):
            await b.credit(org, 5_000)
            await b.save_card(org, card)
            await b.configure(org)
            await b.spend(org, 4_500)
        assert await b.run_worker() == 2
        assert await b.balance(declined) == 500
        assert await b.balance(needs_customer) == 500
        assert [c["failure"] for c in await b.charges(declined)] == ["card_declined"]
        assert [c["failure"] for c in await b.charges(needs_customer)] == [
            "authentication_required"
        ]
        notices = auto_top_up_notices(await outbox_data(engine_of(b), topics.BILLING_EVENTS.name))
        assert sorted((n["org_id"], n["reason"], n["amount"]) for n in notices) == sorted(
            [
                (str(declined), "card_declined", 450),
                (str(needs_customer), "authentication_required", 450),
            ]
        )
        receipts = (
            await b.client.get(
                f"/v1/orgs/{declined}/purchases", headers=b.mint.headers(orgs={declined: "owner"})
            )
        ).json()["items"]
        assert [r["status"] for r in receipts] == ["failed"]
        shown = await b.client.get(
            f"/v1/orgs/{declined}/auto-top-up", headers=b.mint.headers(orgs={declined: "viewer"})
        )
        last = shown.json()["last_charge"]
        assert (last["status"], last["failure"], last["amount"]) == ("failed", "card_declined", 450)
        # Still below: no new charge until a refill lifts the balance above the threshold.
        await b.spend(declined, 100)
        assert await b.run_worker() == 0


async def test_turning_it_off_before_the_worker_charges_nothing(
    database_factory: Callable[[str], str],
) -> None:
    org = uuid.uuid4()
    async with billing(database_factory) as b:
        await b.credit(org, 5_000)
        await b.save_card(org)
        await b.configure(org)
        await b.spend(org, 4_500)  # crossed: a charge is queued
        assert (await b.configure(org, enabled=False)).status_code == 200
        assert await b.run_worker() == 1
        assert b.fake.payment_intent_attempts == 0
        assert [(c["status"], c["failure"]) for c in await b.charges(org)] == [
            ("failed", "disabled")
        ]
        assert await b.balance(org) == 500


async def test_transient_errors_are_retried_with_back_off_and_charge_once(
    database_factory: Callable[[str], str],
) -> None:
    recovers, never = uuid.uuid4(), uuid.uuid4()
    async with billing(
        database_factory, auto_top_up_retry_seconds=60, auto_top_up_max_attempts=2
    ) as b:
        for org in (recovers, never):
            await b.credit(org, 5_000)
            await b.save_card(org)
            await b.configure(org)
        # The SDK itself tries 3 times (2 network retries): one worker round fails.
        b.fake.fail_next_payment_intents(3)
        await b.spend(recovers, 4_500)
        assert await worker.charge_round(b.sessions, b.provider, b.settings)
        (charge,) = await b.charges(recovers)
        assert (charge["status"], charge["attempts"]) == ("queued", 1)
        assert await b.run_worker() == 0  # backing off: due in a minute
        await due_now(b)
        assert await b.run_worker() == 1
        assert [c["status"] for c in await b.charges(recovers)] == ["succeeded"]
        assert len(b.fake.payment_intents) == 1
        assert await b.balance(recovers) == 5_000

        b.fake.fail_next_payment_intents(6)  # both tries fail: the charge gives up
        await b.spend(never, 4_500)
        assert await b.run_worker() == 1
        await due_now(b)
        assert await b.run_worker() == 1
        assert [(c["status"], c["failure"], c["attempts"]) for c in await b.charges(never)] == [
            ("failed", "provider_unavailable", 2)
        ]
        assert await b.balance(never) == 500
        notices = auto_top_up_notices(await outbox_data(engine_of(b), topics.BILLING_EVENTS.name))
        assert [(n["org_id"], n["reason"]) for n in notices] == [
            (str(never), "provider_unavailable")
        ]


async def due_now(b: Billing) -> None:
    """Time passes: every backing-off charge is due."""
    async with b.sessions() as session, session.begin():
        await session.execute(
            text("UPDATE auto_top_up_charges SET run_after = now() WHERE status = 'queued'")
        )


async def test_settings_are_validated_and_other_tenants_get_404(
    database_factory: Callable[[str], str],
) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    async with billing(database_factory) as b:
        no_card = await b.configure(mine)
        assert no_card.status_code == 409
        assert no_card.json()["type"].endswith("/no-payment-method")
        await b.save_card(theirs)
        assert (await b.configure(theirs)).status_code == 200
        low_target = await b.configure(theirs, target=1_000)
        assert low_target.status_code == 422
        assert low_target.json()["type"].endswith("/target-not-above-threshold")
        assert (await b.configure(theirs, threshold="10")).status_code == 422
        me = b.mint.headers(orgs={mine: "owner"})
        path = f"/v1/orgs/{theirs}/auto-top-up"
        assert (await b.client.get(path, headers=me)).status_code == 404
        put = await b.client.put(
            path,
            json={"enabled": False, "threshold": 0, "target": 1, "monthly_cap": 0},
            headers=me,
        )
        assert put.status_code == 404
        setup = await b.client.post(f"{path}/setup-session", headers=me)
        assert setup.status_code == 404
        viewer = b.mint.headers(orgs={theirs: "viewer"})
        assert (
            await b.client.put(
                path,
                json={"enabled": False, "threshold": 0, "target": 1, "monthly_cap": 0},
                headers=viewer,
            )
        ).status_code == 403
        shown = (await b.client.get(path, headers=viewer)).json()
        assert (shown["enabled"], shown["threshold"], shown["target"]) == (True, 1_000, 5_000)


async def test_a_settings_change_is_audited_with_the_fields_it_changed(
    database_factory: Callable[[str], str],
) -> None:
    org = uuid.uuid4()
    async with billing(database_factory) as b:
        await b.save_card(org)  # stores the card with settings off (target 1)
        assert (await b.configure(org)).status_code == 200
        assert (await b.configure(org, target=8_000)).status_code == 200
        async with b.sessions() as session:
            rows = await session.execute(
                text("SELECT value FROM outbox WHERE topic = :t ORDER BY id"),
                {"t": topics.AUDIT_RECORDS.name},
            )
            records = [orjson.loads(row.value)["data"] for row in rows]
    puts = [r for r in records if r["action"] == "billing.put_auto_top_up"]
    assert [(r["org_id"], r["diff"]["before"], r["diff"]["after"]) for r in puts] == [
        (
            str(org),
            {"enabled": False, "threshold": 0, "target": 1, "monthly_cap": 0},
            {"enabled": True, "threshold": 1_000, "target": 5_000, "monthly_cap": 10_000},
        ),
        # Only the target changed: the rest sent unchanged is not listed.
        (str(org), {"target": 5_000}, {"target": 8_000}),
    ]


async def test_fifty_orgs_crossing_at_once_are_each_charged_exactly_once(
    database_factory: Callable[[str], str],
) -> None:
    orgs = [uuid.uuid4() for _ in range(50)]
    async with billing(database_factory, auto_top_up_workers=4, auto_top_up_poll_seconds=0.05) as b:
        for org in orgs:
            await b.credit(org, 5_000)
            await b.save_card(org)
            await b.configure(org, monthly_cap=600)
        workers = asyncio.create_task(worker.run_auto_top_up(b.sessions, b.settings))
        try:
            started = time.perf_counter()

            async def spend_until_crossed(org: uuid.UUID) -> None:
                # Requests keep coming in batches, as the consumer debits them.
                for _ in range(4):  # 5 000 → 1 000: the last batch crosses
                    await b.spend(org, 1_000)

            # Two crossings per org: 400 charged (→ 5 000), then only 200 of the 600
            # cap left (→ 1 000 + 2 000 credits).
            for paid in (len(orgs), 2 * len(orgs)):
                await asyncio.gather(*(spend_until_crossed(org) for org in orgs))
                for _ in range(600):  # up to 30 s
                    if await paid_auto_top_ups(b) == paid:
                        break
                    await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - started
        finally:
            workers.cancel()
            await asyncio.gather(workers, return_exceptions=True)
        for org in orgs:
            charges = await b.charges(org)
            assert [(c["status"], c["amount"]) for c in charges] == [
                ("succeeded", 400),
                ("succeeded", 200),
            ], charges
            assert await b.balance(org) == 3_000
        by_org: dict[str, list[int]] = {}
        for intent in b.fake.payment_intents.values():
            by_org.setdefault(intent["metadata"]["org_id"], []).append(intent["amount"])
        assert sorted(by_org) == sorted(str(o) for o in orgs)
        assert all(sorted(amounts) == [200, 400] for amounts in by_org.values())
        # Crossing: the debit transaction that queued the charge; credited: the
        # transaction that booked the top-up (both stamped by billing).
        async with b.sessions() as session:
            rows = await session.execute(
                text(
                    "SELECT extract(epoch FROM p.paid_at - c.crossed_at) * 1000 AS ms "
                    "FROM auto_top_up_charges c JOIN purchases p ON p.id = c.id"
                )
            )
            waits = sorted(float(row.ms) for row in rows)
        assert len(waits) == 2 * len(orgs)
        p50 = statistics.median(waits)
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
        print(
            f"\nauto top-up, 50 orgs crossing at once (twice), 4 workers: crossing → credited "
            f"p50 {p50:.0f} ms, p99 {p99:.0f} ms (all credited {elapsed:.1f} s after the "
            "first debit)"
        )


async def paid_auto_top_ups(b: Billing) -> int:
    async with b.sessions() as session:
        found = await session.scalar(
            text("SELECT count(*) FROM purchases WHERE pack_id = 'auto-top-up' AND status = 'paid'")
        )
        return int(found or 0)


async def test_a_card_kept_from_a_credit_pack_payment_serves_auto_top_up(
    database_factory: Callable[[str], str],
) -> None:
    kept, not_kept = uuid.uuid4(), uuid.uuid4()
    async with billing(database_factory) as b:
        for org, save in ((kept, True), (not_kept, False)):
            started = await b.client.post(
                f"/v1/orgs/{org}/checkout-sessions",
                json={"pack_id": "small", "save_card": save},
                headers=b.mint.headers(orgs={org: "owner"}),
            )
            assert started.status_code == 201, started.text
            session_id = started.json()["checkout_url"].rsplit("/", 1)[-1]
            assert (await b.fake.deliver(b.client, b.fake.pay(session_id))).json()[
                "outcome"
            ] == "credited"
            succeeded = await b.fake.deliver(
                b.client, b.fake.checkout_payment_succeeded(session_id)
            )
            assert succeeded.json()["outcome"] == ("payment-method-saved" if save else "ignored")
        assert (await b.configure(kept)).status_code == 200
        assert (await b.configure(not_kept)).status_code == 409
        await b.spend(kept, 9_500)  # 10 000 → 500: crossed
        assert await b.run_worker() == 1
        assert await b.balance(kept) == 5_000
        assert await b.balance(not_kept) == 10_000


async def test_an_org_spending_steadily_is_refilled_before_it_runs_out(
    database_factory: Callable[[str], str],
) -> None:
    """The threshold (1 000) leaves ten seconds of room at the org's 100 credits/s:
    the top-up lands within that room, so the org never runs dry while it spends."""
    org = uuid.uuid4()
    async with billing(database_factory, auto_top_up_poll_seconds=0.05) as b:
        await b.credit(org, 1_010)
        await b.save_card(org)
        await b.configure(org)  # threshold 1 000, target 5 000
        workers = asyncio.create_task(worker.run_auto_top_up(b.sessions, b.settings))
        lowest, spent = 1_010, 0
        try:
            crossed = time.monotonic()
            while not await paid_auto_top_ups(b):
                assert time.monotonic() - crossed < 30, "never credited"
                await b.spend(org, 10)  # the first debit crosses the threshold
                spent += 10
                lowest = min(lowest, await b.balance(org))
                await asyncio.sleep(0.1)
            credited = time.monotonic() - crossed
        finally:
            workers.cancel()
            await asyncio.gather(workers, return_exceptions=True)
        assert lowest > 0
        (charge,) = await b.charges(org)
        assert charge["status"] == "succeeded"
        # Priced at the crossing (1 000 left → 4 000 credits), whatever was spent since.
        assert await b.balance(org) == 1_010 - spent + charge["credits"]
        print(f"\nauto top-up while spending 100 credits/s: crossing → credited {credited:.2f} s")


async def test_a_bank_debit_stripe_leaves_processing_is_settled_by_its_webhook(
    database_factory: Callable[[str], str],
) -> None:
    # Before: `processing` was retried with the same idempotency key (so Stripe gave
    # the same answer) and, after the last try, the charge was failed and its purchase
    # marked failed, though Stripe's webhook had credited it: the customer was told
    # their top-up failed, the monthly cap forgot it, and a refund took nothing back.
    paid, bounced = uuid.uuid4(), uuid.uuid4()
    async with billing(database_factory, auto_top_up_max_attempts=2) as b:
        for org in (paid, bounced):
            await b.credit(org, 5_000)
            await b.save_card(org, "pm_usBankAccount")
            await b.configure(org)
            await b.spend(org, 4_500)
        assert await b.run_worker() == 2
        for org in (paid, bounced):
            (charge,) = await b.charges(org)
            assert charge["status"] == "processing"
            assert await b.balance(org) == 500
            shown = await b.client.get(
                f"/v1/orgs/{org}/auto-top-up", headers=b.mint.headers(orgs={org: "viewer"})
            )
            assert shown.json()["spent_this_month"] == 450  # the cap counts it already
        await due_now(b)
        assert await b.run_worker() == 0  # never charged again while processing
        assert b.fake.payment_intent_attempts == 2

        (paid_charge,) = await b.charges(paid)
        settled = await b.fake.deliver(
            b.client, b.fake.settle(paid_charge["payment_intent_id"], paid=True)
        )
        assert settled.json()["outcome"] == "credited"
        assert [c["status"] for c in await b.charges(paid)] == ["succeeded"]
        assert await b.balance(paid) == 5_000
        refund = {
            "id": "ch_refund",
            "object": "charge",
            "amount": 450,
            "amount_refunded": 450,
            "currency": "usd",
            "payment_intent": paid_charge["payment_intent_id"],
            "refunded": True,
        }
        taken = await b.fake.deliver(b.client, b.fake.event("charge.refunded", refund))
        assert taken.json()["outcome"] == "taken-back"
        assert await b.balance(paid) == 500

        (bounced_charge,) = await b.charges(bounced)
        failed = await b.fake.deliver(
            b.client, b.fake.settle(bounced_charge["payment_intent_id"], paid=False)
        )
        assert failed.json()["outcome"] == "failed"
        assert [(c["status"], c["failure"]) for c in await b.charges(bounced)] == [
            ("failed", "card_declined")
        ]
        assert await b.balance(bounced) == 500
        notices = auto_top_up_notices(await outbox_data(engine_of(b), topics.BILLING_EVENTS.name))
        assert [(n["org_id"], n["reason"]) for n in notices] == [(str(bounced), "card_declined")]


async def test_a_charge_the_worker_gave_up_on_but_stripe_made_is_credited_as_paid(
    database_factory: Callable[[str], str],
) -> None:
    # Stripe took the payment though every answer to the worker was lost: its webhook
    # still credits it, and the charge ends succeeded, not failed.
    org = uuid.uuid4()
    async with billing(database_factory, auto_top_up_max_attempts=1) as b:
        await b.credit(org, 5_000)
        await b.save_card(org)
        await b.configure(org)
        b.fake.fail_next_payment_intents(3)
        await b.spend(org, 4_500)
        assert await b.run_worker() == 1
        (charge,) = await b.charges(org)
        assert (charge["status"], charge["failure"]) == ("failed", "provider_unavailable")
        async with b.sessions() as session:
            charge_id = await session.scalar(
                text("SELECT id FROM auto_top_up_charges WHERE org_id = :o"), {"o": org}
            )
        intent = {
            "id": "pi_made_anyway",
            "object": "payment_intent",
            "amount": 450,
            "amount_received": 450,
            "currency": "usd",
            "status": "succeeded",
            "metadata": {
                "purchase_id": str(charge_id),
                "org_id": str(org),
                "purpose": "auto_top_up",
            },
        }
        paid = await b.fake.deliver(b.client, b.fake.event("payment_intent.succeeded", intent))
        assert paid.json()["outcome"] == "credited"
        assert [c["status"] for c in await b.charges(org)] == ["succeeded"]
        assert await b.balance(org) == 5_000
        receipts = (
            await b.client.get(
                f"/v1/orgs/{org}/purchases", headers=b.mint.headers(orgs={org: "owner"})
            )
        ).json()["items"]
        assert [r["status"] for r in receipts] == ["paid"]


async def test_saving_the_settings_while_a_charge_is_open_never_charges_twice(
    database_factory: Callable[[str], str],
) -> None:
    # Before: saving the settings re-armed them while the crossing's charge was still
    # queued (or a bank debit processing), so the next debit queued a second charge
    # for the same crossing and the card was charged twice.
    queued, processing = uuid.uuid4(), uuid.uuid4()
    async with billing(database_factory) as b:
        for org, card in ((queued, "pm_card_visa"), (processing, "pm_usBankAccount")):
            await b.credit(org, 5_000)
            await b.save_card(org, card)
            await b.configure(org)
        await b.spend(processing, 4_100)  # 900: crossed
        assert await b.run_worker() == 1  # a bank debit: processing for days
        await b.spend(queued, 4_100)  # 900: crossed, the worker not there yet
        for org in (queued, processing):
            # The owner saves the settings again (a higher cap, say) meanwhile.
            assert (await b.configure(org, monthly_cap=20_000)).status_code == 200
            await b.spend(org, 100)  # 800: the same crossing
        assert await b.run_worker() == 1  # the queued org's one charge
        by_org: dict[str, list[int]] = {}
        for intent in b.fake.payment_intents.values():
            by_org.setdefault(intent["metadata"]["org_id"], []).append(intent["amount"])
        assert by_org == {str(queued): [410], str(processing): [410]}
        assert [c["status"] for c in await b.charges(queued)] == ["succeeded"]
        assert [c["status"] for c in await b.charges(processing)] == ["processing"]
        assert await b.balance(queued) == 800 + 4_100
        # Refilled above the threshold, it is armed again: the next crossing charges.
        await b.spend(queued, 4_000)  # 900
        assert await b.run_worker() == 1
        assert len(b.fake.payment_intents) == 3


async def test_credits_a_refund_or_dispute_takes_back_never_charge_the_card_again(
    database_factory: Callable[[str], str],
) -> None:
    # Before: the refund's negative adjustment left the balance below the threshold,
    # so the same transaction queued an off-session charge of the refunded card: the
    # customer got their money back and was charged again at once (a disputed card
    # likewise, and again at every later debit).
    refunded, disputed = uuid.uuid4(), uuid.uuid4()
    async with billing(database_factory) as b:
        sessions: dict[uuid.UUID, str] = {}
        for org in (refunded, disputed):
            await b.save_card(org)
            started = await b.client.post(
                f"/v1/orgs/{org}/checkout-sessions",
                json={"pack_id": "small"},  # 10 000 credits for 1 000
                headers=b.mint.headers(orgs={org: "owner"}),
            )
            session_id = started.json()["checkout_url"].rsplit("/", 1)[-1]
            sessions[org] = session_id
            paid = await b.fake.deliver(b.client, b.fake.pay(session_id))
            assert paid.json()["outcome"] == "credited"
            assert (await b.configure(org)).status_code == 200  # 1 000 → 5 000
        taken = await b.fake.deliver(b.client, b.fake.refund(sessions[refunded], 1_000))
        assert taken.json()["outcome"] == "taken-back"
        opened = await b.fake.deliver(b.client, b.fake.dispute(sessions[disputed], 1_000))
        assert opened.json()["outcome"] == "taken-back"
        for org in (refunded, disputed):
            assert await b.balance(org) == 0
            await b.spend(org, 10)  # still below: no refill until the balance is lifted
        assert await b.run_worker() == 0
        assert b.fake.payment_intent_attempts == 0
        assert await b.charges(refunded) == []
        assert await b.charges(disputed) == []
        # Lifted above the threshold (an operator's top-up), the settings re-arm.
        await b.credit(refunded, 2_000)  # 1 990
        await b.spend(refunded, 1_000)  # 990: crossed
        assert await b.run_worker() == 1
        assert [i["amount"] for i in b.fake.payment_intents.values()] == [401]
