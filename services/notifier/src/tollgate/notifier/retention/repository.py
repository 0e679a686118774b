"""SQL of retention: bounded deletes of expired rows, one batch per call.

Each statement locks its batch with FOR UPDATE SKIP LOCKED, so a row a worker or an
admin request holds right now (a delivery being retried, a mail being re-queued) is
left for the next round instead of being waited for, and re-checks the state in the
DELETE itself. The predicates match the indexes of migrations 0004 and 0005.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, literal_column, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause

from tollgate.notifier.models import (
    EmailMessage,
    ReceivedEvent,
    SmsMessage,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)

# A literal, not a bound parameter: the partial indexes' predicates must be provable
# from the statement even under a generic prepared plan.
_PENDING: ColumnClause[str] = literal_column("'pending'")


def _count(result: object) -> int:
    return int(result.rowcount or 0) if isinstance(result, CursorResult) else 0


async def _delete_batch(
    session: AsyncSession, key: Any, conditions: tuple[Any, ...], limit: int
) -> int:
    """Delete up to `limit` rows of the table of the primary `key` column meeting
    `conditions` (re-checked in the DELETE), skipping rows someone else holds."""
    batch = (
        select(key).where(*conditions).limit(limit).with_for_update(skip_locked=True)
    ).scalar_subquery()
    stmt = delete(key.class_).where(key.in_(batch), *conditions)
    return _count(await session.execute(stmt))


async def delete_deleted_endpoints(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Remove up to `limit` endpoints deleted before `cutoff`, with their deliveries and
    attempts (ON DELETE CASCADE; none is pending: deleting gave them up)."""
    deleted = (WebhookEndpoint.deleted_at < cutoff,)
    return await _delete_batch(session, WebhookEndpoint.id, deleted, limit)


async def delete_finished_deliveries(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` succeeded or failed deliveries that finished before `cutoff`,
    with their attempt log (ON DELETE CASCADE). Pending ones are never touched."""
    finished = (WebhookDelivery.state != _PENDING, WebhookDelivery.finished_at < cutoff)
    return await _delete_batch(session, WebhookDelivery.id, finished, limit)


async def delete_orphaned_messages(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` webhook messages created before `cutoff` that no delivery
    refers to any more (their deliveries went before them)."""
    orphaned = (
        WebhookMessage.created_at < cutoff,
        ~exists().where(WebhookDelivery.message_id == WebhookMessage.id),
    )
    return await _delete_batch(session, WebhookMessage.id, orphaned, limit)


async def delete_finished_emails(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` sent or failed emails that finished before `cutoff`.
    Pending (queued or retrying) mails are never touched."""
    finished = (EmailMessage.state != _PENDING, EmailMessage.finished_at < cutoff)
    return await _delete_batch(session, EmailMessage.id, finished, limit)


async def delete_routed_sms(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` routed inbound SMS received before `cutoff`. Unrouted ones
    (still waiting for the router) are never touched."""
    expired = (SmsMessage.routed, SmsMessage.received_at < cutoff)
    return await _delete_batch(session, SmsMessage.id, expired, limit)


async def delete_old_received_events(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Forget up to `limit` ids of events taken in before `cutoff`: a redelivery older
    than that would notify again, so the retention must outlast the source topics'."""
    old = (ReceivedEvent.received_at < cutoff,)
    return await _delete_batch(session, ReceivedEvent.event_id, old, limit)
