"""Kafka transport of SMS charges: `tollgate.notifier.sms.v1` in, ledger entries out.

The billing broker gets one more subscriber (group `billing-sms`, its own offsets):
`SmsCharged` and `SmsRefunded` are applied in one transaction per batch, other types
on the topic (inbound SMS, status changes) are skipped. Offsets are committed after
that transaction (kit `OffsetCommits`); a redelivery is skipped by charge/refund id.
"""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from tollgate.billing.config import Settings
from tollgate.billing.sms.service import apply_sms_events
from tollgate.contracts import topics
from tollgate.contracts.events.notifier import SmsCharged, SmsRefunded
from tollgate.kit.db import SessionMaker
from tollgate.kit.kafka import (
    OffsetCommits,
    batch_records,
    consumer_options,
    readable,
    topic_name,
)

log = logging.getLogger(__name__)

GROUP_ID = "billing-sms"

SMS_CHARGED = Counter("tollgate_billing_sms_charged_total", "SMS charges debited")
SMS_REFUNDED = Counter("tollgate_billing_sms_refunded_total", "SMS refunds credited")


def subscribe_sms_charges(
    broker: KafkaBroker, settings: Settings, sessions: SessionMaker
) -> KafkaBroker:
    """Add the SMS charge subscriber to the billing broker; returns the broker."""
    options = {**consumer_options(settings), "ack_policy": AckPolicy.MANUAL}
    commits = OffsetCommits(
        interval_seconds=settings.offset_commit_interval_seconds,
        batch_max=settings.consume_batch_max,
    )

    @broker.subscriber(
        topic_name(topics.NOTIFIER_SMS, settings),
        group_id=GROUP_ID,
        batch=True,
        max_records=settings.consume_batch_max,
        **options,
    )
    async def on_sms(body: list[bytes], message: KafkaMessage) -> None:
        await commits.after(message, lambda: apply_batch(message))

    async def apply_batch(message: KafkaMessage) -> None:
        events: list[SmsCharged | SmsRefunded] = []
        for record in batch_records(message):
            event = readable(record, group=GROUP_ID)
            if event is not None and isinstance(event.data, SmsCharged | SmsRefunded):
                events.append(event.data)
        if not events:
            return
        async with sessions() as session, session.begin():
            outcome = await apply_sms_events(session, events, settings)
        SMS_CHARGED.inc(outcome.charged)
        SMS_REFUNDED.inc(outcome.refunded)
        if outcome.redelivered:
            log.info(
                "redelivered SMS charges skipped",
                extra={"redelivered_skipped": outcome.redelivered},
            )

    return broker
