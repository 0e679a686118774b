"""The API registry subscriber in process (FastStream's in-memory test broker): a
deprecated API's state announces to its recent callers once, however often it is
delivered; a tombstone and a poison record change nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from faststream.kafka import TestKafkaBroker

from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.kafka import make_broker, topic_name
from tollgate.usage.config import Settings
from tollgate.usage.deprecations.consumers import api_consumers

from ..factories import completed, migrated
from ..ingest.test_service import as_deliveries, ingest
from .test_service import api_state, outbox_notices


async def test_redelivered_deprecation_is_announced_once(
    database_factory: Callable[[str], str],
) -> None:
    api, org = uuid.uuid4(), uuid.uuid4()
    state = api_state(api, sunset_at=datetime.now(UTC) + timedelta(days=90))
    value = encode(new_event(state, source="tollgate/accounts/test"))
    url = await migrated(database_factory("usage"))
    settings = Settings(
        database_url=url, kafka_topic_prefix="inproc.", kafka_enable_idempotence=False
    )
    engine = create_engine(url, pool_size=2)
    sessions = session_maker(engine)
    try:
        await ingest(
            sessions, as_deliveries([completed(org_id=org, key_id=uuid.uuid4(), api_id=api)])
        )
        topic = topic_name(topics.ACCOUNTS_APIS, settings)
        broker = make_broker(
            settings, client="usage", sessions=sessions, routers=[api_consumers(settings)]
        )
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(value, b"not an event", topic=topic)
            await test_broker.publish(None, topic=topic, key=str(api).encode())
            await test_broker.publish_batch(value, topic=topic)  # redelivered after a crash
        notices = await outbox_notices(sessions)
    finally:
        await engine.dispose()
    assert [(n.org_id, n.api_id, n.requests) for n in notices] == [(org, api, 1)]
