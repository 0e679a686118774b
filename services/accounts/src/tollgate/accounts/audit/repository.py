"""Every SQL statement on the audit log."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import AuditEntry


async def insert_entry(session: AsyncSession, **values: Any) -> None:
    """Append one entry."""
    await session.execute(insert(AuditEntry).values(**values))


async def insert_consumed(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> int:
    """Append entries consumed from other services; rows whose `event_id` is already
    present are skipped (a redelivery). Returns how many were new."""
    if not rows:
        return 0
    stmt = (
        pg_insert(AuditEntry).values(list(rows)).on_conflict_do_nothing(index_elements=["event_id"])
    )
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def org_of_entry(session: AsyncSession, *, action: str, target_id: str) -> uuid.UUID | None:
    """The org of the latest `action` on `target_id` (where a deleted key lived, say)."""
    stmt = (
        select(AuditEntry.org_id)
        .where(AuditEntry.action == action, AuditEntry.target_id == target_id)
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )
    return await session.scalar(stmt)


async def has_entry(
    session: AsyncSession, *, org_id: uuid.UUID, action: str, target_id: str
) -> bool:
    """Whether the log holds `action` on `target_id` in `org_id` (a past removal, say)."""
    stmt = (
        select(AuditEntry.id)
        .where(
            AuditEntry.org_id == org_id,
            AuditEntry.action == action,
            AuditEntry.target_id == target_id,
        )
        .limit(1)
    )
    return (await session.scalar(stmt)) is not None


async def list_entries(
    session: AsyncSession,
    *,
    org_ids: Sequence[uuid.UUID] | None,
    org_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    action: str | None,
    target_id: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[AuditEntry]:
    """Newest first; `org_ids` (when not None) restricts to those orgs."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if org_ids is not None:
        stmt = stmt.where(AuditEntry.org_id.in_(list(org_ids)))
    if org_id is not None:
        stmt = stmt.where(AuditEntry.org_id == org_id)
    if actor_id is not None:
        stmt = stmt.where(AuditEntry.actor_id == actor_id)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if target_id is not None:
        stmt = stmt.where(AuditEntry.target_id == target_id)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.at < until)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    return list((await session.scalars(stmt)).all())


async def purge_before(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` of the oldest entries older than `cutoff`; returns how many.
    The table's trigger lets only this through: the cut-off is declared for this
    transaction first (`tollgate.audit_purge_before`), and rows at or after it stay."""
    await session.execute(
        select(func.set_config("tollgate.audit_purge_before", cutoff.isoformat(), True))
    )
    oldest = select(AuditEntry.id).where(AuditEntry.at < cutoff).order_by(AuditEntry.at)
    result = await session.execute(
        delete(AuditEntry).where(AuditEntry.id.in_(oldest.limit(limit).scalar_subquery()))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
