"""The ledger's Kafka subscriber in process (FastStream's in-memory test broker): a
batch of request events debits once, a poison record among them is skipped, and a
redelivered batch charges nothing more. The same path runs on a real broker in
tests/system/test_billing_crash.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from faststream.kafka import TestKafkaBroker

from tollgate.billing.ledger import service as ledger
from tollgate.billing.ledger.consumers import build_broker
from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.kafka import topic_name

from ..factories import ledger_total, migrated, request_event, settings_for


async def test_batch_debits_once_and_skips_poison(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url, topic_prefix="inproc.")
    engine = create_engine(url)
    sessions = session_maker(engine)
    org = uuid.uuid4()
    try:
        async with sessions() as session, session.begin():
            await ledger.add_credits(
                session,
                org,
                settings,
                kind="top_up",
                amount=100,
                actor="admin:t",
                reason="opening",
                idempotency_key="k1",
            )
        events = [
            encode(new_event(request_event(org, cost=3), source="tollgate/gateway/test"))
            for _ in range(5)
        ]
        topic = topic_name(topics.GATEWAY_REQUESTS, settings)
        broker = build_broker(settings, sessions)
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(*events[:2], b"not an event", *events[2:], topic=topic)
            await test_broker.publish_batch(*events, topic=topic)  # redelivered
        async with sessions() as session:
            assert await ledger_total(session, org) == 100 - 5 * 3
    finally:
        await engine.dispose()
