"""Putting accounts events into the outbox, in the caller's transaction.

Every event leaves through here so that the source, subject and key are always set
the same way. Nothing here may put a raw key, password or unsealed token into an
event: callers pass contract models that only have hashed or sealed fields.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.config import Settings
from tollgate.accounts.models import outbox
from tollgate.contracts.envelope import EventData, new_event
from tollgate.contracts.topics import Topic, topic_for
from tollgate.kit.outbox import enqueue


async def emit(
    session: AsyncSession, settings: Settings, data: EventData, *, subject: str | None = None
) -> None:
    """Enqueue `data` on its contract topic, keyed as the contract says."""
    event = new_event(data, source=f"tollgate/accounts/{settings.instance_id}", subject=subject)
    await enqueue(session, outbox, topic_for(type(data)), data.kafka_key(), event)


async def emit_tombstone(session: AsyncSession, topic: Topic, key: str) -> None:
    """Enqueue a tombstone (deletion) for `key` on a compacted topic."""
    await enqueue(session, outbox, topic, key, None)
