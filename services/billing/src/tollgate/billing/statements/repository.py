"""SQL of statements: read-only sums over the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.models import LedgerEntry


async def balance_before(session: AsyncSession, org_id: uuid.UUID, at: datetime) -> int:
    """The org's balance just before `at` (0 before its first entry)."""
    stmt = (
        select(LedgerEntry.balance_after)
        .where(LedgerEntry.org_id == org_id, LedgerEntry.created_at < at)
        .order_by(LedgerEntry.seq.desc())
        .limit(1)
    )
    value = await session.scalar(stmt)
    return int(value) if value is not None else 0


async def totals_by_kind(
    session: AsyncSession, org_id: uuid.UUID, start: datetime, end: datetime
) -> dict[str, int]:
    """Sum of signed amounts per entry kind in [start, end)."""
    stmt = (
        select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
        .where(
            LedgerEntry.org_id == org_id,
            LedgerEntry.created_at >= start,
            LedgerEntry.created_at < end,
        )
        .group_by(LedgerEntry.kind)
    )
    return {kind: int(total) for kind, total in (await session.execute(stmt)).all()}


async def usage_by_api(
    session: AsyncSession, org_id: uuid.UUID, start: datetime, end: datetime
) -> Sequence[Row[uuid.UUID | None, int, int]]:
    """(api_id, requests, credits) of the debits in [start, end), biggest first."""
    credits = -func.sum(LedgerEntry.amount)
    stmt = (
        select(
            LedgerEntry.api_id,
            func.sum(LedgerEntry.request_count).label("requests"),
            credits.label("credits"),
        )
        .where(
            LedgerEntry.org_id == org_id,
            LedgerEntry.kind == "debit",
            LedgerEntry.created_at >= start,
            LedgerEntry.created_at < end,
        )
        .group_by(LedgerEntry.api_id)
        .order_by(credits.desc(), LedgerEntry.api_id)
    )
    return (await session.execute(stmt)).all()
