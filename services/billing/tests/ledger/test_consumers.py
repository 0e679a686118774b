"""The ledger's Kafka subscriber in process (FastStream's in-memory test broker): a
batch of request events debits once, a poison record among them is skipped, and a
redelivered batch charges nothing more. The same path runs on a real broker in
tests/system/test_billing_crash.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from faststream.kafka import TestKafkaBroker

from tollgate.billing.ledger.consumers import ledger_consumers
from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.accounts import OrgRole
from tollgate.contracts.events.identity import OrgMembership, UserState
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.kafka import make_broker, topic_name

from ..factories import (
    fund,
    ledger_total,
    migrated,
    outbox_data,
    outbox_types,
    request_event,
    settings_for,
)


async def test_batch_debits_once_and_skips_poison(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url, topic_prefix="inproc.")
    engine = create_engine(url)
    sessions = session_maker(engine)
    org = uuid.uuid4()
    try:
        await fund(sessions, settings, org, 100)
        events = [
            encode(new_event(request_event(org, cost=3), source="tollgate/gateway/test"))
            for _ in range(5)
        ]
        topic = topic_name(topics.GATEWAY_REQUESTS, settings)
        broker = make_broker(
            settings, client="billing", sessions=sessions, routers=[ledger_consumers(settings)]
        )
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(*events[:2], b"not an event", *events[2:], topic=topic)
            await test_broker.publish_batch(*events, topic=topic)  # redelivered
        async with sessions() as session:
            assert await ledger_total(session, org) == 100 - 5 * 3
    finally:
        await engine.dispose()


async def test_a_new_org_gets_its_first_balance_state_at_once(
    database_factory: Callable[[str], str],
) -> None:
    """An org appears in a user's memberships (it was just created): billing opens its
    account and publishes it exhausted (prepaid, nothing to spend) with the exhausted
    notice, once, however often the user's state comes again."""
    url = await migrated(database_factory("billing"))
    settings = settings_for(url, topic_prefix="inproc.")
    engine = create_engine(url)
    sessions = session_maker(engine)
    known, new = uuid.uuid4(), uuid.uuid4()
    try:
        await fund(sessions, settings, known, 500)
        state = UserState(
            user_id=uuid.uuid4(),
            active=True,
            is_admin=False,
            memberships=[
                OrgMembership(org_id=known, role=OrgRole.OWNER),
                OrgMembership(org_id=new, role=OrgRole.OWNER),
            ],
            version=1,
            updated_at=datetime.now(UTC),
        )
        record = encode(new_event(state, source="tollgate/accounts/test"))
        broker = make_broker(
            settings, client="billing", sessions=sessions, routers=[ledger_consumers(settings)]
        )
        async with TestKafkaBroker(broker) as test_broker:
            topic = topic_name(topics.ACCOUNTS_USERS, settings)
            await test_broker.publish_batch(record, b"not an event", topic=topic)
            await test_broker.publish_batch(record, topic=topic)  # redelivered
        balances = await outbox_data(engine, topics.BILLING_BALANCES.name)
        notices = await outbox_types(engine, topics.BILLING_EVENTS.name)
    finally:
        await engine.dispose()
    firsts = [b for b in balances if b["org_id"] == str(new)]
    assert [(b["status"], b["balance"], b["version"]) for b in firsts] == [("exhausted", 0, 1)]
    assert notices.count("tollgate.billing.credits.exhausted.v1") == 1
    # The funded org was left as it was: one state, from its top-up.
    assert [b["balance"] for b in balances if b["org_id"] == str(known)] == [500]
