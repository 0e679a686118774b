"""SQL of the plans and org_plans tables. No business rules here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.models import OrgPlan, Plan


async def insert_plan(session: AsyncSession, values: dict[str, Any]) -> Plan | None:
    """Insert a plan; None when a live plan already has its name."""
    try:
        async with session.begin_nested():
            await session.execute(insert(Plan).values(**values))
    except IntegrityError:
        return None
    return await get_plan(session, values["id"])


async def get_plan(session: AsyncSession, plan_id: uuid.UUID, *, lock: bool = False) -> Plan | None:
    stmt = select(Plan).where(Plan.id == plan_id).execution_options(populate_existing=True)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def update_plan(session: AsyncSession, plan_id: uuid.UUID, values: dict[str, Any]) -> bool:
    """Write changed plan columns; False when a live plan already has the new name."""
    try:
        async with session.begin_nested():
            await session.execute(update(Plan).where(Plan.id == plan_id).values(**values))
    except IntegrityError:
        return False
    return True


async def list_plans(
    session: AsyncSession, *, archived: bool, after: uuid.UUID | None, limit: int
) -> Sequence[Plan]:
    """Plans by id (creation order: ids are UUIDv7), after `after`."""
    stmt = select(Plan).order_by(Plan.id).limit(limit)
    if not archived:
        stmt = stmt.where(Plan.archived.is_(False))
    if after is not None:
        stmt = stmt.where(Plan.id > after)
    return (await session.execute(stmt)).scalars().all()


async def lock_org_plan(session: AsyncSession, org_id: uuid.UUID) -> OrgPlan | None:
    stmt = (
        select(OrgPlan)
        .where(OrgPlan.org_id == org_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_org_plan(session: AsyncSession, org_id: uuid.UUID) -> OrgPlan | None:
    return (
        await session.execute(select(OrgPlan).where(OrgPlan.org_id == org_id))
    ).scalar_one_or_none()


async def insert_org_plan(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert an org's first plan row (the caller holds no row: first assignment);
    False when another transaction wrote the org's row first."""
    stmt = (
        insert(OrgPlan)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["org_id"])
        .returning(OrgPlan.org_id)
    )
    return (await session.execute(stmt)).first() is not None


async def lock_orgs_on_plan(session: AsyncSession, plan_id: uuid.UUID) -> Sequence[OrgPlan]:
    """Every org on the plan (or waiting to move to it), locked, in org id order."""
    stmt = (
        select(OrgPlan)
        .where((OrgPlan.plan_id == plan_id) | (OrgPlan.next_plan_id == plan_id))
        .order_by(OrgPlan.org_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalars().all()


async def lock_periods_ended(session: AsyncSession, now: datetime, limit: int) -> Sequence[OrgPlan]:
    """Org plans whose period has ended (or whose trial has), locked, skipping rows
    another transaction holds."""
    stmt = (
        select(OrgPlan)
        .where((OrgPlan.period_end <= now) | (OrgPlan.trial_ends_at <= now))
        .order_by(OrgPlan.period_end)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalars().all()


async def lock_org_plan_by_subscription(
    session: AsyncSession, subscription_id: str
) -> OrgPlan | None:
    stmt = (
        select(OrgPlan)
        .where(OrgPlan.subscription_id == subscription_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def lock_grace_ended(session: AsyncSession, now: datetime, limit: int) -> Sequence[OrgPlan]:
    """Past-due org plans whose grace has ended, locked, skipping held rows."""
    stmt = (
        select(OrgPlan)
        .where(OrgPlan.status == "past_due", OrgPlan.grace_until <= now)
        .order_by(OrgPlan.grace_until)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalars().all()


async def lock_overage_orgs(
    session: AsyncSession, org_ids: Sequence[uuid.UUID]
) -> Sequence[tuple[OrgPlan, Plan]]:
    """The org plans (locked, in org id order) of orgs among `org_ids` whose plan
    charges overage, with their plan."""
    stmt = (
        select(OrgPlan, Plan)
        .join(Plan, Plan.id == OrgPlan.plan_id)
        .where(
            OrgPlan.org_id.in_(org_ids),
            Plan.past_quota == "overage",
            Plan.included_requests.is_not(None),
        )
        .order_by(OrgPlan.org_id)
        .with_for_update(of=OrgPlan)
        .execution_options(populate_existing=True)
    )
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]
