"""The intake subscriber in process (FastStream's in-memory test broker): a poison
record in a batch is skipped and the rest taken in, and a redelivered event is taken
in once. The real-broker path is test_consumers.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from faststream.kafka import TestKafkaBroker
from sqlalchemy import func, select

from tollgate.contracts import topics
from tollgate.contracts.envelope import encode
from tollgate.kit.kafka import make_broker, topic_name
from tollgate.notifier.intake.consumers import intake_consumers
from tollgate.notifier.models import ReceivedEvent

from ..events import credits_low, topped_up
from ..factories import database, migrated, settings_for


async def test_poison_skipped_and_redelivery_taken_in_once(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    settings = settings_for(url, kafka_topic_prefix="inproc.")
    org = uuid.uuid4()
    low, up = encode(credits_low(org)), encode(topped_up(org))
    topic = topic_name(topics.BILLING_EVENTS, settings)
    async with database(url) as sessions:
        broker = make_broker(
            settings, client="notifier", sessions=sessions, routers=[intake_consumers(settings)]
        )
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(low, b"not an event", up, topic=topic)
            await test_broker.publish_batch(low, topic=topic)  # redelivered
        async with sessions() as session:
            received = await session.scalar(select(func.count()).select_from(ReceivedEvent))
    assert received == 2
