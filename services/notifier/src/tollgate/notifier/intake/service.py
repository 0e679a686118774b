"""Intake rules: which events are new, and what they turn into. Never commits; the
consumer owns the transaction, so recording an event and queueing its webhooks and
emails happen together or not at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.contracts.envelope import CloudEvent
from tollgate.notifier.email import service as email
from tollgate.notifier.intake import repository
from tollgate.notifier.webhooks import service as webhooks


@dataclass(frozen=True)
class IntakeResult:
    """What one batch changed."""

    new: list[CloudEvent[Any]]
    redelivered: int


async def take_in(session: AsyncSession, topic: str, events: list[CloudEvent[Any]]) -> IntakeResult:
    """Record a batch of events; only events never seen before come back as `new`."""
    unique = {event.id: event for event in events}
    rows = [
        {"event_id": e.id, "type": e.type, "subject": e.subject, "source_topic": topic}
        for e in unique.values()
    ]
    inserted = set(await repository.insert_received(session, rows))
    new = [event for event_id, event in unique.items() if event_id in inserted]
    return IntakeResult(new=new, redelivered=len(events) - len(new))


@dataclass(frozen=True)
class Notifications:
    """What a batch of new events queued."""

    webhook_deliveries: int
    emails: int


async def queue_notifications(
    session: AsyncSession,
    events: list[CloudEvent[Any]],
    now: datetime,
    balances: email.BalanceStates | None = None,
) -> Notifications:
    """Turn new events into webhook deliveries and emails (durable queues). The orgs
    whose contacts or credits notice change are locked first, in id order, so a new
    org's owner and a notice taken in concurrently (another replica, another topic)
    cannot miss each other; `balances` is the replayed balance state."""
    await email.lock_orgs(session, email.orgs_concerned(events))
    deliveries = emails = 0
    for event in events:
        deliveries += await webhooks.queue_for_event(session, event, now)
        emails += await email.queue_for_event(session, event, now, balances)
    return Notifications(webhook_deliveries=deliveries, emails=emails)
