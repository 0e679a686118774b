"""Paid plans through Stripe subscriptions (fake Stripe, official SDK, signed
webhooks): checkout puts the org on the plan; a failed invoice makes it past due (still
served) and tells it; after the grace period it is suspended and told; a paid invoice
reinstates it. Each step is the org's PlanState in the outbox, as the gateway gets it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tollgate.billing.plans import service as plans
from tollgate.contracts import topics
from tollgate.kit.db import create_engine, session_maker

from ..factories import migrated, outbox_data, outbox_types
from .test_stripe import stripe_billing

PRO = {"name": "Pro", "monthly_price": 4900, "included_requests": 10_000}


async def test_failed_invoice_grace_suspension_and_reinstatement(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    org = uuid.uuid4()
    async with stripe_billing(database_factory, url=url, subscription_grace_seconds=3600) as (
        client,
        fake,
        mint,
    ):
        admin, owner = mint.headers(admin=True), mint.headers(orgs={org: "owner"})
        pro = (await client.post("/v1/plans", json=PRO, headers=admin)).json()
        free = (
            await client.post("/v1/plans", json={"name": "Free", "monthly_price": 0}, headers=admin)
        ).json()
        refused = await client.post(
            f"/v1/orgs/{org}/subscription-checkout", json={"plan_id": free["id"]}, headers=owner
        )
        assert refused.status_code == 409
        started = await client.post(
            f"/v1/orgs/{org}/subscription-checkout", json={"plan_id": pro["id"]}, headers=owner
        )
        assert started.status_code == 201, started.text
        (session_id,) = fake.sessions
        assert fake.requests[0]["mode"] == "subscription"
        assert fake.requests[0]["line_items[0][price_data][recurring][interval]"] == "month"
        assert (await fake.deliver(client, fake.subscribe(session_id))).json()[
            "outcome"
        ] == "subscribed"
        subscription = fake.sessions[session_id]["subscription"]
        on = (await client.get(f"/v1/orgs/{org}/plan", headers=owner)).json()
        assert (on["plan"]["name"], on["status"]) == ("Pro", "active")

        failed = fake.invoice(subscription, paid=False)
        assert (await fake.deliver(client, failed)).json()["outcome"] == "past-due"
        assert (await fake.deliver(client, failed)).json()["outcome"] == "duplicate"
        again = await fake.deliver(client, fake.invoice(subscription, paid=False))
        assert again.json()["outcome"] == "already-past-due"  # the first deadline holds

    engine = create_engine(url)
    sessions = session_maker(engine)
    try:
        async with sessions() as session, session.begin():
            assert await plans.suspend_after_grace(session, datetime.now(UTC)) == 0
            later = datetime.now(UTC) + timedelta(hours=2)
            assert await plans.suspend_after_grace(session, later) == 1
        async with stripe_billing(database_factory, url=url) as (client, fake, mint):
            paid = await fake.deliver(client, fake.invoice(subscription, paid=True))
            assert paid.json()["outcome"] == "reinstated"
        states = await outbox_data(engine, topics.BILLING_PLANS.name)
        notices = await outbox_types(engine, topics.BILLING_EVENTS.name)
    finally:
        await engine.dispose()
    assert [s["status"] for s in states if s["org_id"] == str(org)] == [
        "active",
        "past_due",
        "suspended",
        "active",
    ]
    assert notices == [
        "tollgate.billing.plan.payment_failed.v1",
        "tollgate.billing.plan.suspended.v1",
    ]
