"""Kafka transport of the audit log: other services' audit records in.

Billing, usage and the notifier write an `AuditRecorded` to their outboxes for every
state-changing call (`tollgate.kit.audit`); group `accounts-audit` reads
`tollgate.audit.records.v1` in batches and stores each batch in one transaction,
idempotent on the event id (a redelivery after a crash inserts nothing). Offsets are
committed after that transaction (`OffsetCommits`); a poison record is logged and
skipped (`readable`).
"""

from __future__ import annotations

import logging

from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter

from tollgate.accounts.audit.service import store_records
from tollgate.accounts.config import Settings
from tollgate.contracts import topics
from tollgate.contracts.envelope import CloudEvent
from tollgate.contracts.events.audit import AuditRecorded
from tollgate.kit.db import SessionMaker
from tollgate.kit.kafka import (
    OffsetCommits,
    Sessions,
    batch_records,
    consumer_options,
    readable,
)

log = logging.getLogger(__name__)

GROUP_ID = "accounts-audit"
BATCH_MAX = 500

AUDIT_STORED = Counter(
    "tollgate_accounts_audit_records_stored_total",
    "audit records of other services stored",
    ["outcome"],
)


def audit_consumers(settings: Settings) -> KafkaRouter:
    """The audit-record subscriber (group `accounts-audit`), under contract topic names."""
    router = KafkaRouter()
    commits = OffsetCommits(interval_seconds=1.0, batch_max=BATCH_MAX)

    @router.subscriber(
        topics.AUDIT_RECORDS.name,
        group_id=GROUP_ID,
        batch=True,
        max_records=BATCH_MAX,
        **consumer_options(settings, manual_commits=True),
    )
    async def on_audit_records(
        body: list[bytes], message: KafkaMessage, sessions: Sessions
    ) -> None:
        await commits.after(message, lambda: store_batch(message, sessions))

    return router


async def store_batch(message: KafkaMessage, sessions: SessionMaker) -> None:
    """Store the batch's audit records in one transaction (redeliveries insert nothing)."""
    records: list[CloudEvent[AuditRecorded]] = []
    for record in batch_records(message):
        event = readable(record, group=GROUP_ID)
        if event is not None and isinstance(event.data, AuditRecorded):
            records.append(event)  # type: ignore[arg-type]
    if not records:
        return
    async with sessions() as session, session.begin():
        stored = await store_records(session, records)
    AUDIT_STORED.labels("stored").inc(stored)
    if stored < len(records):
        AUDIT_STORED.labels("redelivered").inc(len(records) - stored)
