"""Soft quotas: an org on an overage plan is charged `overage_price` for each request
past the plan's included requests in the period (free requests count too), once per
request however often Kafka redelivers it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from tollgate.billing.ledger import service as ledger
from tollgate.billing.plans import service as plans
from tollgate.billing.plans.schemas import PlanIn
from tollgate.kit.db import create_engine, session_maker

from ..factories import ledger_total, migrated, request_event, settings_for


async def test_calls_past_the_quota_cost_the_overage_price_once(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url)
    engine = create_engine(url)
    sessions = session_maker(engine)
    metered, other = uuid.uuid4(), uuid.uuid4()
    try:
        async with sessions() as session, session.begin():
            plan = await plans.create_plan(
                session,
                PlanIn.model_validate(
                    {
                        "name": "Soft",
                        "monthly_price": 0,
                        "included_requests": 3,
                        "past_quota": "overage",
                        "overage_price": 5,
                    }
                ),
            )
            await plans.assign_plan(session, metered, plan.id, by_admin=True)
        first = [request_event(metered, cost=1) for _ in range(2)]
        second = [request_event(metered, cost=0) for _ in range(3)] + [
            request_event(other, cost=0) for _ in range(9)
        ]
        async with sessions() as session, session.begin():
            await ledger.debit_for_requests(session, first, settings)
        async with sessions() as session, session.begin():
            outcome = await ledger.debit_for_requests(session, second, settings)
        async with sessions() as session, session.begin():
            again = await ledger.debit_for_requests(session, first + second, settings)
        async with sessions() as session:
            # 2 priced calls (1 each) + 5 calls of which 2 are past the 3 included (5 each).
            assert await ledger_total(session, metered) == -(2 + 2 * 5)
            assert await ledger_total(session, other) == 0
        assert outcome.credits == 10
        assert again.credits == 0
        assert again.redelivered == 5
    finally:
        await engine.dispose()
