"""SQL of auto top-up settings and their charge queue. No business rules here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.models import Account, AutoTopUp, AutoTopUpCharge


async def lock_enabled(session: AsyncSession, org_ids: Sequence[uuid.UUID]) -> Sequence[AutoTopUp]:
    """The enabled settings of these orgs, locked, in org id order."""
    stmt = (
        select(AutoTopUp)
        .where(AutoTopUp.org_id.in_(sorted(org_ids)), AutoTopUp.enabled)
        .order_by(AutoTopUp.org_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalars().all()


async def get(session: AsyncSession, org_id: uuid.UUID, *, lock: bool = False) -> AutoTopUp | None:
    stmt = select(AutoTopUp).where(AutoTopUp.org_id == org_id)
    if lock:
        stmt = stmt.with_for_update()
    return (
        await session.execute(stmt.execution_options(populate_existing=True))
    ).scalar_one_or_none()


async def upsert(session: AsyncSession, values: dict[str, Any], update_only: Sequence[str]) -> None:
    """Insert the org's settings, or update `update_only` of an existing row."""
    stmt = insert(AutoTopUp).values(**values, updated_at=func.now())
    stmt = stmt.on_conflict_do_update(
        index_elements=["org_id"],
        set_={**{name: stmt.excluded[name] for name in update_only}, "updated_at": func.now()},
    )
    await session.execute(stmt)


async def set_armed(session: AsyncSession, org_id: uuid.UUID, armed: bool) -> None:
    await session.execute(update(AutoTopUp).where(AutoTopUp.org_id == org_id).values(armed=armed))


async def spent_since(session: AsyncSession, org_id: uuid.UUID, since: datetime) -> int:
    """Minor units of the org's charges since `since` that are queued or paid."""
    stmt = select(func.coalesce(func.sum(AutoTopUpCharge.amount), 0)).where(
        AutoTopUpCharge.org_id == org_id,
        AutoTopUpCharge.crossed_at >= since,
        AutoTopUpCharge.status.in_(("queued", "processing", "succeeded")),
    )
    return int((await session.execute(stmt)).scalar_one())


async def has_open_charge(session: AsyncSession, org_id: uuid.UUID) -> bool:
    """Whether the org has a charge not finished yet (queued or processing)."""
    stmt = (
        select(AutoTopUpCharge.id)
        .where(
            AutoTopUpCharge.org_id == org_id,
            AutoTopUpCharge.status.in_(("queued", "processing")),
        )
        .limit(1)
    )
    return (await session.execute(stmt)).first() is not None


async def insert_charge(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(AutoTopUpCharge).values(**values))


async def lock_next_due(session: AsyncSession, now: datetime) -> AutoTopUpCharge | None:
    """The oldest queued charge that is due, locked; charges other workers hold are skipped."""
    stmt = (
        select(AutoTopUpCharge)
        .where(AutoTopUpCharge.status == "queued", AutoTopUpCharge.run_after <= now)
        .order_by(AutoTopUpCharge.run_after)
        .limit(1)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def lock_charge(session: AsyncSession, charge_id: uuid.UUID) -> AutoTopUpCharge | None:
    stmt = (
        select(AutoTopUpCharge)
        .where(AutoTopUpCharge.id == charge_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def set_charge(session: AsyncSession, charge_id: uuid.UUID, values: dict[str, Any]) -> None:
    await session.execute(
        update(AutoTopUpCharge).where(AutoTopUpCharge.id == charge_id).values(**values)
    )


async def last_charge(session: AsyncSession, org_id: uuid.UUID) -> AutoTopUpCharge | None:
    """The org's most recent charge (ids are UUIDv7)."""
    stmt = (
        select(AutoTopUpCharge)
        .where(AutoTopUpCharge.org_id == org_id)
        .order_by(AutoTopUpCharge.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def balance_of(session: AsyncSession, org_id: uuid.UUID) -> int:
    """The org's balance as it stands (0 for an org billing has no account for), for
    the failure notice: read here so auto top-up needs nothing of the balances package,
    which calls it on every crossing."""
    return int(await session.scalar(select(Account.balance).where(Account.org_id == org_id)) or 0)
