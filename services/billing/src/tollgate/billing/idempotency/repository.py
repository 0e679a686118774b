"""SQL of the idempotency keys. No business rules here."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.billing.models import IdempotencyRecord


async def claim(session: AsyncSession, org_id: uuid.UUID, key: str, fingerprint: str) -> bool:
    """Insert a pending record for (org, key); False when one exists. A concurrent
    transaction holding the same key makes this wait until it commits or rolls back."""
    stmt = (
        insert(IdempotencyRecord)
        .values(org_id=org_id, key=key, fingerprint=fingerprint, status_code=0, response=None)
        .on_conflict_do_nothing(index_elements=["org_id", "key"])
        .returning(IdempotencyRecord.key)
    )
    return (await session.execute(stmt)).first() is not None


async def get(session: AsyncSession, org_id: uuid.UUID, key: str) -> IdempotencyRecord | None:
    """The record of (org, key), if any."""
    stmt = select(IdempotencyRecord).where(
        IdempotencyRecord.org_id == org_id, IdempotencyRecord.key == key
    )
    return (await session.scalars(stmt)).first()


async def complete(
    session: AsyncSession, org_id: uuid.UUID, key: str, status_code: int, body: bytes
) -> None:
    """Store the response of a claimed key."""
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.org_id == org_id, IdempotencyRecord.key == key)
        .values(status_code=status_code, response=body)
    )


async def forget_before(session: AsyncSession, cutoff: datetime) -> int:
    """Delete records created before `cutoff`; returns how many."""
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
    )
    return int(getattr(result, "rowcount", 0) or 0)
