"""The SMS charge subscriber in process (FastStream's in-memory test broker): a charge
and its refund in a batch with a poison record apply once, and a redelivered batch
changes nothing. The rules themselves are test_service.py's."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from faststream.kafka import TestKafkaBroker

from tollgate.billing.sms.consumers import sms_charge_consumers
from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.kafka import make_broker, topic_name

from ..factories import fund, ledger_total, migrated, settings_for
from .test_service import charge, refund


async def test_batch_applies_once_and_skips_poison(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url, topic_prefix="inproc.")
    engine = create_engine(url)
    sessions = session_maker(engine)
    org = uuid.uuid4()
    try:
        await fund(sessions, settings, org, 100)
        kept, refunded = charge(org, 2, 5), charge(org, 3, 5)
        batch = [
            encode(new_event(e, source="tollgate/notifier/test"))
            for e in (kept, refunded, refund(refunded))
        ]
        topic = topic_name(topics.NOTIFIER_SMS, settings)
        broker = make_broker(
            settings, client="billing", sessions=sessions, routers=[sms_charge_consumers(settings)]
        )
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(*batch[:1], b"not an event", *batch[1:], topic=topic)
            await test_broker.publish_batch(*batch, topic=topic)  # redelivered
        async with sessions() as session:
            assert await ledger_total(session, org) == 100 - kept.amount
    finally:
        await engine.dispose()
