"""Billing's audit records say what a change did: the before/after of the fields it
changed (billing settings, a plan's terms, an org's plan), not only the body sent."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tollgate.contracts import topics
from tollgate.kit.db import create_engine
from tollgate.kit.testing.tokens import TokenMint

from .factories import api_client, migrated, outbox_data, settings_for


async def test_updates_record_the_fields_they_changed_before_and_after(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    mint = TokenMint()
    org = uuid.uuid4()
    admin, owner = mint.headers(admin=True), mint.headers(orgs={org: "owner"})
    async with api_client(settings_for(url), mint) as (client, _):
        settings = await client.patch(
            f"/v1/orgs/{org}/billing-settings",
            json={"low_threshold": 250, "mode": None},
            headers=owner,
        )
        assert settings.status_code == 200, settings.text
        plan = await client.post(
            "/v1/plans", json={"name": "Free", "monthly_price": 0}, headers=admin
        )
        plan_id = plan.json()["id"]
        terms = await client.patch(
            f"/v1/plans/{plan_id}",
            json={"included_requests": 500, "name": "Free"},
            headers=admin,
        )
        assert terms.status_code == 200, terms.text
        placed = await client.put(f"/v1/orgs/{org}/plan", json={"plan_id": plan_id}, headers=owner)
        assert placed.status_code == 200, placed.text
        suspended = await client.patch(
            f"/v1/orgs/{org}/plan", json={"status": "suspended"}, headers=admin
        )
        assert suspended.status_code == 200, suspended.text

    engine = create_engine(url)
    try:
        records = await outbox_data(engine, topics.AUDIT_RECORDS.name)
    finally:
        await engine.dispose()
    changes: dict[str, dict[str, Any]] = {
        r["action"]: {k: r["diff"].get(k) for k in ("before", "after")} for r in records
    }
    assert changes["billing.patch_billing_settings"] == {
        "before": {"low_threshold": 1000},
        "after": {"low_threshold": 250},
    }
    # The name was sent unchanged: only what changed is listed.
    assert changes["billing.update_plan"] == {
        "before": {"included_requests": None},
        "after": {"included_requests": 500},
    }
    assert changes["billing.put_org_plan"] == {
        "before": {"plan_id": None, "status": None},
        "after": {"plan_id": plan_id, "status": "active"},
    }
    assert changes["billing.set_org_plan_status"] == {
        "before": {"status": "active"},
        "after": {"status": "suspended"},
    }
