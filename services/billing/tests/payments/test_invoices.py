"""Subscription invoices in the receipts (fake Stripe, official SDK, signed webhooks):
every invoice Stripe reports paid or failed for an org's plan is listed once with its
amounts, plan and Stripe's invoice page; a failed invoice paid later becomes paid and a
late failure report never turns it back; members of other orgs see none of it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

from .test_stripe import stripe_billing

PRO = {"name": "Pro", "monthly_price": 4900, "included_requests": 10_000}


async def test_subscription_invoices_are_listed_once_each_and_paid_is_final(
    database_factory: Callable[[str], str],
) -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    async with stripe_billing(database_factory) as (client, fake, mint):
        admin = mint.headers(admin=True)
        owner = mint.headers(orgs={org: "owner"})
        viewer = mint.headers(orgs={org: "viewer"})
        stranger = mint.headers(orgs={other: "owner"})
        pro = (await client.post("/v1/plans", json=PRO, headers=admin)).json()
        started = await client.post(
            f"/v1/orgs/{org}/subscription-checkout", json={"plan_id": pro["id"]}, headers=owner
        )
        assert started.status_code == 201, started.text
        (session_id,) = fake.sessions
        subscribed = fake.subscribe(session_id)
        subscription = fake.sessions[session_id]["subscription"]
        # Stripe does not order events: the first invoice may arrive before the checkout.
        first = fake.invoice(subscription, paid=True)
        assert (await fake.deliver(client, first)).status_code == 200
        assert (await fake.deliver(client, subscribed)).json()["outcome"] == "subscribed"
        assert (await fake.deliver(client, first)).json()["outcome"] == "duplicate"

        failed = fake.invoice(subscription, paid=False)
        second_id = json.loads(failed)["data"]["object"]["id"]
        assert (await fake.deliver(client, failed)).json()["outcome"] == "past-due"
        listed = await client.get(f"/v1/orgs/{org}/invoices", headers=viewer)
        assert listed.status_code == 200, listed.text
        assert [
            (i["status"], i["amount_due"], i["amount_paid"]) for i in listed.json()["items"]
        ] == [
            ("payment_failed", 4900, 0),
            ("paid", 4900, 4900),
        ]

        paid_later = fake.invoice(subscription, paid=True, invoice_id=second_id)
        assert (await fake.deliver(client, paid_later)).json()["outcome"] == "reinstated"
        late_failure = fake.invoice(subscription, paid=False, invoice_id=second_id)
        await fake.deliver(client, late_failure)

        page = (await client.get(f"/v1/orgs/{org}/invoices", headers=viewer)).json()
        items = page["items"]
        assert [i["invoice_id"] for i in items] == [
            second_id,
            json.loads(first)["data"]["object"]["id"],
        ]
        assert [i["status"] for i in items] == ["paid", "paid"]
        newest = items[0]
        assert newest["amount_paid"] == 4900
        assert newest["currency"] == "usd"
        assert newest["plan_id"] == pro["id"]
        assert newest["subscription_id"] == subscription
        assert newest["hosted_invoice_url"].endswith(f"/invoices/{second_id}")
        assert newest["paid_at"] is not None
        one = await client.get(f"/v1/orgs/{org}/invoices/{newest['id']}", headers=viewer)
        assert one.json() == newest

        small = await client.get(f"/v1/orgs/{org}/invoices", params={"limit": 1}, headers=viewer)
        rest = await client.get(
            f"/v1/orgs/{org}/invoices",
            params={"limit": 1, "cursor": small.json()["next_cursor"]},
            headers=viewer,
        )
        assert [i["id"] for i in small.json()["items"] + rest.json()["items"]] == [
            i["id"] for i in items
        ]

        # Another org's member: nothing of this org, not even by the invoice's id.
        for path in (f"/v1/orgs/{org}/invoices", f"/v1/orgs/{org}/invoices/{newest['id']}"):
            refused = await client.get(path, headers=stranger)
            assert refused.status_code == 404, path
            assert refused.headers["content-type"] == "application/problem+json"
        theirs = await client.get(f"/v1/orgs/{other}/invoices/{newest['id']}", headers=stranger)
        assert theirs.status_code == 404
        assert theirs.json()["type"].endswith("/invoice-not-found")
        assert (await client.get(f"/v1/orgs/{other}/invoices", headers=stranger)).json()[
            "items"
        ] == []
        assert (await client.get(f"/v1/orgs/{org}/invoices")).status_code == 401
