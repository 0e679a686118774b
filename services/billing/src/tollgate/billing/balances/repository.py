"""SQL of the accounts table. No business rules here: callers decide what to write."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.models import Account

AccountRow = Row[uuid.UUID, str, int, int, int, str, int, int | None, datetime | None, int]
"""org_id, mode, low_threshold, reserve, balance, status, version, published_balance,
published_at, sms_charged."""

_COLUMNS = (
    Account.org_id,
    Account.mode,
    Account.low_threshold,
    Account.reserve,
    Account.balance,
    Account.status,
    Account.version,
    Account.published_balance,
    Account.published_at,
    Account.sms_charged,
)


async def create_missing(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert accounts that do not exist yet; existing ones are left untouched."""
    if rows:
        stmt = insert(Account).values(list(rows)).on_conflict_do_nothing(index_elements=["org_id"])
        await session.execute(stmt)


async def create_new(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[uuid.UUID]:
    """Insert accounts that do not exist yet; returns the org ids actually inserted."""
    if not rows:
        return []
    stmt = (
        insert(Account)
        .values(list(rows))
        .on_conflict_do_nothing(index_elements=["org_id"])
        .returning(Account.org_id)
    )
    return list((await session.execute(stmt)).scalars())


async def lock(session: AsyncSession, org_ids: Sequence[uuid.UUID]) -> Sequence[AccountRow]:
    """Select accounts FOR UPDATE in org id order (a fixed order: no deadlocks)."""
    stmt = (
        select(*_COLUMNS)
        .where(Account.org_id.in_(org_ids))
        .order_by(Account.org_id)
        .with_for_update()
    )
    return (await session.execute(stmt)).all()


async def get(session: AsyncSession, org_id: uuid.UUID) -> AccountRow | None:
    """One account without locking it, or None."""
    return (await session.execute(select(*_COLUMNS).where(Account.org_id == org_id))).first()


async def list_after(
    session: AsyncSession,
    *,
    status: str | None,
    org_ids: Sequence[uuid.UUID],
    after: uuid.UUID | None,
    limit: int,
) -> Sequence[AccountRow]:
    """Accounts in org id order after `after`, optionally of one status and among
    `org_ids` (empty: all); not locked."""
    stmt = select(*_COLUMNS).order_by(Account.org_id).limit(limit)
    if status is not None:
        stmt = stmt.where(Account.status == status)
    if org_ids:
        stmt = stmt.where(Account.org_id.in_(org_ids))
    if after is not None:
        stmt = stmt.where(Account.org_id > after)
    return (await session.execute(stmt)).all()


async def save(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Write accounts back by primary key (every column given in each row)."""
    if rows:
        await session.execute(update(Account), list(rows))


async def lock_due_for_publish(
    session: AsyncSession, published_before: datetime, limit: int
) -> Sequence[AccountRow]:
    """Accounts whose balance moved since their last published state, last published
    before `published_before`; locked, skipping rows another transaction holds."""
    stmt = (
        select(*_COLUMNS)
        .where(Account.balance.is_distinct_from(Account.published_balance))
        .where(or_(Account.published_at.is_(None), Account.published_at < published_before))
        .order_by(Account.org_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.execute(stmt)).all()
