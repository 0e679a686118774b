"""Kafka transport of the intake: decode, delegate, own the transaction.

Offsets are committed only after the database transaction commits (the kit's
consumer options), so a crash in between redelivers the batch and `take_in` skips
what was already recorded. New events are turned into webhook deliveries and emails
in the same transaction.
"""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter
from pydantic import ValidationError

from tollgate.contracts import topics
from tollgate.contracts.decoding import UnknownEventType, decode
from tollgate.kit.db import SessionMaker
from tollgate.kit.kafka import batch_records, consumer_options, make_broker, topic_name
from tollgate.notifier.clock import Clock, SystemClock
from tollgate.notifier.config import Settings
from tollgate.notifier.intake.service import queue_notifications, take_in

log = logging.getLogger(__name__)

GROUP_ID = "notifier"
INTAKE_TOPICS = (topics.ACCOUNTS_EVENTS, topics.BILLING_EVENTS, topics.USAGE_EVENTS)

EVENTS_TAKEN_IN = Counter("tollgate_notifier_events_taken_in_total", "new domain events")
REDELIVERIES_SKIPPED = Counter(
    "tollgate_notifier_redeliveries_skipped_total", "events seen before and skipped"
)


def build_broker(
    settings: Settings, sessions: SessionMaker, clock: Clock | None = None
) -> KafkaBroker:
    """The notifier's broker with its intake subscriber."""
    clock = clock or SystemClock()
    broker = make_broker(settings, client="notifier")

    @broker.subscriber(
        *(topic_name(t, settings) for t in INTAKE_TOPICS),
        group_id=GROUP_ID,
        batch=True,
        max_records=500,
        **consumer_options(settings),
    )
    async def on_domain_events(body: list[bytes], message: KafkaMessage) -> None:
        records = batch_records(message)
        by_topic: dict[str, list[bytes]] = {}
        for record in records:
            if record.value:
                by_topic.setdefault(record.topic, []).append(record.value)
        async with sessions() as session, session.begin():
            for topic, values in by_topic.items():
                events = []
                for value in values:
                    try:
                        events.append(decode(value))
                    except UnknownEventType as exc:
                        log.warning("skipping unknown event type", extra={"type": str(exc)})
                    except ValidationError as exc:
                        # A malformed event would otherwise block the partition forever.
                        log.error(
                            "skipping invalid event",
                            extra={"topic": topic, "errors": exc.error_count()},
                        )
                result = await take_in(session, topic, events)
                await queue_notifications(session, result.new, clock.now())
                EVENTS_TAKEN_IN.inc(len(result.new))
                if result.redelivered:
                    REDELIVERIES_SKIPPED.inc(result.redelivered)
                    log.info(
                        "redelivered events skipped",
                        extra={"topic": topic, "redelivered_skipped": result.redelivered},
                    )

    return broker
