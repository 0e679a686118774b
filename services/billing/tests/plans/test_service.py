"""Plan rules on a real database: two first assignments of one org at the same time
leave one plan, the same in the org's row and in the `PlanState` the gateway gets; a
plan stored before the contracts bounded prices still publishes its state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import text

from tollgate.billing.plans import service as plans
from tollgate.billing.plans.schemas import PlanIn
from tollgate.contracts import topics
from tollgate.contracts.envelope import CREDITS_MAX
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.testing.databases import upgrade_head

from ..factories import migrated, outbox_data


async def test_two_first_assignments_at_once_agree_on_one_plan(
    database_factory: Callable[[str], str],
) -> None:
    # Before: the second first assignment found its insert skipped (the first had just
    # written the row), yet published its own plan's terms over the first's row: the
    # gateway enforced the admin's paid plan while billing kept (and answered) the free
    # one, and the admin's assignment was silently lost.
    url = await migrated(database_factory("billing"))
    engine = create_engine(url)
    sessions = session_maker(engine)
    org = uuid.uuid4()
    try:
        async with sessions() as session, session.begin():
            free = await plans.create_plan(
                session, PlanIn.model_validate({"name": "Free", "monthly_price": 0})
            )
            pro = await plans.create_plan(
                session,
                PlanIn.model_validate(
                    {"name": "Pro", "monthly_price": 4_900, "included_requests": 100_000}
                ),
            )
        owner_session = sessions()
        try:
            async with owner_session.begin():
                # The owner picks the free tier, not committed yet ...
                await plans.assign_plan(owner_session, org, free.id, by_admin=False)

                async def admin_assigns() -> uuid.UUID:
                    async with sessions() as session, session.begin():
                        view = await plans.assign_plan(session, org, pro.id, by_admin=True)
                        return view.plan.id

                # ... while an operator puts the org on Pro (it waits on the owner's row).
                admin = asyncio.create_task(admin_assigns())
                await asyncio.sleep(0.3)
                assert not admin.done()
        finally:
            await owner_session.close()
        answered = await admin
        async with sessions() as session:
            stored = (await plans.org_plan(session, org)).plan.id
        states = await outbox_data(engine, topics.BILLING_PLANS.name)
        last = max((s for s in states if s["org_id"] == str(org)), key=lambda s: s["version"])
        # An upgrade applies at once: the org is on Pro, as the admin was told, and the
        # gateway enforces the plan billing keeps.
        assert answered == stored == pro.id
        assert last["plan_id"] == str(stored)
    finally:
        await engine.dispose()


async def test_a_plan_priced_past_the_contract_bound_before_it_existed_still_rolls_over(
    database_factory: Callable[[str], str],
) -> None:
    # Billing stored overage prices up to 10^15; `PlanState` now refuses more than
    # CREDITS_MAX, so such a plan failed every publish of its orgs' state, the period
    # rollover among them (500 orgs a transaction: every org's quota reset), for good.
    url = await migrated(database_factory("billing"))
    engine = create_engine(url)
    sessions = session_maker(engine)
    org = uuid.uuid4()
    try:
        async with sessions() as session, session.begin():
            metered = await plans.create_plan(
                session,
                PlanIn.model_validate(
                    {
                        "name": "Metered",
                        "monthly_price": 0,
                        "included_requests": 10,
                        "past_quota": "overage",
                        "overage_price": 5,
                    }
                ),
            )
            await plans.assign_plan(session, org, metered.id, by_admin=True)
        # The database as the previous release left it: at 0012, with the price it allowed.
        async with engine.begin() as conn:
            await conn.execute(
                text("ALTER TABLE plans DROP CONSTRAINT IF EXISTS ck_plans_overage_price_max")
            )
            await conn.execute(text("UPDATE plans SET overage_price = 1000000000000000"))
            await conn.execute(text("UPDATE org_plans SET period_end = now() - interval '1 s'"))
            await conn.execute(text("UPDATE alembic_version SET version_num = '0012'"))
        await asyncio.to_thread(upgrade_head, "tollgate.billing", url)

        async with sessions() as session, session.begin():
            assert await plans.roll_periods(session, datetime.now(UTC)) == 1
        states = await outbox_data(engine, topics.BILLING_PLANS.name)
        assert states[-1]["org_id"] == str(org)
        assert states[-1]["overage_price"] == CREDITS_MAX
    finally:
        await engine.dispose()
