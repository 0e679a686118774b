"""Paid plans through Stripe subscriptions (fake Stripe, official SDK, signed
webhooks): checkout puts the org on the plan; a failed invoice makes it past due (still
served) and tells it; after the grace period it is suspended and told; a paid invoice
reinstates it. Each step is the org's PlanState in the outbox, as the gateway gets it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tollgate.billing.plans import service as plans
from tollgate.contracts import topics
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.testing.fake_stripe import FakeStripe

from ..factories import migrated, outbox_data, outbox_types
from .test_stripe import stripe_billing

PRO = {"name": "Pro", "monthly_price": 4900, "included_requests": 10_000}


async def subscribe(
    client: httpx.AsyncClient, fake: FakeStripe, org: uuid.UUID, plan: dict[str, Any], owner: Any
) -> str:
    """The owner subscribes the org to `plan` and Stripe confirms; the Checkout's id."""
    await client.post(
        f"/v1/orgs/{org}/subscription-checkout", json={"plan_id": plan["id"]}, headers=owner
    )
    session_id = list(fake.sessions)[-1]
    await fake.deliver(client, fake.subscribe(session_id))
    return session_id


async def subscribed_to_pro(
    client: httpx.AsyncClient, fake: FakeStripe, org: uuid.UUID, admin: Any, owner: Any
) -> tuple[dict[str, Any], str]:
    """A new Pro plan, and the org subscribed to it: (the plan, the Checkout's id)."""
    pro = (await client.post("/v1/plans", json=PRO, headers=admin)).json()
    return pro, await subscribe(client, fake, org, pro, owner)


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


async def test_a_subscribed_org_cannot_subscribe_again_or_walk_off_to_a_free_plan(
    database_factory: Callable[[str], str],
) -> None:
    # Before: a second checkout was taken (the first subscription went on billing,
    # its events unknown), and an owner could move to a free plan while Stripe went on
    # charging for the paid one.
    org = uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        admin, owner = mint.headers(admin=True), mint.headers(orgs={org: "owner"})
        pro = (await client.post("/v1/plans", json=PRO, headers=admin)).json()
        free = (
            await client.post("/v1/plans", json={"name": "Free", "monthly_price": 0}, headers=admin)
        ).json()
        session_id = await subscribe(client, fake, org, pro, owner)
        second = await client.post(
            f"/v1/orgs/{org}/subscription-checkout", json={"plan_id": pro["id"]}, headers=owner
        )
        assert second.status_code == 409
        assert second.json()["type"].endswith("/subscription-active")
        assert len(fake.sessions) == 1
        walk = await client.put(f"/v1/orgs/{org}/plan", json={"plan_id": free["id"]}, headers=owner)
        assert walk.status_code == 409
        assert walk.json()["type"].endswith("/subscription-active")
        on = (await client.get(f"/v1/orgs/{org}/plan", headers=owner)).json()
        assert (on["plan"]["name"], on["next_plan"]) == ("Pro", None)
        # Once the subscription has ended (the org is suspended), a free plan is open.
        subscription = fake.sessions[session_id]["subscription"]
        ended = fake.event("customer.subscription.deleted", {"id": subscription})
        assert (await fake.deliver(client, ended)).json()["outcome"] == "suspended"
        moved = await client.put(
            f"/v1/orgs/{org}/plan", json={"plan_id": free["id"]}, headers=owner
        )
        assert moved.status_code == 200, moved.text
        # At once and in good standing (before: Free was only due at the period end,
        # the org still suspended on Pro).
        on = (await client.get(f"/v1/orgs/{org}/plan", headers=owner)).json()
        assert (on["plan"]["name"], on["status"], on["next_plan"]) == ("Free", "active", None)


async def test_a_subscription_paid_for_a_plan_archived_meanwhile_is_applied(
    database_factory: Callable[[str], str],
) -> None:
    # Before: the plan's archiving made `checkout.session.completed` a 404, retried by
    # Stripe until it gave up: the customer paid every month and never got the plan.
    org = uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        admin, owner = mint.headers(admin=True), mint.headers(orgs={org: "owner"})
        pro = (await client.post("/v1/plans", json=PRO, headers=admin)).json()
        await client.post(
            f"/v1/orgs/{org}/subscription-checkout", json={"plan_id": pro["id"]}, headers=owner
        )
        (session_id,) = fake.sessions
        archived = await client.patch(
            f"/v1/plans/{pro['id']}", json={"archived": True}, headers=admin
        )
        assert archived.status_code == 200, archived.text
        paid = await fake.deliver(client, fake.subscribe(session_id))
        assert (paid.status_code, paid.json()["outcome"]) == (200, "subscribed")
        on = (await client.get(f"/v1/orgs/{org}/plan", headers=owner)).json()
        assert (on["plan"]["name"], on["status"]) == ("Pro", "active")


async def test_only_an_operator_lifts_an_operators_suspension(
    database_factory: Callable[[str], str],
) -> None:
    # Before: the next paid invoice (or any subscription update saying `active`, a
    # card change say) reinstated an org an operator had suspended by hand.
    org = uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        admin, owner = mint.headers(admin=True), mint.headers(orgs={org: "owner"})
        _pro, session_id = await subscribed_to_pro(client, fake, org, admin, owner)
        subscription = fake.sessions[session_id]["subscription"]
        suspended = await client.patch(
            f"/v1/orgs/{org}/plan", json={"status": "suspended"}, headers=admin
        )
        assert suspended.json()["status"] == "suspended"
        paid = await fake.deliver(client, fake.invoice(subscription, paid=True))
        assert paid.json()["outcome"] == "suspended-by-operator"
        updated = fake.event(
            "customer.subscription.updated", {"id": subscription, "status": "active"}
        )
        assert (await fake.deliver(client, updated)).json()["outcome"] == "suspended-by-operator"
        on = (await client.get(f"/v1/orgs/{org}/plan", headers=owner)).json()
        assert on["status"] == "suspended"
        lifted = await client.patch(
            f"/v1/orgs/{org}/plan", json={"status": "active"}, headers=admin
        )
        assert lifted.json()["status"] == "active"


async def test_a_suspended_org_neither_subscribes_twice_nor_trials_its_way_out(
    database_factory: Callable[[str], str],
) -> None:
    # Before: a suspended org counted as unsubscribed (a second checkout billed it
    # twice), and a plan with a trial set it trialing, lifting an operator's suspension.
    org = uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        admin, owner = mint.headers(admin=True), mint.headers(orgs={org: "owner"})
        pro = (await client.post("/v1/plans", json=PRO, headers=admin)).json()
        trial = {"name": "Trial", "monthly_price": 0, "trial_days": 14}
        free_trial = (await client.post("/v1/plans", json=trial, headers=admin)).json()
        await subscribe(client, fake, org, pro, owner)
        await client.patch(f"/v1/orgs/{org}/plan", json={"status": "suspended"}, headers=admin)
        second = await client.post(
            f"/v1/orgs/{org}/subscription-checkout", json={"plan_id": pro["id"]}, headers=owner
        )
        assert second.status_code == 409
        assert second.json()["type"].endswith("/org-suspended")
        out = await client.put(
            f"/v1/orgs/{org}/plan", json={"plan_id": free_trial["id"]}, headers=owner
        )
        assert out.status_code == 409
        on = (await client.get(f"/v1/orgs/{org}/plan", headers=owner)).json()
        assert (on["plan"]["name"], on["status"]) == ("Pro", "suspended")
        # Lifted by the operator, the subscription still pays: no second one.
        await client.patch(f"/v1/orgs/{org}/plan", json={"status": "active"}, headers=admin)
        third = await client.post(
            f"/v1/orgs/{org}/subscription-checkout", json={"plan_id": pro["id"]}, headers=owner
        )
        assert third.status_code == 409
        assert third.json()["type"].endswith("/subscription-active")
        assert len(fake.sessions) == 1


async def test_nothing_of_an_ended_subscription_reinstates_or_suspends_the_org(
    database_factory: Callable[[str], str],
) -> None:
    # Stripe does not order its events, and an old invoice may be paid on its page after
    # the end. First fixes kept the org on Pro for good after one late payment, or
    # revived the subscription from a late `updated(active)`; before them, a late
    # failed invoice suspended an org since moved to a free plan.
    org = uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        admin, owner = mint.headers(admin=True), mint.headers(orgs={org: "owner"})
        _pro, session_id = await subscribed_to_pro(client, fake, org, admin, owner)
        free = (
            await client.post("/v1/plans", json={"name": "Free", "monthly_price": 0}, headers=admin)
        ).json()
        subscription = fake.sessions[session_id]["subscription"]
        await fake.deliver(client, fake.invoice(subscription, paid=False))
        ended = fake.event("customer.subscription.deleted", {"id": subscription})
        assert (await fake.deliver(client, ended)).json()["outcome"] == "suspended"
        late_active = fake.event(
            "customer.subscription.updated", {"id": subscription, "status": "active"}
        )
        for late in (fake.invoice(subscription, paid=True), late_active):
            assert (await fake.deliver(client, late)).json()["outcome"] == "subscription-ended"
        on = (await client.get(f"/v1/orgs/{org}/plan", headers=owner)).json()
        assert (on["plan"]["name"], on["status"]) == ("Pro", "suspended")
        moved = await client.put(
            f"/v1/orgs/{org}/plan", json={"plan_id": free["id"]}, headers=owner
        )
        assert moved.status_code == 200
        failed = await fake.deliver(client, fake.invoice(subscription, paid=False))
        assert failed.json()["outcome"] == "subscription-ended"
        on = (await client.get(f"/v1/orgs/{org}/plan", headers=owner)).json()
        assert (on["plan"]["name"], on["status"]) == ("Free", "active")


async def test_unpaid_is_not_the_end_of_a_subscription(
    database_factory: Callable[[str], str],
) -> None:
    # Stripe leaves a subscription `unpaid` when it gives up retrying; paying the
    # invoice makes it active again and it bills as before. Before: `unpaid` ended it,
    # so once active again the owner could subscribe a second time or walk off.
    org = uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        admin, owner = mint.headers(admin=True), mint.headers(orgs={org: "owner"})
        pro, session_id = await subscribed_to_pro(client, fake, org, admin, owner)
        subscription = fake.sessions[session_id]["subscription"]
        unpaid = fake.event(
            "customer.subscription.updated", {"id": subscription, "status": "unpaid"}
        )
        assert (await fake.deliver(client, unpaid)).json()["outcome"] == "suspended"
        active = fake.event(
            "customer.subscription.updated", {"id": subscription, "status": "active"}
        )
        assert (await fake.deliver(client, active)).json()["outcome"] == "reinstated"
        second = await client.post(
            f"/v1/orgs/{org}/subscription-checkout", json={"plan_id": pro["id"]}, headers=owner
        )
        assert second.status_code == 409
        assert second.json()["type"].endswith("/subscription-active")
