"""The ingestion subscriber in process (FastStream's in-memory test broker): a batch
with a poison record in it is counted without it, and a redelivered batch counts
nothing more. The same path runs on a real broker in tests/system/test_usage_crash.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from faststream.kafka import TestKafkaBroker
from sqlalchemy import text

from tollgate.contracts import topics
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.kafka import make_broker, topic_name
from tollgate.usage.config import Settings
from tollgate.usage.ingest.consumers import ingest_consumers
from tollgate.usage.retention.service import PartitionDays

from ..factories import completed, encoded, migrated


async def test_batch_counts_once_and_skips_poison(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("usage"))
    settings = Settings(
        database_url=url, kafka_topic_prefix="inproc.", kafka_enable_idempotence=False
    )
    engine = create_engine(url, pool_size=2)
    sessions = session_maker(engine)
    org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = [encoded(completed(org_id=org, key_id=key, api_id=api)) for _ in range(5)]
    topic = topic_name(topics.GATEWAY_REQUESTS, settings)
    try:
        broker = make_broker(
            settings,
            client="usage",
            sessions=sessions,
            routers=[ingest_consumers(settings, PartitionDays())],
        )
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(*events[:2], b"{}", *events[2:], topic=topic)
            await test_broker.publish_batch(*events, topic=topic)  # redelivered
        async with sessions() as session:
            logged = await session.scalar(
                text("SELECT count(*) FROM request_log WHERE org_id = :o"), {"o": org}
            )
        assert logged == 5
    finally:
        await engine.dispose()
