"""SQL of inbound SMS: messages, assigned numbers, keyword rules, and the open
conversations outbound messages record (read here for routing)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.notifier.models import SmsConversation, SmsKeywordRule, SmsMessage, SmsNumber


async def insert_message(session: AsyncSession, row: dict[str, Any]) -> uuid.UUID | None:
    """Store an inbound SMS; None when the provider's message id was seen before."""
    stmt = (
        insert(SmsMessage)
        .values(row)
        .on_conflict_do_nothing(constraint="uq_sms_provider_message")
        .returning(SmsMessage.id)
    )
    return (await session.scalars(stmt)).first()


async def message_by_provider_id(
    session: AsyncSession, provider: str, provider_message_id: str
) -> SmsMessage | None:
    """The stored SMS with that provider id."""
    stmt = select(SmsMessage).where(
        SmsMessage.provider == provider, SmsMessage.provider_message_id == provider_message_id
    )
    return (await session.scalars(stmt)).one_or_none()


async def claim_unrouted(session: AsyncSession, limit: int) -> list[SmsMessage]:
    """Lock the oldest unrouted messages (FOR UPDATE SKIP LOCKED)."""
    stmt = (
        select(SmsMessage)
        .where(SmsMessage.routed.is_(False))
        .order_by(SmsMessage.received_at, SmsMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(stmt)).all())


async def org_of_number(session: AsyncSession, number: str) -> uuid.UUID | None:
    """The org a number is assigned to."""
    stmt = select(SmsNumber.org_id).where(SmsNumber.number == number)
    return (await session.scalars(stmt)).first()


async def last_org_of_sender(
    session: AsyncSession, from_number: str, to_number: str, exclude: uuid.UUID
) -> uuid.UUID | None:
    """The org the sender's most recent routed message to `to_number` went to."""
    stmt = (
        select(SmsMessage.org_id)
        .where(
            SmsMessage.from_number == from_number,
            SmsMessage.to_number == to_number,
            SmsMessage.routed.is_(True),
            SmsMessage.org_id.is_not(None),
            SmsMessage.id != exclude,
        )
        .order_by(SmsMessage.received_at.desc(), SmsMessage.routed_at.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def conversation_org(
    session: AsyncSession, remote: str, local: str, at: datetime
) -> uuid.UUID | None:
    """The org with an open conversation with `remote` from `local` (the number the
    reply was sent to), the most recent first. Never one that wrote from another number:
    a sender's message to a shared number is not another org's to read."""
    stmt = (
        select(SmsConversation.org_id)
        .where(
            SmsConversation.remote_number == remote,
            SmsConversation.local_number == local,
            SmsConversation.expires_at > at,
        )
        .order_by(SmsConversation.last_sent_at.desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def keyword_rules(
    session: AsyncSession, org_id: uuid.UUID | None = None
) -> list[SmsKeywordRule]:
    """Every keyword rule (or those routing to one org), in evaluation order."""
    stmt = select(SmsKeywordRule).order_by(
        SmsKeywordRule.priority, SmsKeywordRule.created_at, SmsKeywordRule.id
    )
    if org_id is not None:
        stmt = stmt.where(SmsKeywordRule.org_id == org_id)
    return list((await session.scalars(stmt)).all())


async def rule(
    session: AsyncSession, rule_id: uuid.UUID, *, for_update: bool = False
) -> SmsKeywordRule | None:
    """One keyword rule (locked for the transaction with `for_update`)."""
    stmt = select(SmsKeywordRule).where(SmsKeywordRule.id == rule_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def mark_routed(session: AsyncSession, message_id: uuid.UUID, **values: Any) -> None:
    """Record where a message was routed."""
    await session.execute(
        update(SmsMessage).where(SmsMessage.id == message_id).values(routed=True, **values)
    )


async def list_messages(
    session: AsyncSession,
    *,
    org_id: uuid.UUID | None,
    unread: bool | None,
    from_number: str | None,
    since: datetime | None,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[SmsMessage]:
    """Routed messages of an org (None = the admin inbox), newest first; after the
    keyset position `before` (the last message of the previous page)."""
    stmt = (
        select(SmsMessage)
        .where(SmsMessage.routed.is_(True))
        .order_by(SmsMessage.received_at.desc(), SmsMessage.id.desc())
        .limit(limit)
    )
    stmt = stmt.where(
        SmsMessage.org_id.is_(None) if org_id is None else SmsMessage.org_id == org_id
    )
    if unread is True:
        stmt = stmt.where(SmsMessage.read_at.is_(None))
    elif unread is False:
        stmt = stmt.where(SmsMessage.read_at.is_not(None))
    if from_number is not None:
        stmt = stmt.where(SmsMessage.from_number == from_number)
    if since is not None:
        stmt = stmt.where(SmsMessage.received_at >= since)
    if before is not None:
        stmt = stmt.where(tuple_(SmsMessage.received_at, SmsMessage.id) < tuple_(*before))
    return list((await session.scalars(stmt)).all())


async def message_in_inbox(
    session: AsyncSession, org_id: uuid.UUID | None, message_id: uuid.UUID
) -> SmsMessage | None:
    """A routed message of that inbox (None = admin inbox); None if elsewhere."""
    stmt = select(SmsMessage).where(SmsMessage.id == message_id, SmsMessage.routed.is_(True))
    stmt = stmt.where(
        SmsMessage.org_id.is_(None) if org_id is None else SmsMessage.org_id == org_id
    )
    return (await session.scalars(stmt)).one_or_none()


async def numbers(session: AsyncSession, org_id: uuid.UUID | None = None) -> list[SmsNumber]:
    """Every assigned number (or those of one org), by number."""
    stmt = select(SmsNumber).order_by(SmsNumber.number)
    if org_id is not None:
        stmt = stmt.where(SmsNumber.org_id == org_id)
    return list((await session.scalars(stmt)).all())


async def upsert_number(
    session: AsyncSession, number: str, org_id: uuid.UUID, now: datetime
) -> uuid.UUID | None:
    """Assign (or reassign) a number to an org; returns the org it was assigned to
    before (None: it was free). The row is locked first, so two concurrent
    reassignments each see the other's result as their "before"."""
    locked = select(SmsNumber.org_id).where(SmsNumber.number == number).with_for_update()
    previous = (await session.scalars(locked)).first()
    stmt = insert(SmsNumber).values(number=number, org_id=org_id, created_at=now)
    stmt = stmt.on_conflict_do_update(index_elements=["number"], set_={"org_id": org_id})
    await session.execute(stmt)
    return previous


async def delete_number(session: AsyncSession, number: str) -> bool:
    """Unassign a number; False when it was not assigned."""
    result = await session.execute(delete(SmsNumber).where(SmsNumber.number == number))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def add_rule(session: AsyncSession, rule: SmsKeywordRule) -> None:
    """Insert a keyword rule."""
    session.add(rule)
    await session.flush()


async def delete_rule(session: AsyncSession, rule_id: uuid.UUID) -> bool:
    """Delete a keyword rule; False when there was none."""
    result = await session.execute(delete(SmsKeywordRule).where(SmsKeywordRule.id == rule_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]
