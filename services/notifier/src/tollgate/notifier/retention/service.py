"""Retention rules: what may be deleted, and from when.

Only finished work goes: webhook endpoints the org deleted (with their deliveries),
succeeded or failed webhook deliveries (with their attempt log) and then the messages
no delivery refers to, sent or failed emails, routed SMS, and the ids of taken-in
events (the intake's de-duplication memory).
Pending deliveries, queued or retrying emails and unrouted SMS are never deleted,
however old. A retention of 0 days keeps that kind of row forever. Never commits:
the retention job owns one short transaction per batch.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.notifier.retention import repository

BatchDelete = Callable[[AsyncSession, datetime, int], Awaitable[int]]


@dataclass(frozen=True)
class RetentionPolicy:
    """How many days finished rows are kept (0 = forever), and the batch size."""

    webhook_days: int
    email_days: int
    sms_days: int
    dedup_days: int = 30
    batch_size: int = 1000


@dataclass(frozen=True)
class ExpiredRows:
    """One table's rows past retention: those finished (or received) before `cutoff`."""

    table: str
    cutoff: datetime
    delete_batch: BatchDelete


def expired(policy: RetentionPolicy, now: datetime) -> list[ExpiredRows]:
    """The tables with a retention, in deletion order, with their cutoffs at `now`."""
    # Deliveries before messages: a message goes only once none of its deliveries is left.
    tables: list[tuple[str, int, BatchDelete]] = [
        ("webhook_endpoints", policy.webhook_days, repository.delete_deleted_endpoints),
        ("webhook_deliveries", policy.webhook_days, repository.delete_finished_deliveries),
        ("webhook_messages", policy.webhook_days, repository.delete_orphaned_messages),
        ("email_messages", policy.email_days, repository.delete_finished_emails),
        ("sms_messages", policy.sms_days, repository.delete_routed_sms),
        ("received_events", policy.dedup_days, repository.delete_old_received_events),
    ]
    return [
        ExpiredRows(table, now - timedelta(days=days), delete_batch)
        for table, days, delete_batch in tables
        if days > 0
    ]


async def delete_expired_batch(session: AsyncSession, rows: ExpiredRows, limit: int) -> int:
    """Delete up to `limit` of the expired rows; returns how many went."""
    return await rows.delete_batch(session, rows.cutoff, limit)
