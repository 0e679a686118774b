"""Every SQL statement on the API changelog (`api_changelog`)."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from tollgate.accounts.models import ApiChangelogEntry


async def insert_entry(session: AsyncSession, entry: ApiChangelogEntry) -> None:
    session.add(entry)
    await session.flush()


async def entries_of(
    session: AsyncSession, api_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> list[ApiChangelogEntry]:
    """An API's entries, newest first, older than `before` when given."""
    stmt = (
        select(ApiChangelogEntry)
        .where(ApiChangelogEntry.api_id == api_id)
        .order_by(ApiChangelogEntry.id.desc())
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(ApiChangelogEntry.id < before)
    return list((await session.scalars(stmt)).all())


async def public_entries_of(
    session: AsyncSession, api_id: uuid.UUID, *, before: uuid.UUID | None, limit: int
) -> list[ApiChangelogEntry]:
    """An API's entries with a change customers may see (`public_changes` not empty),
    newest first, older than `before` when given; the full `changes` are not loaded."""
    stmt = (
        select(ApiChangelogEntry)
        .options(defer(ApiChangelogEntry.changes, raiseload=True))
        .where(
            ApiChangelogEntry.api_id == api_id,
            func.jsonb_array_length(ApiChangelogEntry.public_changes) > 0,
        )
        .order_by(ApiChangelogEntry.id.desc())
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(ApiChangelogEntry.id < before)
    return list((await session.scalars(stmt)).all())
