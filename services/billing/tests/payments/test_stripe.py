"""Credit packs bought through Stripe Checkout, against a loopback fake Stripe API
driven by the official SDK, with webhooks signed by the SDK's signature helper:
credited once however often Stripe delivers, expired sessions ignored, refunds and
disputes booked as negative adjustments, forged or stale signatures refused with
nothing booked, the manual provider without keys, and other tenants kept out."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson

from tollgate.kit.testing.fake_stripe import FakeStripe
from tollgate.kit.testing.tokens import TokenMint

from ..factories import api_client, migrated, settings_for

SECRET_KEY = "sk_test_" + "x" * 24
WEBHOOK_SECRET = "whsec_" + "y" * 32


@asynccontextmanager
async def stripe_billing(
    database_factory: Callable[[str], str], *, url: str | None = None, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeStripe, TokenMint]]:
    fake = await FakeStripe(SECRET_KEY, WEBHOOK_SECRET).start()
    settings = settings_for(
        url or await migrated(database_factory("billing")),
        stripe_secret_key=SECRET_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=fake.url,
        console_url="https://console.example.com",
        **overrides,
    )
    mint = TokenMint()
    try:
        async with api_client(settings, mint) as (client, _):
            yield client, fake, mint
    finally:
        await fake.stop()


async def balance(client: httpx.AsyncClient, org: uuid.UUID, mint: TokenMint) -> int:
    answer = await client.get(f"/v1/orgs/{org}/balance", headers=mint.headers(admin=True))
    return int(answer.json()["balance"])


async def checkout(
    client: httpx.AsyncClient, org: uuid.UUID, mint: TokenMint, pack: str = "small"
) -> dict[str, Any]:
    answer = await client.post(
        f"/v1/orgs/{org}/checkout-sessions",
        json={"pack_id": pack},
        headers=mint.headers(orgs={org: "owner"}),
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def test_a_paid_checkout_credits_once_however_often_stripe_delivers(
    database_factory: Callable[[str], str],
) -> None:
    org = uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        started = await checkout(client, org, mint)
        (sent,) = fake.requests
        assert sent["client_reference_id"] == started["purchase_id"]
        assert sent["success_url"].startswith(f"https://console.example.com/orgs/{org}/billing")
        (session_id,) = fake.sessions
        assert started["checkout_url"] == fake.sessions[session_id]["url"]
        assert await balance(client, org, mint) == 0

        paid = fake.pay(session_id)
        outcomes = [(await fake.deliver(client, paid)).json()["outcome"] for _ in range(3)]
        assert outcomes == ["credited", "duplicate", "duplicate"]
        # The async-payment event for the same session is another event: still once.
        late = await fake.deliver(client, fake.async_succeeded(session_id))
        assert late.json()["outcome"] == "already-paid"
        assert await balance(client, org, mint) == 10_000

        viewer = mint.headers(orgs={org: "viewer"})
        receipts = (await client.get(f"/v1/orgs/{org}/purchases", headers=viewer)).json()
        (receipt,) = receipts["items"]
        assert receipt["status"] == "paid"
        assert receipt["checkout_session_id"] == session_id
        assert receipt["payment_intent_id"] == fake.sessions[session_id]["payment_intent"]
        assert (receipt["credits"], receipt["amount"], receipt["currency"]) == (
            10_000,
            1_000,
            "usd",
        )
        entries = (await client.get(f"/v1/orgs/{org}/transactions", headers=viewer)).json()
        (entry,) = entries["items"]
        assert entry["id"] == receipt["ledger_entry_id"]
        assert session_id in entry["reason"]
        one = await client.get(f"/v1/orgs/{org}/purchases/{receipt['id']}", headers=viewer)
        assert one.json() == receipt


async def test_an_event_replayed_after_a_restart_credits_nothing_more(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    org = uuid.uuid4()
    async with stripe_billing(database_factory, url=url) as (client, fake, mint):
        await checkout(client, org, mint)
        (session_id,) = fake.sessions
        paid = fake.pay(session_id)
        assert (await fake.deliver(client, paid)).json()["outcome"] == "credited"
    # A new billing app on the same database (what a restarted process has): Stripe
    # retries the event it believes undelivered.
    async with stripe_billing(database_factory, url=url) as (client, fake, mint):
        again = await fake.deliver(client, paid, signature=fake.signature(paid))
        assert again.json()["outcome"] == "duplicate"
        assert await balance(client, org, mint) == 10_000


async def test_a_delayed_payment_credits_when_it_succeeds_and_expiry_credits_nothing(
    database_factory: Callable[[str], str],
) -> None:
    org = uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        await checkout(client, org, mint)
        await checkout(client, org, mint, "medium")
        delayed, abandoned = fake.sessions
        assert (await fake.deliver(client, fake.pay(delayed, delayed=True))).json()[
            "outcome"
        ] == "processing"
        assert await balance(client, org, mint) == 0
        assert (await fake.deliver(client, fake.async_succeeded(delayed))).json()[
            "outcome"
        ] == "credited"
        assert (await fake.deliver(client, fake.expire(abandoned))).json()["outcome"] == "expired"
        assert await balance(client, org, mint) == 10_000
        items = (
            await client.get(f"/v1/orgs/{org}/purchases", headers=mint.headers(orgs={org: "owner"}))
        ).json()["items"]
        assert [i["status"] for i in items] == ["expired", "paid"]


async def test_refunds_and_disputes_take_the_credits_back(
    database_factory: Callable[[str], str],
) -> None:
    org = uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        await checkout(client, org, mint)  # 10 000 credits for 1 000
        (session_id,) = fake.sessions
        paid = fake.pay(session_id)
        early = fake.refund(session_id, 100)  # Stripe may deliver it before the payment
        refused = await fake.deliver(client, early)
        assert refused.status_code == 503
        assert refused.json()["type"].endswith("/event-out-of-order")
        await fake.deliver(client, paid)
        assert (await fake.deliver(client, early)).json()["outcome"] == "taken-back"
        assert await balance(client, org, mint) == 9_000
        half = fake.refund(session_id, 500)  # cumulative: 400 more
        assert (await fake.deliver(client, half)).json()["outcome"] == "taken-back"
        assert (await fake.deliver(client, half)).json()["outcome"] == "duplicate"
        assert await balance(client, org, mint) == 5_000
        # A second refund: Stripe reports the charge's cumulative refunded amount.
        assert (await fake.deliver(client, fake.refund(session_id, 800))).json()[
            "outcome"
        ] == "taken-back"
        assert await balance(client, org, mint) == 2_000
        # A dispute takes back at most what is left of the purchase.
        opened = fake.dispute(session_id, 1_000)
        assert (await fake.deliver(client, opened)).json()["outcome"] == "taken-back"
        assert await balance(client, org, mint) == 0
        # Won by the merchant: what it took comes back, once. Before: it never did.
        dispute = orjson.loads(opened)["data"]["object"]
        won = fake.event("charge.dispute.closed", {**dispute, "status": "won"})
        assert (await fake.deliver(client, won)).json()["outcome"] == "given-back"
        assert await balance(client, org, mint) == 2_000
        again = fake.event("charge.dispute.closed", {**dispute, "status": "won"})
        assert (await fake.deliver(client, again)).json()["outcome"] == "already-given-back"
        assert await balance(client, org, mint) == 2_000
        entries = (
            await client.get(
                f"/v1/orgs/{org}/transactions", headers=mint.headers(orgs={org: "viewer"})
            )
        ).json()["items"]
        assert [(e["kind"], e["amount"]) for e in entries] == [
            ("adjustment", 2_000),
            ("adjustment", -2_000),
            ("adjustment", -3_000),
            ("adjustment", -4_000),
            ("adjustment", -1_000),
            ("top_up", 10_000),
        ]


async def test_refunds_of_subscription_payments_are_acknowledged(
    database_factory: Callable[[str], str],
) -> None:
    # Before: a refund of a subscription invoice's payment was answered 503 on every
    # delivery, until Stripe gave up and warned the operator of a failing endpoint,
    # which it may disable: then credit packs stop being credited too.
    org = uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        await checkout(client, org, mint)
        (session_id,) = fake.sessions
        await fake.deliver(client, fake.pay(session_id))
        invoice_refund = {
            "id": "ch_of_invoice",
            "object": "charge",
            "amount": 4_900,
            "amount_refunded": 4_900,
            "currency": "usd",
            "payment_intent": "pi_of_invoice",
            "invoice": "in_1",
            "refunded": True,
        }
        answer = await fake.deliver(client, fake.event("charge.refunded", invoice_refund))
        assert (answer.status_code, answer.json()["outcome"]) == (200, "not-a-credit-purchase")
        # A payment no purchase names may be a Checkout still to be booked: refused,
        # so Stripe delivers it again (acknowledging it once lost the refund of a
        # Checkout booked late, and the credits stayed).
        dispute = {
            "id": "dp_unknown",
            "object": "dispute",
            "amount": 700,
            "currency": "usd",
            "charge": "ch_unknown",
            "payment_intent": "pi_unknown",
        }
        recent = fake.event("charge.dispute.created", dispute)
        assert (await fake.deliver(client, recent)).status_code == 503
        # Stripe's retries over (three days): no Checkout will name it now. A dispute of
        # a subscription payment carries no invoice to tell it by.
        retried_out = orjson.loads(recent)
        retried_out["created"] -= 3 * 24 * 3600 + 60
        answer = await fake.deliver(client, orjson.dumps(retried_out))
        assert (answer.status_code, answer.json()["outcome"]) == (200, "not-a-credit-purchase")
        assert await balance(client, org, mint) == 10_000


async def test_forged_or_stale_signatures_are_refused_and_book_nothing(
    database_factory: Callable[[str], str],
) -> None:
    org = uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        await checkout(client, org, mint)
        (session_id,) = fake.sessions
        paid = fake.pay(session_id)
        forger = FakeStripe(SECRET_KEY, "whsec_" + "z" * 32)
        stale = fake.signature(paid, timestamp=int(time.time()) - 600)
        tampered = paid.replace(b'"paid"', b'"paid" ', 1)
        for payload, signature in (
            (paid, forger.signature(paid)),
            (paid, stale),
            (paid, "t=1,v1=00"),
            (paid, "nonsense"),
            (tampered, fake.signature(paid)),
        ):
            answer = await fake.deliver(client, payload, signature=signature)
            assert answer.status_code == 400, signature
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["type"].endswith("/invalid-signature")
        missing = await client.post("/v1/payments/stripe/webhook", content=paid)
        assert missing.status_code == 400
        assert await balance(client, org, mint) == 0
        # The genuine delivery of the same event still counts (nothing was burned).
        assert (await fake.deliver(client, paid)).json()["outcome"] == "credited"
        assert await balance(client, org, mint) == 10_000


async def test_a_signature_header_with_non_ascii_bytes_is_refused_not_a_crash(
    database_factory: Callable[[str], str],
) -> None:
    # Before: the SDK's constant-time comparison raised TypeError on a non-ASCII
    # signature, so anyone on the internet got a 500 (and an error report) for one.
    org = uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        await checkout(client, org, mint)
        (session_id,) = fake.sessions
        paid = fake.pay(session_id)
        now = int(time.time())
        for header in (
            f"t={now},v1=".encode() + "é".encode(),
            f"t={now},v1=".encode() + b"\xff" * 64,
            "t=١٢٣,v1=00".encode(),
        ):
            answer = await client.post(
                "/v1/payments/stripe/webhook",
                content=paid,
                headers={"Content-Type": "application/json", "Stripe-Signature": header},
            )
            assert answer.status_code == 400, header
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["type"].endswith("/invalid-signature")
        assert await balance(client, org, mint) == 0
        assert (await fake.deliver(client, paid)).json()["outcome"] == "credited"


async def test_without_stripe_keys_the_manual_provider_runs(
    database_factory: Callable[[str], str],
) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    org = uuid.uuid4()
    async with api_client(settings, mint) as (client, _):
        packs = await client.get("/v1/credit-packs", headers=mint.headers(orgs={org: "viewer"}))
        assert packs.json()["provider"] == "manual"
        assert [p["id"] for p in packs.json()["packs"]] == ["small", "medium", "large"]
        refused = await client.post(
            f"/v1/orgs/{org}/checkout-sessions",
            json={"pack_id": "small"},
            headers=mint.headers(orgs={org: "owner"}),
        )
        assert refused.status_code == 409
        assert refused.json()["type"].endswith("/payments-not-configured")
        webhook = await client.post("/v1/payments/stripe/webhook", content=b"{}")
        assert webhook.status_code == 404


async def test_other_tenants_cannot_buy_for_or_read_an_org(
    database_factory: Callable[[str], str],
) -> None:
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        bought = await checkout(client, theirs, mint)
        me = mint.headers(orgs={mine: "owner"})
        for_them = await client.post(
            f"/v1/orgs/{theirs}/checkout-sessions", json={"pack_id": "small"}, headers=me
        )
        assert for_them.status_code == 404
        assert (await client.get(f"/v1/orgs/{theirs}/purchases", headers=me)).status_code == 404
        theirs_receipt = f"/v1/orgs/{theirs}/purchases/{bought['purchase_id']}"
        assert (await client.get(theirs_receipt, headers=me)).status_code == 404
        # Their purchase id under my org is not found either.
        mine_path = f"/v1/orgs/{mine}/purchases/{bought['purchase_id']}"
        answer = await client.get(mine_path, headers=me)
        assert answer.status_code == 404
        assert answer.json()["type"].endswith("/purchase-not-found")
        unknown = await client.post(
            f"/v1/orgs/{mine}/checkout-sessions", json={"pack_id": "huge"}, headers=me
        )
        assert unknown.status_code == 404
        assert len(fake.sessions) == 1
        viewer = await client.post(
            f"/v1/orgs/{mine}/checkout-sessions",
            json={"pack_id": "small"},
            headers=mint.headers(orgs={mine: "viewer"}),
        )
        assert viewer.status_code == 403
