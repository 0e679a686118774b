"""`python -m tollgate.billing republish`: every org's balance and plan state written
again to their compacted topics (through the outbox), for a broker that lost them.

A lost topic (or a whole broker: `make up` starts an empty embedded one every time)
otherwise leaves the gateway without balances, so it refuses every prepaid org it has
not heard of. Balances get a new version; plan states keep theirs (the gateway keeps the
newest, so one it already holds is ignored). One transaction per batch of orgs.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.balances import repository as accounts
from tollgate.billing.balances.service import AccountState, publish_state
from tollgate.billing.config import Settings
from tollgate.billing.models import Account, OrgPlan, Plan
from tollgate.billing.plans.service import plan_state
from tollgate.kit.db import SessionMaker, create_engine, session_maker
from tollgate.kit.logs import configure_logging
from tollgate.kit.outbox import emit

BATCH = 500


async def republish_balances(
    session: AsyncSession, settings: Settings, orgs: list[uuid.UUID]
) -> None:
    now = datetime.now(UTC)
    states = [AccountState.from_row(row) for row in await accounts.lock(session, orgs)]
    for state in states:
        await publish_state(session, state, settings, now)
    await accounts.save(session, [state.as_row() for state in states])


async def republish_plans(session: AsyncSession) -> int:
    now = datetime.now(UTC)
    rows = (
        await session.execute(select(OrgPlan, Plan).join(Plan, Plan.id == OrgPlan.plan_id))
    ).all()
    for org_plan, plan in rows:
        state = plan_state(org_plan, plan, now)
        await emit(session, state, subject=state.kafka_key())
    return len(rows)


async def republish_all(sessions: SessionMaker, settings: Settings) -> tuple[int, int]:
    """(balances, plans) written to the outbox."""
    async with sessions() as session:
        orgs = list((await session.scalars(select(Account.org_id).order_by(Account.org_id))).all())
    for start in range(0, len(orgs), BATCH):
        async with sessions() as session, session.begin():
            await republish_balances(session, settings, orgs[start : start + BATCH])
    async with sessions() as session, session.begin():
        plans = await republish_plans(session)
    return len(orgs), plans


def republish(settings: Settings, args: list[str]) -> int:
    configure_logging("billing", settings.log_level, json=settings.log_json)

    async def run() -> tuple[int, int]:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            return await republish_all(session_maker(engine), settings)
        finally:
            await engine.dispose()

    balances, plans = asyncio.run(run())
    print(f"republished {balances} balances and {plans} plans")
    return 0
