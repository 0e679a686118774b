"""Plans through the HTTP API: operators' rate cards, an org's plan (first plan,
upgrade at once, downgrade at the period end), suspension, and the `PlanState` each
change leaves in the outbox for the gateway."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tollgate.billing.plans import service
from tollgate.contracts import topics
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.testing.tokens import TokenMint

from ..factories import api_client, migrated, outbox_data, settings_for


async def plan_states(url: str, org_id: uuid.UUID) -> list[dict[str, Any]]:
    """The PlanState data enqueued for an org, oldest first."""
    engine = create_engine(url)
    try:
        states = await outbox_data(engine, topics.BILLING_PLANS.name)
    finally:
        await engine.dispose()
    return [s for s in states if s["org_id"] == str(org_id)]


STARTER = {"name": "Starter", "monthly_price": 0, "included_requests": 100}
PRO = {
    "name": "Pro",
    "monthly_price": 4900,
    "included_requests": 10_000,
    "past_quota": "reject_429",
    "rate_limits": {"per_second": 20},
}


async def test_admins_manage_plans_others_read_them(database_factory: Callable[[str], str]) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    org = uuid.uuid4()
    admin, owner = mint.headers(admin=True), mint.headers(orgs={org: "owner"})
    async with api_client(settings, mint) as (client, _):
        refused = await client.post("/v1/plans", json=STARTER, headers=owner)
        assert refused.status_code == 403
        created = await client.post("/v1/plans", json=STARTER, headers=admin)
        assert created.status_code == 201, created.text
        starter = created.json()
        assert starter["free"] is True
        assert starter["past_quota"] == "reject_402"
        twin = await client.post("/v1/plans", json=STARTER, headers=admin)
        assert (twin.status_code, twin.json()["type"].rsplit("/", 1)[-1]) == (
            409,
            "plan-name-taken",
        )
        for bad in (
            {**PRO, "monthly_price": 1.5},
            {**PRO, "monthly_price": "10"},
            {**PRO, "past_quota": "maybe"},
            {**PRO, "included_requests": -1},
            # More credits per call than any event may carry: its plan event would be
            # refused by every consumer (the contracts' CREDITS_MAX).
            {**PRO, "past_quota": "overage", "overage_price": 10**12 + 1},
        ):
            r = await client.post("/v1/plans", json=bad, headers=admin)
            assert r.status_code == 422, bad
            assert r.headers["content-type"] == "application/problem+json"
        pro = (await client.post("/v1/plans", json=PRO, headers=admin)).json()
        page = await client.get("/v1/plans", params={"limit": 1}, headers=owner)
        assert [p["name"] for p in page.json()["items"]] == ["Starter"]
        rest = await client.get(
            "/v1/plans", params={"cursor": page.json()["next_cursor"]}, headers=owner
        )
        assert [p["name"] for p in rest.json()["items"]] == ["Pro"]
        assert rest.json()["next_cursor"] is None
        patched = await client.patch(
            f"/v1/plans/{pro['id']}", json={"included_requests": 20_000}, headers=admin
        )
        assert patched.json()["included_requests"] == 20_000
        assert (
            await client.patch(f"/v1/plans/{pro['id']}", json={"name": "x"}, headers=owner)
        ).status_code == 403
        assert (
            await client.patch(f"/v1/plans/{starter['id']}", json={"archived": True}, headers=admin)
        ).status_code == 200
        listed = (await client.get("/v1/plans", headers=owner)).json()["items"]
        assert [p["name"] for p in listed] == ["Pro"]
        gone = await client.get(f"/v1/plans/{starter['id']}", headers=owner)
        assert (gone.status_code, gone.json()["type"].rsplit("/", 1)[-1]) == (404, "plan-not-found")
        missing = await client.patch(f"/v1/plans/{uuid.uuid4()}", json={}, headers=admin)
        assert missing.status_code == 404


async def test_upgrade_applies_now_downgrade_at_the_period_end(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url)
    mint = TokenMint()
    org = uuid.uuid4()
    admin, owner = mint.headers(admin=True), mint.headers(orgs={org: "owner"})
    async with api_client(settings, mint) as (client, _):
        starter = (await client.post("/v1/plans", json=STARTER, headers=admin)).json()
        pro = (await client.post("/v1/plans", json=PRO, headers=admin)).json()
        none_yet = await client.get(f"/v1/orgs/{org}/plan", headers=owner)
        assert (none_yet.status_code, none_yet.json()["type"].rsplit("/", 1)[-1]) == (
            404,
            "no-plan",
        )
        # Owners pick free plans; a paid one needs payment (or an operator).
        paid = await client.put(f"/v1/orgs/{org}/plan", json={"plan_id": pro["id"]}, headers=owner)
        assert paid.status_code == 403
        assert paid.json()["type"].endswith("/plan-requires-payment")
        first = await client.put(
            f"/v1/orgs/{org}/plan", json={"plan_id": starter["id"]}, headers=owner
        )
        assert first.status_code == 200, first.text
        period_start = first.json()["period_start"]
        upgraded = await client.put(
            f"/v1/orgs/{org}/plan", json={"plan_id": pro["id"]}, headers=admin
        )
        assert upgraded.json()["plan"]["name"] == "Pro"
        assert upgraded.json()["period_start"] == period_start  # the period goes on
        down = await client.put(
            f"/v1/orgs/{org}/plan", json={"plan_id": starter["id"]}, headers=owner
        )
        assert down.json()["plan"]["name"] == "Pro"
        assert down.json()["next_plan"]["name"] == "Starter"

    states = await plan_states(url, org)
    assert [(s["plan_name"], s["included_requests"], s["version"]) for s in states] == [
        ("Starter", 100, 1),
        ("Pro", 10_000, 2),
        ("Pro", 10_000, 3),
    ]
    assert states[1]["past_quota"] == "reject_429"
    assert states[1]["rate_limits"]["per_second"] == 20

    # The period ends: the downgrade applies and a new period starts.
    engine = create_engine(url)
    try:
        sessions = session_maker(engine)
        async with sessions() as session, session.begin():
            later = datetime.now(UTC) + timedelta(days=32)
            assert await service.roll_periods(session, later) == 1
            assert await service.roll_periods(session, later) == 0
    finally:
        await engine.dispose()
    last = (await plan_states(url, org))[-1]
    assert (last["plan_name"], last["included_requests"], last["version"]) == ("Starter", 100, 4)
    assert last["period_start"] > states[0]["period_start"]


async def test_suspension_and_plan_edits_reach_the_orgs_state(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url)
    mint = TokenMint()
    org = uuid.uuid4()
    admin = mint.headers(admin=True)
    async with api_client(settings, mint) as (client, _):
        pro = (await client.post("/v1/plans", json={**PRO, "trial_days": 14}, headers=admin)).json()
        on = await client.put(f"/v1/orgs/{org}/plan", json={"plan_id": pro["id"]}, headers=admin)
        assert on.json()["status"] == "trialing"
        assert on.json()["trial_ends_at"] is not None
        await client.patch(
            f"/v1/plans/{pro['id']}", json={"unlimited_requests": True}, headers=admin
        )
        suspended = await client.patch(
            f"/v1/orgs/{org}/plan", json={"status": "suspended"}, headers=admin
        )
        assert suspended.json()["status"] == "suspended"
        owner = mint.headers(orgs={org: "owner"})
        assert (
            await client.patch(f"/v1/orgs/{org}/plan", json={"status": "active"}, headers=owner)
        ).status_code == 403
        await client.patch(f"/v1/orgs/{org}/plan", json={"status": "active"}, headers=admin)
    states = await plan_states(url, org)
    assert [(s["status"], s["included_requests"]) for s in states] == [
        ("trialing", 10_000),
        ("trialing", None),
        ("suspended", None),
        ("active", None),
    ]


async def test_another_tenants_plan_is_not_found(database_factory: Callable[[str], str]) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    admin, me = mint.headers(admin=True), mint.headers(orgs={mine: "owner"})
    async with api_client(settings, mint) as (client, _):
        starter = (await client.post("/v1/plans", json=STARTER, headers=admin)).json()
        body = {"plan_id": starter["id"]}
        assert (
            await client.put(f"/v1/orgs/{theirs}/plan", json=body, headers=admin)
        ).status_code == 200
        assert (await client.put(f"/v1/orgs/{mine}/plan", json=body, headers=me)).status_code == 200
        for method, kwargs in (
            ("GET", {}),
            ("PUT", {"json": body}),
            ("PATCH", {"json": {"status": "suspended"}}),
        ):
            r = await client.request(method, f"/v1/orgs/{theirs}/plan", headers=me, **kwargs)
            assert r.status_code in (403, 404), method
            assert "plan" not in r.json()
        r = await client.get(f"/v1/orgs/{theirs}/plan", headers=me)
        assert r.status_code == 404
        assert (
            await client.put(f"/v1/orgs/{theirs}/plan", json=body, headers=me)
        ).status_code == 404
        theirs_plan = (await client.get(f"/v1/orgs/{theirs}/plan", headers=admin)).json()
    assert theirs_plan["status"] == "active"
