"""Billing's `AutoTopUpFailed` through the intake rules (real PostgreSQL): one email per
contact of the org, in the contact's language with the reason in words, and one signed
webhook carrying the contract payload to the org's subscribed endpoint; a redelivered
event adds nothing. The broker transport around these rules is test_consumers.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tollgate.contracts import topics
from tollgate.contracts.envelope import CloudEvent, new_event
from tollgate.contracts.events.billing import AutoTopUpFailed
from tollgate.contracts.ids import uuid7
from tollgate.kit.db import SessionMaker
from tollgate.notifier.intake import service as intake

from ..factories import FakeClock
from .notices import EN, ZH, notices_sent

TYPE = "tollgate.billing.auto_top_up.failed.v1"


def auto_top_up_failed(org_id: uuid.UUID, reason: str, balance: int) -> CloudEvent[Any]:
    """An auto-top-up-failed event as billing publishes it."""
    return new_event(
        AutoTopUpFailed(
            org_id=org_id,
            charge_id=uuid7(),
            amount=450,
            currency="usd",
            reason=reason,
            balance=balance,
            occurred_at=datetime.now(UTC),
        ),
        source="tollgate/billing/test",
        subject=str(org_id),
    )


async def test_a_failed_auto_top_up_becomes_one_email_per_contact_and_one_webhook(
    database_factory: Callable[[str], str], tmp_path: Path
) -> None:
    org = uuid.uuid4()
    declined = auto_top_up_failed(org, "card_declined", 480)
    capped = auto_top_up_failed(org, "monthly_cap_reached", 120)

    async def take_in(sessions: SessionMaker, clock: FakeClock) -> None:
        for _ in range(2):  # the second time, Kafka redelivers the batch
            async with sessions() as session, session.begin():
                taken = await intake.take_in(
                    session, topics.BILLING_EVENTS.name, [declined, capped]
                )
                await intake.queue_notifications(session, taken.new, clock.now())

    sent = await notices_sent(
        database_factory("notifier"),
        tmp_path,
        org=org,
        event_types=[TYPE],
        events=2,
        take_in=take_in,
    )
    sent.leak_nothing()
    en_declined = sent.one(EN, "the card was declined")
    assert "Your Tollgate auto top-up failed" in en_declined
    assert "480 credits" in en_declined
    assert "402" in en_declined
    sent.one(EN, "this month's spending cap for auto top-up is reached")
    zh_declined = sent.one(ZH, "银行卡被拒付")
    assert "自动充值失败" in zh_declined
    assert "480 额度" in zh_declined
    sent.one(ZH, "本月自动充值的支出上限已用完")

    bodies = [json.loads(c.body) for c in sent.webhooks]
    assert sorted(b["data"]["reason"] for b in bodies) == ["card_declined", "monthly_cap_reached"]
    for body in bodies:
        assert body["type"] == TYPE
        event = declined if body["data"]["reason"] == "card_declined" else capped
        assert body["data"] == event.data.model_dump(mode="json")
