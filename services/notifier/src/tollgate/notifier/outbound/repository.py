"""SQL of outbound SMS: prices, providers, the outbound queue and log, conversations."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import case, delete, func, literal, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.notifier.models import (
    SmsConversation,
    SmsOrgCharges,
    SmsOutbound,
    SmsPrice,
    SmsProvider,
    SmsSenderId,
    SmsStatusHistory,
)

# ------------------------------------------------------------------ prices


async def price_for(session: AsyncSession, number: str) -> SmsPrice | None:
    """The price row with the longest prefix of `number`."""
    stmt = (
        select(SmsPrice)
        .where(literal(number).startswith(SmsPrice.prefix))
        .order_by(func.length(SmsPrice.prefix).desc())
        .limit(1)
    )
    return (await session.scalars(stmt)).first()


async def prices(session: AsyncSession) -> list[SmsPrice]:
    """The whole price table, by prefix."""
    return list((await session.scalars(select(SmsPrice).order_by(SmsPrice.prefix))).all())


async def upsert_price(session: AsyncSession, prefix: str, price: int, now: datetime) -> int | None:
    """Set the price of a prefix; returns its price before (None: it had none)."""
    locked = select(SmsPrice.price_per_segment).where(SmsPrice.prefix == prefix).with_for_update()
    previous = (await session.scalars(locked)).first()
    stmt = insert(SmsPrice).values(prefix=prefix, price_per_segment=price, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["prefix"], set_={"price_per_segment": price, "updated_at": now}
    )
    await session.execute(stmt)
    return previous


async def delete_price(session: AsyncSession, prefix: str) -> bool:
    """Remove a prefix; False when there was none."""
    result = await session.execute(delete(SmsPrice).where(SmsPrice.prefix == prefix))
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ------------------------------------------------------------------ providers


async def providers(session: AsyncSession) -> list[SmsProvider]:
    """Every provider, preferred first."""
    stmt = select(SmsProvider).order_by(SmsProvider.priority, SmsProvider.name)
    return list((await session.scalars(stmt)).all())


async def provider(
    session: AsyncSession, provider_id: uuid.UUID, *, for_update: bool = False
) -> SmsProvider | None:
    """One provider (locked for the transaction with `for_update`)."""
    return await session.get(SmsProvider, provider_id, with_for_update=for_update)


async def provider_named(session: AsyncSession, name: str) -> SmsProvider | None:
    """The provider with that name (names are unique)."""
    stmt = select(SmsProvider).where(SmsProvider.name == name)
    return (await session.scalars(stmt)).one_or_none()


async def mark_balance_low(session: AsyncSession, provider_id: uuid.UUID, low: bool) -> bool:
    """Record whether the provider's balance is below its alert level; True only for
    the replica that changed it (a crossing is reported once)."""
    stmt = (
        update(SmsProvider)
        .where(SmsProvider.id == provider_id, SmsProvider.balance_low.is_not(low))
        .values(balance_low=low)
    )
    return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def add_provider(session: AsyncSession, row: SmsProvider) -> None:
    session.add(row)
    await session.flush()


async def delete_provider(session: AsyncSession, provider_id: uuid.UUID) -> bool:
    result = await session.execute(delete(SmsProvider).where(SmsProvider.id == provider_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ------------------------------------------------------------------ sender ids


async def sender_ids(session: AsyncSession, org_id: uuid.UUID | None = None) -> list[SmsSenderId]:
    """Approved sender ids (of one org, or all), by id."""
    stmt = select(SmsSenderId).order_by(SmsSenderId.sender_id)
    if org_id is not None:
        stmt = stmt.where(SmsSenderId.org_id == org_id)
    return list((await session.scalars(stmt)).all())


async def org_of_sender_id(session: AsyncSession, sender_id: str) -> uuid.UUID | None:
    """The org a sender id is approved for."""
    stmt = select(SmsSenderId.org_id).where(SmsSenderId.sender_id == sender_id)
    return (await session.scalars(stmt)).first()


async def upsert_sender_id(
    session: AsyncSession, sender_id: str, org_id: uuid.UUID, now: datetime
) -> uuid.UUID | None:
    """Approve a sender id for an org (moving it from another org); returns the org it
    was approved for before (None: nobody)."""
    locked = select(SmsSenderId.org_id).where(SmsSenderId.sender_id == sender_id).with_for_update()
    previous = (await session.scalars(locked)).first()
    stmt = insert(SmsSenderId).values(sender_id=sender_id, org_id=org_id, created_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=["sender_id"], set_={"org_id": org_id, "created_at": now}
    )
    await session.execute(stmt)
    return previous


async def delete_sender_id(session: AsyncSession, sender_id: str) -> None:
    await session.execute(delete(SmsSenderId).where(SmsSenderId.sender_id == sender_id))


# ------------------------------------------------------------------ messages


async def lock_idempotency_key(session: AsyncSession, org_id: uuid.UUID, key: str) -> None:
    """Serialise the org's sends with this idempotency key until the transaction ends
    (a hash collision only serialises two keys, harmlessly)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"sms-idempotency:{org_id}:{key}"},
    )


async def charged_since(
    session: AsyncSession, org_id: uuid.UUID, since: datetime, *, excluding: uuid.UUID
) -> int:
    """Credits of the org's messages queued after `since` and not refunded, but for
    the message `excluding` (the one being checked, inserted in this transaction)."""
    stmt = select(func.coalesce(func.sum(SmsOutbound.amount), 0)).where(
        SmsOutbound.org_id == org_id,
        SmsOutbound.queued_at > since,
        SmsOutbound.refunded.is_(False),
        SmsOutbound.id != excluding,
    )
    return int((await session.execute(stmt)).scalar_one())


async def add_charges(session: AsyncSession, amounts: dict[uuid.UUID, int]) -> dict[uuid.UUID, int]:
    """Add each org's amount (negative for refunds) to its running total of SMS charges;
    returns the new totals. Locks the orgs' rows until the transaction ends, in org id
    order (a fixed order: no deadlocks)."""
    if not amounts:
        return {}
    rows = [{"org_id": org, "charged": amounts[org]} for org in sorted(amounts)]
    new = insert(SmsOrgCharges).values(rows)
    stmt = new.on_conflict_do_update(
        index_elements=[SmsOrgCharges.org_id],
        set_={"charged": SmsOrgCharges.charged + new.excluded.charged},
    ).returning(SmsOrgCharges.org_id, SmsOrgCharges.charged)
    return dict((await session.execute(stmt)).all())


async def message_by_idempotency_key(
    session: AsyncSession, org_id: uuid.UUID, key: str
) -> SmsOutbound | None:
    stmt = select(SmsOutbound).where(
        SmsOutbound.org_id == org_id, SmsOutbound.idempotency_key == key
    )
    return (await session.scalars(stmt)).one_or_none()


async def insert_message(session: AsyncSession, row: SmsOutbound) -> None:
    session.add(row)
    await session.flush()


def add_history(
    session: AsyncSession, reached: list[tuple[uuid.UUID, str, str | None]], at: datetime
) -> None:
    """Status history rows (message, status, error code), written at the next flush."""
    session.add_all(
        SmsStatusHistory(message_id=m, status=status, error_code=code, at=at)
        for m, status, code in reached
    )


async def history(session: AsyncSession, message_id: uuid.UUID) -> list[SmsStatusHistory]:
    stmt = (
        select(SmsStatusHistory)
        .where(SmsStatusHistory.message_id == message_id)
        .order_by(SmsStatusHistory.at, SmsStatusHistory.id)
    )
    return list((await session.scalars(stmt)).all())


async def message_of_org(
    session: AsyncSession, org_id: uuid.UUID, message_id: uuid.UUID
) -> SmsOutbound | None:
    """The org's message; None for another org's id."""
    stmt = select(SmsOutbound).where(SmsOutbound.id == message_id, SmsOutbound.org_id == org_id)
    return (await session.scalars(stmt)).one_or_none()


async def sent_messages(
    session: AsyncSession,
    org_id: uuid.UUID | None,
    *,
    status: str | None,
    limit: int,
    before: tuple[datetime, uuid.UUID] | None,
) -> list[SmsOutbound]:
    """Outbound messages of one org (or, with `org_id` None, of every org: the
    operator's log), newest first, after the keyset position `before`."""
    stmt = (
        select(SmsOutbound)
        .order_by(SmsOutbound.queued_at.desc(), SmsOutbound.id.desc())
        .limit(limit)
    )
    if org_id is not None:
        stmt = stmt.where(SmsOutbound.org_id == org_id)
    if status is not None:
        stmt = stmt.where(SmsOutbound.status == status)
    if before is not None:
        stmt = stmt.where(tuple_(SmsOutbound.queued_at, SmsOutbound.id) < tuple_(*before))
    return list((await session.scalars(stmt)).all())


async def lock_messages(
    session: AsyncSession, message_ids: list[uuid.UUID]
) -> dict[uuid.UUID, SmsOutbound]:
    """Lock messages by id (one statement); missing ids are left out."""
    stmt = select(SmsOutbound).where(SmsOutbound.id.in_(message_ids)).with_for_update()
    return {m.id: m for m in (await session.scalars(stmt)).all()}


async def lock_by_provider_id(
    session: AsyncSession, provider_id: uuid.UUID, provider_message_id: str
) -> SmsOutbound | None:
    stmt = (
        select(SmsOutbound)
        .where(
            SmsOutbound.provider_id == provider_id,
            SmsOutbound.provider_message_id == provider_message_id,
        )
        .with_for_update()
    )
    return (await session.scalars(stmt)).one_or_none()


async def claim_due(
    session: AsyncSession,
    now: datetime,
    limit: int,
    lease_until: datetime,
    *,
    active: list[uuid.UUID],
    preferred: tuple[uuid.UUID, str],
) -> list[SmsOutbound]:
    """Lease due messages (pending and due, or in flight past their lease: a crashed
    sender's), oldest first (FOR UPDATE SKIP LOCKED), in one statement: counts the
    attempt and gives a message whose provider is not among `active` (none yet, or
    disabled since) the `preferred` (id, name)."""
    due = (
        select(SmsOutbound.id)
        .where(
            SmsOutbound.send_state != "done",
            SmsOutbound.next_attempt_at <= now,
            or_(
                SmsOutbound.send_state == "pending",
                SmsOutbound.leased_until < now,
            ),
        )
        .order_by(SmsOutbound.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    keeps = SmsOutbound.provider_id.in_(active)
    claimed = (
        update(SmsOutbound)
        .where(SmsOutbound.id.in_(due.scalar_subquery()))
        .values(
            send_state="in_flight",
            leased_until=lease_until,
            attempts=SmsOutbound.attempts + 1,
            updated_at=now,
            provider_id=case((keeps, SmsOutbound.provider_id), else_=preferred[0]),
            provider=case((keeps, SmsOutbound.provider), else_=preferred[1]),
        )
        .returning(SmsOutbound)
        .execution_options(synchronize_session=False)
    )
    return list((await session.scalars(claimed)).all())


# ------------------------------------------------------------------ conversations


async def open_conversation(
    session: AsyncSession,
    org_id: uuid.UUID,
    remote: str,
    local: str,
    now: datetime,
    expires_at: datetime,
) -> None:
    """Record (or extend) the org's conversation with `remote`."""
    stmt = insert(SmsConversation).values(
        org_id=org_id,
        remote_number=remote,
        local_number=local,
        last_sent_at=now,
        expires_at=expires_at,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["org_id", "remote_number"],
        set_={"local_number": local, "last_sent_at": now, "expires_at": expires_at},
    )
    await session.execute(stmt)


# ------------------------------------------------------------------ usage


async def usage_by_org(
    session: AsyncSession, since: datetime, until: datetime
) -> list[tuple[uuid.UUID, int, int, int, int]]:
    """(org, messages, segments, credits charged, credits refunded) per org."""
    stmt = (
        select(
            SmsOutbound.org_id,
            func.count(),
            func.coalesce(func.sum(SmsOutbound.segments), 0),
            func.coalesce(func.sum(SmsOutbound.amount), 0),
            func.coalesce(func.sum(SmsOutbound.amount).filter(SmsOutbound.refunded.is_(True)), 0),
        )
        .where(SmsOutbound.queued_at >= since, SmsOutbound.queued_at < until)
        .group_by(SmsOutbound.org_id)
        .order_by(SmsOutbound.org_id)
    )
    return [(r[0], int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in await session.execute(stmt)]


async def provider_ids_taken(
    session: AsyncSession, pairs: list[tuple[uuid.UUID, str]]
) -> set[tuple[uuid.UUID | None, str]]:
    """Which (provider, provider message id) pairs a message already holds."""
    if not pairs:
        return set()
    stmt = select(SmsOutbound.provider_id, SmsOutbound.provider_message_id).where(
        tuple_(SmsOutbound.provider_id, SmsOutbound.provider_message_id).in_(pairs)
    )
    rows = (await session.execute(stmt)).all()
    return {(row[0], row[1]) for row in rows if row[0] is not None and row[1] is not None}
