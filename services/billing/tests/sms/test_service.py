"""SMS charges against a real Postgres: debited once, refunded once, exact balances, and
the net of what was applied published with the balance for the notifier's credit check."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import text

from tollgate.billing.ledger import service as ledger
from tollgate.billing.sms.service import apply_sms_events
from tollgate.contracts import topics
from tollgate.contracts.events.notifier import SmsCharged, SmsRefunded
from tollgate.contracts.ids import uuid7
from tollgate.kit.db import create_engine, session_maker

from ..factories import ledger_total, migrated, outbox_data, settings_for


def charge(org: uuid.UUID, segments: int, price: int) -> SmsCharged:
    return SmsCharged(
        charge_id=uuid7(),
        message_id=uuid7(),
        org_id=org,
        key_id=uuid.uuid4(),
        destination_prefix="+4179",
        segments=segments,
        price_per_segment=price,
        amount=segments * price,
        charged_at=datetime.now(UTC),
    )


def refund(of: SmsCharged) -> SmsRefunded:
    return SmsRefunded(
        refund_id=uuid7(),
        charge_id=of.charge_id,
        message_id=of.message_id,
        org_id=of.org_id,
        amount=of.amount,
        reason="21211",
        refunded_at=datetime.now(UTC),
    )


async def test_charges_and_refunds_apply_once_whatever_kafka_redelivers(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url)
    engine = create_engine(url)
    sessions = session_maker(engine)
    org, other = uuid.uuid4(), uuid.uuid4()
    try:
        async with sessions() as session, session.begin():
            await ledger.add_credits(
                session,
                org,
                settings,
                kind="top_up",
                amount=1000,
                actor="admin:t",
                reason="opening",
                idempotency_key="k1",
            )
        charges = [charge(org, 1 + i % 4, 7) for i in range(20)] + [charge(other, 2, 5)]
        failed = charges[3]
        free = charge(org, 1, 0)
        async with sessions() as session, session.begin():
            first = await apply_sms_events(session, [*charges, free], settings)
        assert (first.charged, first.refunded, first.redelivered) == (21, 0, 0)
        expected = sum(c.amount for c in charges if c.org_id == org)
        # The failed message's refund, then Kafka redelivers everything, shuffled.
        again: list[SmsCharged | SmsRefunded] = [*charges, refund(failed)]
        replay = [*again, *random.sample(charges, 5)]
        random.shuffle(replay)
        async with sessions() as session, session.begin():
            second = await apply_sms_events(session, replay, settings)
        assert (second.charged, second.refunded) == (0, 1)
        async with sessions() as session:
            balance = await session.scalar(
                text("SELECT balance FROM accounts WHERE org_id = :o"), {"o": org}
            )
            assert balance == 1000 - expected + failed.amount == await ledger_total(session, org)
            assert await ledger_total(session, other) == -10
            kinds = (
                await session.execute(
                    text(
                        "SELECT kind, count(*) FROM ledger_entries "
                        "WHERE org_id = :o AND actor = 'notifier:sms' GROUP BY kind"
                    ),
                    {"o": org},
                )
            ).all()
            assert dict(kinds) == {"debit": 20, "refund": 1}
        # The refund published the balance at once, with the net of the SMS charges and
        # refunds it includes: what the notifier compares with its own total.
        states = [
            d
            for d in await outbox_data(engine, topics.BILLING_BALANCES.name)
            if d["org_id"] == str(org)
        ]
        assert states[-1]["balance"] == 1000 - expected + failed.amount
        assert states[-1]["sms_charged"] == expected - failed.amount
    finally:
        await engine.dispose()
