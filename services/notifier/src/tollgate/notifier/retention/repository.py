"""SQL of retention: bounded deletes of expired rows, one batch per call.

Each statement locks its batch with FOR UPDATE SKIP LOCKED, so a row a worker or an
admin request holds right now (a delivery being retried, a mail being re-queued) is
left for the next round instead of being waited for, and re-checks the state in the
DELETE itself. The predicates match the partial indexes of migration 0004.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, literal_column, select
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnClause

from tollgate.notifier.models import EmailMessage, SmsMessage, WebhookDelivery, WebhookMessage

# A literal, not a bound parameter: the partial indexes' predicates must be provable
# from the statement even under a generic prepared plan.
_PENDING: ColumnClause[str] = literal_column("'pending'")
_Expiring = WebhookDelivery | WebhookMessage | EmailMessage | SmsMessage


def _count(result: object) -> int:
    return int(result.rowcount or 0) if isinstance(result, CursorResult) else 0


async def _delete_batch(
    session: AsyncSession, model: type[_Expiring], conditions: tuple[Any, ...], limit: int
) -> int:
    """Delete up to `limit` rows of `model` meeting `conditions` (re-checked in the
    DELETE), skipping rows someone else holds."""
    batch = (
        select(model.id)
        .where(*conditions)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = delete(model).where(model.id.in_(batch), *conditions)
    return _count(await session.execute(stmt))


async def delete_finished_deliveries(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` succeeded or failed deliveries that finished before `cutoff`,
    with their attempt log (ON DELETE CASCADE). Pending ones are never touched."""
    finished = (WebhookDelivery.state != _PENDING, WebhookDelivery.finished_at < cutoff)
    return await _delete_batch(session, WebhookDelivery, finished, limit)


async def delete_orphaned_messages(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` webhook messages created before `cutoff` that no delivery
    refers to any more (their deliveries went before them)."""
    orphaned = (
        WebhookMessage.created_at < cutoff,
        ~exists().where(WebhookDelivery.message_id == WebhookMessage.id),
    )
    return await _delete_batch(session, WebhookMessage, orphaned, limit)


async def delete_finished_emails(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` sent or failed emails that finished before `cutoff`.
    Pending (queued or retrying) mails are never touched."""
    finished = (EmailMessage.state != _PENDING, EmailMessage.finished_at < cutoff)
    return await _delete_batch(session, EmailMessage, finished, limit)


async def delete_routed_sms(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` routed inbound SMS received before `cutoff`. Unrouted ones
    (still waiting for the router) are never touched."""
    expired = (SmsMessage.routed, SmsMessage.received_at < cutoff)
    return await _delete_batch(session, SmsMessage, expired, limit)
