"""Kafka transport of ingestion: decode, delegate, own the transaction.

The `usage` group reads `tollgate.gateway.requests.v1` in batches. Each batch is one
Postgres transaction holding the log rows, aggregates, quota counters, outbox events
and the consumed positions (`ingest.service`). The positions in the database are the
truth; Kafka offsets only say where to resume, so they are committed (after the
transaction) at most every `offset_commit_interval_seconds` while a backlog is worked
off, and after every batch once caught up: one broker round trip saved per batch.
After a crash or a rebalance the records since the last Kafka commit come again and
are skipped record by record, logged with the field `redelivered_skipped`. A failed
batch rewinds its partitions (nack). A missing day partition is created first, in its
own small transaction (DDL), so the batch transaction holds no DDL locks. Decoding,
skipping poison records and the commit cadence are the kit's (`readable`,
`OffsetCommits`).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import Counter, Histogram

from tollgate.contracts import topics
from tollgate.contracts.events.gateway import RequestCompleted, RequestRejected
from tollgate.kit.db import SessionMaker
from tollgate.kit.kafka import (
    OffsetCommits,
    Sessions,
    batch_records,
    consumer_options,
    log_ends,
    readable,
)
from tollgate.usage.config import Settings
from tollgate.usage.ingest.service import Delivery, RequestEvent, record_requests
from tollgate.usage.retention.service import PartitionDays, ensure_partitions, oldest_kept_day

log = logging.getLogger(__name__)

GROUP_ID = "usage"

EVENTS_INGESTED = Counter("tollgate_usage_events_ingested_total", "request events counted")
REDELIVERIES_SKIPPED = Counter(
    "tollgate_usage_redeliveries_skipped_total", "records below the stored position, skipped"
)
DUPLICATES_SKIPPED = Counter(
    "tollgate_usage_duplicates_skipped_total", "request ids already logged, skipped"
)
EVENTS_INVALID = Counter(
    "tollgate_usage_events_invalid_total", "events of another type on the request topic, skipped"
)
BATCH_SECONDS = Histogram(
    "tollgate_usage_ingest_batch_seconds",
    "time to take in one batch, transaction included",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def _request_event(record: ConsumerRecord[bytes, bytes]) -> RequestEvent | None:
    event = readable(record, group=GROUP_ID)
    if event is None:
        return None
    data = event.data
    if isinstance(data, RequestCompleted | RequestRejected):
        return data
    EVENTS_INVALID.inc()
    log.warning(
        "skipping an event of another type",
        extra={"partition": record.partition, "offset": record.offset, "type": data.event_type},
    )
    return None


def ingest_consumers(settings: Settings, partitions: PartitionDays) -> KafkaRouter:
    """The request ingestion subscriber (group `usage`), under contract topic names."""
    router = KafkaRouter()
    commits = OffsetCommits(
        interval_seconds=settings.offset_commit_interval_seconds,
        batch_max=settings.ingest_batch_max_records,
    )

    @router.subscriber(
        topics.GATEWAY_REQUESTS.name,
        group_id=GROUP_ID,
        batch=True,
        max_records=settings.ingest_batch_max_records,
        **consumer_options(settings, manual_commits=True),
    )
    async def on_requests(body: list[bytes], message: KafkaMessage, sessions: Sessions) -> None:
        await commits.after(
            message,
            lambda: take_in(message, sessions, partitions, settings.request_log_retention_days),
        )

    return router


async def take_in(
    message: KafkaMessage, sessions: SessionMaker, partitions: PartitionDays, log_days: int
) -> int:
    """Record one batch (see the module docstring); the number of records taken in
    (`log_days`: how long the request log is kept)."""
    started = time.perf_counter()
    deliveries = [
        Delivery(r.partition, r.offset, _request_event(r)) for r in batch_records(message)
    ]
    days = {d.event.time.date() for d in deliveries if d.event is not None}
    missing = partitions.missing(days)
    if missing:
        async with sessions() as session, session.begin():
            await ensure_partitions(session, missing, partitions)
    async with sessions() as session, session.begin():
        result = await record_requests(
            session,
            group_id=GROUP_ID,
            topic=topics.GATEWAY_REQUESTS.name,
            deliveries=deliveries,
            log_ends=log_ends(message),
            oldest_logged_day=oldest_kept_day(datetime.now(UTC), log_days),
        )
    BATCH_SECONDS.observe(time.perf_counter() - started)
    EVENTS_INGESTED.inc(result.ingested)
    if result.redelivered_skipped or result.duplicates_skipped:
        REDELIVERIES_SKIPPED.inc(result.redelivered_skipped)
        DUPLICATES_SKIPPED.inc(result.duplicates_skipped)
        log.info(
            "redelivered request events skipped",
            extra={
                "redelivered_skipped": result.redelivered_skipped,
                "duplicates_skipped": result.duplicates_skipped,
                "batch": len(deliveries),
            },
        )
    if result.positions_reset:
        log.warning(
            "stored positions beyond the log end (a new broker or a recreated topic): "
            "reading those partitions from the start; request ids keep counts exact",
            extra={"partitions": list(result.positions_reset)},
        )
    if result.thresholds_crossed:
        log.info("quota thresholds crossed", extra={"crossed": result.thresholds_crossed})
    return len(deliveries)
