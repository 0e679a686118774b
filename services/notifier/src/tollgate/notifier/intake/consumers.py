"""Kafka transport of the intake: decode, delegate, own the transaction.

Offsets are committed only after the database transaction commits (the kit's
consumer options), so a crash in between redelivers the batch and `take_in` skips
what was already recorded. New events are turned into webhook deliveries and emails
in the same transaction. Poison records are logged, counted and skipped by the kit's
`readable`.
"""

from __future__ import annotations

import logging

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from tollgate.contracts import topics
from tollgate.contracts.envelope import CloudEvent, EventData
from tollgate.kit.db import SessionMaker
from tollgate.kit.kafka import Sessions, batch_records, consumer_options, readable
from tollgate.notifier.clock import Clock, SystemClock
from tollgate.notifier.config import Settings
from tollgate.notifier.email.service import BalanceStates
from tollgate.notifier.intake.service import queue_notifications, take_in

log = logging.getLogger(__name__)

GROUP_ID = "notifier"
INTAKE_TOPICS = (topics.ACCOUNTS_EVENTS, topics.BILLING_EVENTS, topics.USAGE_EVENTS)

EVENTS_TAKEN_IN = Counter("tollgate_notifier_events_taken_in_total", "new domain events")
REDELIVERIES_SKIPPED = Counter(
    "tollgate_notifier_redeliveries_skipped_total", "events seen before and skipped"
)


def intake_consumers(
    settings: Settings, clock: Clock | None = None, balances: BalanceStates | None = None
) -> KafkaRouter:
    """The intake subscriber (group `notifier`), under contract topic names; `balances`
    is the replayed balance state the first contacts' catch-up consults."""
    clock = clock or SystemClock()
    router = KafkaRouter()

    @router.subscriber(
        *(t.name for t in INTAKE_TOPICS),
        group_id=GROUP_ID,
        batch=True,
        max_records=500,
        **consumer_options(settings),
    )
    async def on_domain_events(
        body: list[bytes], message: KafkaMessage, sessions: Sessions
    ) -> None:
        await take_in_batch(message, sessions, clock, balances)

    return router


async def take_in_batch(
    message: KafkaMessage,
    sessions: SessionMaker,
    clock: Clock,
    balances: BalanceStates | None = None,
) -> None:
    """Take in the batch's new events and queue their notifications, one transaction
    (every topic's events queued together, so the org locks are taken once, in order)."""
    by_topic: dict[str, list[CloudEvent[EventData]]] = {}
    for record in batch_records(message):
        event = readable(record, group=GROUP_ID)
        if event is not None:
            by_topic.setdefault(record.topic, []).append(event)
    async with sessions() as session, session.begin():
        new: list[CloudEvent[EventData]] = []
        for topic, events in by_topic.items():
            result = await take_in(session, topic, events)
            new.extend(result.new)
            EVENTS_TAKEN_IN.inc(len(result.new))
            if result.redelivered:
                REDELIVERIES_SKIPPED.inc(result.redelivered)
                log.info(
                    "redelivered events skipped",
                    extra={"topic": topic, "redelivered_skipped": result.redelivered},
                )
        await queue_notifications(session, new, clock.now(), balances)
