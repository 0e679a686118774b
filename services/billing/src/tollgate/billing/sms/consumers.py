"""Kafka transport of SMS charges: `tollgate.notifier.sms.v1` in, ledger entries out.

A subscriber of its own (group `billing-sms`, its own offsets) on the billing broker:
`SmsCharged` and `SmsRefunded` are applied in one transaction per batch, other types
on the topic (inbound SMS, status changes) are skipped. Offsets are committed after
that transaction (kit `OffsetCommits`); a redelivery is skipped by charge/refund id.
"""

from __future__ import annotations

import logging

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from tollgate.billing.config import Settings
from tollgate.billing.sms.service import apply_sms_events
from tollgate.contracts import topics
from tollgate.contracts.events.notifier import SmsCharged, SmsRefunded
from tollgate.kit.db import SessionMaker
from tollgate.kit.kafka import (
    OffsetCommits,
    Sessions,
    batch_records,
    consumer_options,
    readable,
)

log = logging.getLogger(__name__)

GROUP_ID = "billing-sms"

SMS_CHARGED = Counter("tollgate_billing_sms_charged_total", "SMS charges debited")
SMS_REFUNDED = Counter("tollgate_billing_sms_refunded_total", "SMS refunds credited")


def sms_charge_consumers(settings: Settings) -> KafkaRouter:
    """The SMS charge subscriber (group `billing-sms`), under contract topic names."""
    router = KafkaRouter()
    commits = OffsetCommits(
        interval_seconds=settings.offset_commit_interval_seconds,
        batch_max=settings.consume_batch_max,
    )

    @router.subscriber(
        topics.NOTIFIER_SMS.name,
        group_id=GROUP_ID,
        batch=True,
        max_records=settings.consume_batch_max,
        **consumer_options(settings, manual_commits=True),
    )
    async def on_sms(body: list[bytes], message: KafkaMessage, sessions: Sessions) -> None:
        await commits.after(message, lambda: apply_batch(message, sessions, settings))

    return router


async def apply_batch(message: KafkaMessage, sessions: SessionMaker, settings: Settings) -> None:
    """Apply the batch's SMS charges and refunds in one transaction."""
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
