"""SQL of the intake: recording received events."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.notifier.models import ReceivedEvent


async def insert_received(session: AsyncSession, rows: list[dict[str, Any]]) -> list[str]:
    """Insert received events; ids already present are skipped. Returns the new ids."""
    if not rows:
        return []
    stmt = (
        insert(ReceivedEvent)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(ReceivedEvent.event_id)
    )
    return list((await session.scalars(stmt)).all())
