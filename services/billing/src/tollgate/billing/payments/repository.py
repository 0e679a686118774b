"""SQL of purchases and applied provider events. No business rules here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.models import ProviderEvent, Purchase


async def insert_purchase(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(Purchase).values(**values))


async def set_purchase(
    session: AsyncSession, purchase_id: uuid.UUID, values: dict[str, Any]
) -> None:
    await session.execute(update(Purchase).where(Purchase.id == purchase_id).values(**values))


async def lock_purchase(session: AsyncSession, purchase_id: uuid.UUID) -> Purchase | None:
    stmt = (
        select(Purchase)
        .where(Purchase.id == purchase_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def lock_purchase_by_payment_intent(
    session: AsyncSession, payment_intent_id: str
) -> Purchase | None:
    stmt = (
        select(Purchase)
        .where(Purchase.payment_intent_id == payment_intent_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_purchase(
    session: AsyncSession, org_id: uuid.UUID, purchase_id: uuid.UUID
) -> Purchase | None:
    stmt = select(Purchase).where(Purchase.id == purchase_id, Purchase.org_id == org_id)
    return (await session.execute(stmt)).scalar_one_or_none()


async def list_purchases(
    session: AsyncSession, org_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> Sequence[Purchase]:
    """An org's purchases, newest first (ids are UUIDv7)."""
    stmt = select(Purchase).where(Purchase.org_id == org_id).order_by(Purchase.id.desc())
    if before is not None:
        stmt = stmt.where(Purchase.id < before)
    return (await session.execute(stmt.limit(limit))).scalars().all()


async def claim_event(session: AsyncSession, provider: str, event_id: str, event_type: str) -> bool:
    """Record a provider event as applied; False when it was applied before."""
    stmt = (
        insert(ProviderEvent)
        .values(provider=provider, event_id=event_id, event_type=event_type)
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(ProviderEvent.event_id)
    )
    return (await session.execute(stmt)).first() is not None
