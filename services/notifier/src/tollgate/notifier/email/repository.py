"""SQL of the email queue, of org notification contacts, and of what the first setting
of an org's contacts catches up on (its latest credits notice)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.notifier.models import BalanceNotice, ContactList, EmailMessage, NotificationContact


async def insert_email(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Queue a mail; False when one with the same dedupe key exists."""
    stmt = (
        insert(EmailMessage)
        .values(row)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(EmailMessage.id)
    )
    return (await session.scalars(stmt)).first() is not None


_CLAIM = text(
    """
    UPDATE email_messages SET leased_until = :lease
    WHERE id IN (
        SELECT id FROM email_messages
        WHERE state = 'pending' AND next_attempt_at <= :now
          AND (leased_until IS NULL OR leased_until <= :now)
        ORDER BY next_attempt_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id
    """
)


async def claim_due(
    session: AsyncSession, *, now: datetime, lease_until: datetime, limit: int
) -> list[EmailMessage]:
    """Lease up to `limit` due mails (FOR UPDATE SKIP LOCKED)."""
    ids = [
        row.id
        for row in await session.execute(_CLAIM, {"now": now, "lease": lease_until, "limit": limit})
    ]
    if not ids:
        return []
    stmt = select(EmailMessage).where(EmailMessage.id.in_(ids))
    return list((await session.scalars(stmt)).all())


async def update_email(session: AsyncSession, email_id: uuid.UUID, **values: Any) -> None:
    """Change a mail's queue state."""
    await session.execute(update(EmailMessage).where(EmailMessage.id == email_id).values(**values))


async def email_by_id(session: AsyncSession, email_id: uuid.UUID) -> EmailMessage | None:
    """A mail by id (admin views)."""
    return await session.get(EmailMessage, email_id, with_for_update=True)


async def list_emails(
    session: AsyncSession,
    *,
    state: str | None,
    limit: int,
    kind: str | None = None,
    before: tuple[datetime, uuid.UUID] | None = None,
) -> list[EmailMessage]:
    """Mails, newest first (admin views); after the keyset position `before`."""
    stmt = (
        select(EmailMessage)
        .order_by(EmailMessage.created_at.desc(), EmailMessage.id.desc())
        .limit(limit)
    )
    if before is not None:
        stmt = stmt.where(tuple_(EmailMessage.created_at, EmailMessage.id) < tuple_(*before))
    if state is not None:
        stmt = stmt.where(EmailMessage.state == state)
    if kind is not None:
        stmt = stmt.where(EmailMessage.kind == kind)
    return list((await session.scalars(stmt)).all())


async def contacts_of_org(session: AsyncSession, org_id: uuid.UUID) -> list[NotificationContact]:
    """An org's notification contacts."""
    stmt = (
        select(NotificationContact)
        .where(NotificationContact.org_id == org_id)
        .order_by(NotificationContact.email)
    )
    return list((await session.scalars(stmt)).all())


async def replace_contacts(
    session: AsyncSession, org_id: uuid.UUID, rows: list[dict[str, Any]]
) -> None:
    """Make `rows` the org's complete contact list."""
    await session.execute(delete(NotificationContact).where(NotificationContact.org_id == org_id))
    if rows:
        await session.execute(insert(NotificationContact).values(rows))


async def lock_org_contacts(session: AsyncSession, org_ids: list[uuid.UUID]) -> None:
    """Serialise, until the transaction ends, whatever reads or sets these orgs' contacts
    together with their latest credits notice (taken in id order: no deadlocks)."""
    for org_id in sorted(set(org_ids)):
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"org-contacts:{org_id}"},
        )


async def mark_contacts_set(
    session: AsyncSession, org_id: uuid.UUID, origin: str, now: datetime
) -> bool:
    """Record that the org's contacts were set; True only the first time."""
    stmt = (
        insert(ContactList)
        .values(org_id=org_id, origin=origin, set_at=now)
        .on_conflict_do_nothing(index_elements=["org_id"])
        .returning(ContactList.org_id)
    )
    return (await session.scalars(stmt)).first() is not None


async def record_balance_notice(session: AsyncSession, row: dict[str, Any]) -> None:
    """Keep `row` as the org's latest credits notice unless a later one is held."""
    stmt = insert(BalanceNotice).values(row)
    stmt = stmt.on_conflict_do_update(
        index_elements=["org_id"],
        set_={name: stmt.excluded[name] for name in row if name != "org_id"},
        where=BalanceNotice.occurred_at <= stmt.excluded.occurred_at,
    )
    await session.execute(stmt)


async def balance_notice_of(session: AsyncSession, org_id: uuid.UUID) -> BalanceNotice | None:
    """The org's latest credits notice, if billing sent one."""
    stmt = (
        select(BalanceNotice)
        .where(BalanceNotice.org_id == org_id)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).first()
