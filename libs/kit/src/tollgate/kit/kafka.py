"""Kafka plumbing: one producer factory, one broker (consumer) factory, topic creation.

Consumers read through two pieces written once here: `readable(record, group=...)`
decodes a record or, for a poison record (not a contract event), logs it, counts it in
`tollgate_kafka_records_skipped_total` and returns None, so it never blocks its
partition; `OffsetCommits` commits a manual-ack subscriber's offsets only after the
handler (and so its database transaction) succeeded, rewinds the batch when it
failed, and while a backlog is worked off commits at most every interval.

Producers are plain aiokafka producers (the outbox relay and the gateway batch their
own sends and need tombstones). Consumers are FastStream subscribers on a service's
`KafkaRouter`s, registered under the contract topic names; `make_broker` includes the
routers with the configured topic prefix (`include_router(prefix=...)`) and puts the
service's session maker in the broker's context, where a handler takes it as a
`Sessions` parameter. Tests hand the same routers to FastStream's `TestKafkaBroker`.
Everything tunable (idempotence, acks, linger, compression,
session timeout) comes from `ServiceSettings`: idempotence must be off against the
embedded Tansu broker, which rejects InitProducerId.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Annotated, Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord, TopicPartition
from faststream import AckPolicy, Context
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from prometheus_client import REGISTRY, Counter
from pydantic import ValidationError

from tollgate.contracts.decoding import UnknownEventType, decode
from tollgate.contracts.envelope import CloudEvent, EventData
from tollgate.contracts.topics import Topic
from tollgate.kit.db import SessionMaker
from tollgate.kit.settings import ServiceSettings

log = logging.getLogger(__name__)

Sessions = Annotated[SessionMaker, Context("sessions")]
"""A subscriber's parameter: the service's session maker, from the broker's context."""


def topic_name(topic: Topic | str, settings: ServiceSettings) -> str:
    """The physical topic name: the contract name behind the configured prefix."""
    name = topic if isinstance(topic, str) else topic.name
    return settings.kafka_topic_prefix + name


def _acks(settings: ServiceSettings) -> int | str:
    return "all" if settings.kafka_acks == "all" else int(settings.kafka_acks)


def make_producer(settings: ServiceSettings, *, client: str) -> AIOKafkaProducer:
    """An unstarted aiokafka producer configured from settings."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"tollgate-{client}-{settings.instance_id}",
        acks=_acks(settings),
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=settings.kafka_linger_ms,
        compression_type=None if settings.kafka_compression == "none" else "gzip",
        max_batch_size=1_048_576,
        request_timeout_ms=15_000,
    )


def make_broker(
    settings: ServiceSettings,
    *,
    client: str,
    sessions: SessionMaker,
    routers: Sequence[KafkaRouter],
) -> KafkaBroker:
    """An unstarted FastStream broker holding the service's subscribers (and nothing
    else): each router is included behind the configured topic prefix, and `sessions`
    is what a subscriber's `Sessions` parameter receives."""
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"tollgate-{client}-{settings.instance_id}",
        acks=_acks(settings),
        enable_idempotence=settings.kafka_enable_idempotence,
        linger_ms=settings.kafka_linger_ms,
        allow_auto_create_topics=False,
        graceful_timeout=15.0,
        # traceparent from record headers becomes the consumer span's parent; consumer
        # counters and durations land on the service's /metrics.
        middlewares=(
            KafkaTelemetryMiddleware(),
            KafkaPrometheusMiddleware(registry=REGISTRY, app_name=f"tollgate-{client}"),
        ),
        logger=logging.getLogger(f"tollgate.{client}.kafka"),
        log_level=logging.DEBUG,  # per-message "Received"/"Processed" lines
    )
    broker.context.set_global("sessions", sessions)
    for router in routers:
        broker.include_router(router, prefix=settings.kafka_topic_prefix)
    return broker


async def start_broker(broker: KafkaBroker) -> None:
    """`broker.start()`, but the subscribers start together: each joins its own consumer
    group, which takes a broker round of its own (about a second here), so a service
    with three groups was ready ~2 s later after every start and restart."""
    await broker.connect()
    await asyncio.gather(*(subscriber.start() for subscriber in broker.subscribers))
    for publisher in broker.publishers:
        await publisher.start()
    broker.running = True


def consumer_options(settings: ServiceSettings, *, manual_commits: bool = False) -> dict[str, Any]:
    """Subscriber options every consumer group uses: start from the earliest record,
    commit only after the handler succeeded (its database transaction committed), and
    rewind to the first record of the batch when it fails, so nothing is skipped.
    `manual_commits=True` leaves commits and rewinds to an `OffsetCommits`."""
    return {
        "auto_offset_reset": "earliest",
        # An idle fetch returns within 100 ms (aiokafka's default is 500): events reach
        # consumers within the latency budgets even when the broker does not wake a
        # waiting fetch as soon as data arrives.
        "fetch_max_wait_ms": 100,
        "ack_policy": AckPolicy.MANUAL if manual_commits else AckPolicy.NACK_ON_ERROR,
        "decoder": _raw_body,
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
    }


async def _raw_body(message: StreamMessage[Any]) -> Any:
    # Leave bytes alone: consumers decode with tollgate.contracts (and see tombstones).
    return message.body


def batch_records(message: KafkaMessage) -> tuple[ConsumerRecord[bytes, bytes], ...]:
    """The raw records of a batch delivery (key, value, partition, offset, headers)."""
    raw = message.raw_message
    # A list from the in-memory test broker, a tuple from aiokafka.
    return tuple(raw) if isinstance(raw, tuple | list) else (raw,)


RECORDS_SKIPPED = Counter(
    "tollgate_kafka_records_skipped_total",
    "records that are not a readable contract event, logged and skipped",
    ["group", "topic"],
)


def readable(record: ConsumerRecord[bytes, bytes], *, group: str) -> CloudEvent[EventData] | None:
    """The record's event; None for a tombstone or an empty value, and for a poison
    record (unknown type, invalid envelope or payload), which is logged and counted:
    skipping it is the only way forward for its partition."""
    if not record.value:
        return None
    try:
        return decode(record.value)
    except (UnknownEventType, ValidationError, ValueError) as exc:
        RECORDS_SKIPPED.labels(group, record.topic).inc()
        log.error(
            "unreadable record skipped",
            extra={
                "group": group,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "error": type(exc).__name__,
            },
        )
        return None


class OffsetCommits:
    """Offset commits of a batch subscriber with `ack_policy=AckPolicy.MANUAL`.

    `await commits.after(message, handler)` runs the handler (which opens and commits its
    own transaction). If it raises, the batch is nacked: its partitions rewind to the
    batch's first record and it comes again. If it succeeded, the consumed positions are
    committed when the batch was not full (caught up) or `interval_seconds` have passed
    since the last commit: one broker round trip saved per batch during a backlog, at
    the price of redelivering (and deduplicating) up to an interval after a crash.
    """

    def __init__(self, *, interval_seconds: float, batch_max: int) -> None:
        self._interval = interval_seconds
        self._batch_max = batch_max
        self._last_commit = time.monotonic()

    async def after(self, message: KafkaMessage, handler: Callable[[], Awaitable[object]]) -> None:
        """Run `handler`, then commit or rewind as described above."""
        try:
            await handler()
        except BaseException:
            await message.nack()  # rewind: the batch comes again
            raise
        caught_up = len(batch_records(message)) < self._batch_max
        due = time.monotonic() - self._last_commit >= self._interval
        if caught_up or due:
            await message.ack()  # commits every position consumed so far
            self._last_commit = time.monotonic()


def log_ends(message: KafkaMessage) -> dict[int, int]:
    """The log end (high watermark, from the fetch that delivered the batch) of each
    partition in a single-topic batch, where the consumer knows it. A position stored
    outside Kafka that lies beyond it belongs to a log that no longer exists."""
    highwater = getattr(getattr(message, "consumer", None), "highwater", None)
    ends: dict[int, int] = {}
    if highwater is None:  # FastStream's in-memory test broker
        return ends
    for record in batch_records(message):
        if record.partition not in ends:
            end = highwater(TopicPartition(record.topic, record.partition))
            if end is not None:
                ends[record.partition] = end
    return ends


def _topic_config(topic: Topic) -> dict[str, str]:
    config: dict[str, str] = {"cleanup.policy": topic.cleanup}
    if topic.retention_ms is not None:
        config["retention.ms"] = str(topic.retention_ms)
    return config


async def ensure_topics(settings: ServiceSettings, topics: Iterable[Topic]) -> None:
    """Create the given contract topics if missing (partitions and cleanup policy from
    the registry). Existing topics are left as they are."""
    wanted = list(topics)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"tollgate-admin-{settings.instance_id}",
    )
    for attempt in range(30):
        try:
            await admin.start()
            break
        except Exception:
            if attempt == 29:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name=topic_name(t, settings),
                num_partitions=t.partitions,
                replication_factor=settings.kafka_replication_factor,
                topic_configs=_topic_config(t),
            )
            for t in wanted
            if topic_name(t, settings) not in existing
        ]
        if not new:
            return
        with contextlib.suppress(TopicAlreadyExistsError):  # another replica won the race
            await admin.create_topics(new)
        log.info("created topics", extra={"topics": [n.name for n in new]})
    finally:
        await admin.close()
