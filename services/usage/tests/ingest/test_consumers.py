"""The ingestion subscriber in process (FastStream's in-memory test broker): a batch
with a poison record in it is counted without it, and a redelivered batch counts
nothing more. The same path runs on a real broker in tests/system/test_usage_crash.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import orjson
import pytest
from faststream.kafka import TestKafkaBroker
from sqlalchemy import text

from tollgate.contracts import topics
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.kafka import make_broker, topic_name
from tollgate.usage.config import Settings
from tollgate.usage.ingest.consumers import ingest_consumers
from tollgate.usage.retention.service import PartitionDays

from ..factories import completed, encoded, migrated


async def logged_after(
    database_factory: Callable[[str], str], org: uuid.UUID, *batches: list[bytes]
) -> int:
    """The org's request log entries after usage's subscriber took `batches` in
    (FastStream's in-memory broker, a fresh database)."""
    url = await migrated(database_factory("usage"))
    settings = Settings(
        database_url=url, kafka_topic_prefix="inproc.", kafka_enable_idempotence=False
    )
    engine = create_engine(url, pool_size=2)
    sessions = session_maker(engine)
    try:
        broker = make_broker(
            settings,
            client="usage",
            sessions=sessions,
            routers=[ingest_consumers(settings, PartitionDays())],
        )
        async with TestKafkaBroker(broker) as test_broker:
            for batch in batches:
                topic = topic_name(topics.GATEWAY_REQUESTS, settings)
                await test_broker.publish_batch(*batch, topic=topic)
        async with sessions() as session:
            return int(
                await session.scalar(
                    text("SELECT count(*) FROM request_log WHERE org_id = :o"), {"o": org}
                )
            )
    finally:
        await engine.dispose()


async def test_batch_counts_once_and_skips_poison(database_factory: Callable[[str], str]) -> None:
    org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = [encoded(completed(org_id=org, key_id=key, api_id=api)) for _ in range(5)]
    redelivered = events
    assert (
        await logged_after(database_factory, org, [*events[:2], b"{}", *events[2:]], redelivered)
        == 5
    )


def _spoiled(value: bytes, **data: object) -> bytes:
    """The event `value` with fields of its `data` replaced (the model would refuse)."""
    event = orjson.loads(value)
    event["data"].update(data)
    return orjson.dumps(event)


@pytest.mark.parametrize(
    "spoil",
    [
        {"latency_ms": 2**31},
        {"upstream_latency_ms": 2**31},
        {"request_bytes": 2**63},
        {"path": "/a\u0000b"},
        {"time": "9999-12-31T12:00:00Z"},
    ],
)
async def test_an_event_no_column_can_hold_is_skipped_not_retried_for_ever(
    database_factory: Callable[[str], str], spoil: dict[str, object]
) -> None:
    # Before: the contract took these values, so the record was not skipped as poison;
    # Postgres refused it, the batch was nacked and came back, for ever: its
    # partition stopped for every org on it, and the good events beside it with it.
    org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = [encoded(completed(org_id=org, key_id=key, api_id=api)) for _ in range(3)]
    batch = [*events, _spoiled(events[0], **spoil)]
    assert await logged_after(database_factory, org, batch) == 3
