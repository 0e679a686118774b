"""SQL of the ledger and of the debited-request ids. No business rules here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Uuid, bindparam, delete, func, insert, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.models import DebitedRequest, LedgerEntry

_CLAIM = text(
    "INSERT INTO debited_requests (request_id) SELECT unnest(:ids) "
    "ON CONFLICT DO NOTHING RETURNING request_id"
).bindparams(bindparam("ids", type_=ARRAY(Uuid())))


async def claim_requests(session: AsyncSession, request_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Record request ids as debited; returns the ids that were not recorded before
    (a redelivered or re-published id is skipped)."""
    if not request_ids:
        return set()
    result = await session.execute(_CLAIM, {"ids": list(request_ids)})
    return {row[0] for row in result}


async def insert_entries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Append ledger entries (each row gives every column but `seq` and `created_at`)."""
    if rows:
        await session.execute(insert(LedgerEntry), list(rows))


async def insert_entry(session: AsyncSession, row: dict[str, Any]) -> LedgerEntry:
    """Append one ledger entry and return it as stored."""
    stmt = insert(LedgerEntry).values(row).returning(LedgerEntry)
    return (await session.scalars(stmt)).one()


async def has_entry_keyed(session: AsyncSession, idempotency_key: str) -> bool:
    return await entry_keyed(session, idempotency_key) is not None


async def entry_keyed(session: AsyncSession, idempotency_key: str) -> LedgerEntry | None:
    stmt = select(LedgerEntry).where(LedgerEntry.idempotency_key == idempotency_key)
    return await session.scalar(stmt)


async def list_entries(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    kinds: Sequence[str] | None,
    api_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
    before_seq: int | None,
    limit: int,
) -> Sequence[LedgerEntry]:
    """An org's entries, newest first, filtered, from below `before_seq`."""
    stmt = select(LedgerEntry).where(LedgerEntry.org_id == org_id)
    if kinds:
        stmt = stmt.where(LedgerEntry.kind.in_(kinds))
    if api_id is not None:
        stmt = stmt.where(LedgerEntry.api_id == api_id)
    if since is not None:
        stmt = stmt.where(LedgerEntry.created_at >= since)
    if until is not None:
        stmt = stmt.where(LedgerEntry.created_at < until)
    if before_seq is not None:
        stmt = stmt.where(LedgerEntry.seq < before_seq)
    stmt = stmt.order_by(LedgerEntry.seq.desc()).limit(limit)
    return (await session.scalars(stmt)).all()


async def totals_by_kind(
    session: AsyncSession, org_id: uuid.UUID, *, since: datetime | None, until: datetime | None
) -> Sequence[tuple[str, int, int, int]]:
    """(kind, entries, summed amount, summed request count) of an org's entries created in
    [since, until), by kind."""
    stmt = select(
        LedgerEntry.kind,
        func.count(),
        func.coalesce(func.sum(LedgerEntry.amount), 0),
        func.coalesce(func.sum(LedgerEntry.request_count), 0),
    ).where(LedgerEntry.org_id == org_id)
    if since is not None:
        stmt = stmt.where(LedgerEntry.created_at >= since)
    if until is not None:
        stmt = stmt.where(LedgerEntry.created_at < until)
    rows = (await session.execute(stmt.group_by(LedgerEntry.kind).order_by(LedgerEntry.kind))).all()
    return [
        (kind, int(entries), int(amount), int(requests)) for kind, entries, amount, requests in rows
    ]


async def forget_debited_before(session: AsyncSession, cutoff: datetime) -> int:
    """Delete debited-request ids recorded before `cutoff`; returns how many."""
    result = await session.execute(delete(DebitedRequest).where(DebitedRequest.debited_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
