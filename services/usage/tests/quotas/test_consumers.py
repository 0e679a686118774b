"""The key registry subscriber in process (FastStream's in-memory test broker): the
latest state of a key is kept (a stale one and a poison record change nothing) and a
tombstone forgets it. The real-broker path is the usage system tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from faststream.kafka import TestKafkaBroker
from sqlalchemy import select

from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.accounts import KeyUpserted, Limits
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.kafka import make_broker, topic_name
from tollgate.usage.config import Settings
from tollgate.usage.models import ApiKey
from tollgate.usage.quotas.consumers import key_consumers

from ..factories import migrated


def key_state(key_id: uuid.UUID, org_id: uuid.UUID, per_day: int, version: int) -> bytes:
    state = KeyUpserted(
        key_id=key_id,
        org_id=org_id,
        key_hash="0" * 64,
        prefix="tg_live_AbCd",
        last4="wxyz",
        name="ci",
        environment="live",
        enabled=True,
        limits=Limits(per_day=per_day),
        version=version,
        updated_at=datetime.now(UTC),
    )
    return encode(new_event(state, source="tollgate/accounts/test"))


async def test_latest_key_state_kept_and_tombstone_forgets(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("usage"))
    settings = Settings(
        database_url=url, kafka_topic_prefix="inproc.", kafka_enable_idempotence=False
    )
    engine = create_engine(url, pool_size=2)
    sessions = session_maker(engine)
    kept, deleted, org = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    topic = topic_name(topics.ACCOUNTS_KEYS, settings)
    try:
        broker = make_broker(
            settings, client="usage", sessions=sessions, routers=[key_consumers(settings)]
        )
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(
                key_state(kept, org, per_day=10, version=2),
                b"not an event",
                key_state(kept, org, per_day=99, version=1),  # stale
                key_state(deleted, org, per_day=5, version=1),
                topic=topic,
            )
            await test_broker.publish(None, topic=topic, key=str(deleted).encode())
        async with sessions() as session:
            limits = dict((await session.execute(select(ApiKey.key_id, ApiKey.per_day))).all())
        assert limits == {kept: 10}
    finally:
        await engine.dispose()
