"""Kafka plumbing: one producer factory, one broker (consumer) factory, topic creation.

Producers are plain aiokafka producers (the outbox relay and the gateway batch their
own sends and need tombstones); consumers are FastStream subscribers on a broker
made by `make_broker`. Everything tunable (idempotence, acks, linger, compression,
session timeout) comes from `ServiceSettings`: idempotence must be off against the
embedded Tansu broker, which rejects InitProducerId.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from prometheus_client import REGISTRY

from tollgate.contracts.topics import Topic
from tollgate.kit.settings import ServiceSettings

log = logging.getLogger(__name__)


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


def make_broker(settings: ServiceSettings, *, client: str) -> KafkaBroker:
    """A FastStream broker for this service's subscribers (and nothing else)."""
    return KafkaBroker(
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


def consumer_options(settings: ServiceSettings) -> dict[str, Any]:
    """Subscriber options every consumer group uses: start from the earliest record,
    commit only after the handler succeeded (its database transaction committed), and
    rewind to the first record of the batch when it fails, so nothing is skipped."""
    return {
        "auto_offset_reset": "earliest",
        # An idle fetch returns within 100 ms (aiokafka's default is 500): events reach
        # consumers within the latency budgets even when the broker does not wake a
        # waiting fetch as soon as data arrives.
        "fetch_max_wait_ms": 100,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
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
    return raw if isinstance(raw, tuple) else (raw,)


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
