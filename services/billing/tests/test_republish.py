"""`republish`: a broker that lost billing's compacted topics gets every org's balance
and plan state again, with the values of the database."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from tollgate.billing.republish import republish_all
from tollgate.contracts import topics
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.testing.tokens import TokenMint

from .factories import api_client, migrated, outbox_data, settings_for


async def test_every_balance_and_plan_is_written_again(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url)
    mint = TokenMint()
    admin = mint.headers(admin=True)
    funded, on_plan = uuid.uuid4(), uuid.uuid4()
    async with api_client(settings, mint) as (client, _):
        topped = await client.post(
            f"/v1/orgs/{funded}/credits",
            json={"amount": 250},
            headers={**admin, "Idempotency-Key": "republish-test"},
        )
        assert topped.status_code == 201, topped.text
        plan = await client.post(
            "/v1/plans",
            json={"name": "Starter", "monthly_price": 0, "included_requests": 100},
            headers=admin,
        )
        assert plan.status_code == 201, plan.text
        assigned = await client.put(
            f"/v1/orgs/{on_plan}/plan", json={"plan_id": plan.json()["id"]}, headers=admin
        )
        assert assigned.status_code == 200, assigned.text

    engine = create_engine(url)
    try:
        balances_before = await outbox_data(engine, topics.BILLING_BALANCES.name)
        plans_before = await outbox_data(engine, topics.BILLING_PLANS.name)
        balances, plans = await republish_all(session_maker(engine), settings)
        balances_after = (await outbox_data(engine, topics.BILLING_BALANCES.name))[
            len(balances_before) :
        ]
        plans_after = (await outbox_data(engine, topics.BILLING_PLANS.name))[len(plans_before) :]
    finally:
        await engine.dispose()

    last_balance = {s["org_id"]: s for s in balances_before}
    assert balances == len(balances_after) == len(last_balance)
    funded_state = next(s for s in balances_after if s["org_id"] == str(funded))
    assert funded_state["balance"] == 250
    assert funded_state["version"] == last_balance[str(funded)]["version"] + 1
    assert plans == len(plans_after) == 1
    assert plans_after[0]["org_id"] == str(on_plan)
    assert plans_after[0]["plan_name"] == "Starter"
    assert plans_after[0]["version"] == plans_before[-1]["version"]
