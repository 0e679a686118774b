"""A prepaid org that was never funded: billing opens its account when the org is
created (it first sees the org in accounts' user states) and publishes, with its first
balance state, a `CreditsExhausted` (balance 0, prepaid) on its events topic. Through
the intake rules (real PostgreSQL) that notice is delivered: one email per contact of
the org, in the contact's language, saying requests get 402 until credits are added,
and one signed webhook to the org's subscribed endpoint; a redelivery adds nothing.
The broker transport around these rules is test_consumers.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tollgate.contracts import topics
from tollgate.contracts.envelope import CloudEvent, new_event
from tollgate.contracts.events.billing import BalanceMode, CreditsExhausted
from tollgate.kit.db import SessionMaker
from tollgate.notifier.intake import service as intake

from ..factories import FakeClock
from .notices import EN, ZH, notices_sent

TYPE = "tollgate.billing.credits.exhausted.v1"


def opened_exhausted(org_id: uuid.UUID) -> CloudEvent[Any]:
    """The notice billing's `open_accounts` emits for a new prepaid org with nothing
    to spend (its outbox, keyed by the org)."""
    exhausted = CreditsExhausted(
        org_id=org_id, balance=0, mode=BalanceMode.PREPAID, occurred_at=datetime.now(UTC)
    )
    return new_event(exhausted, source="tollgate/billing/test", subject=exhausted.kafka_key())


async def test_a_never_funded_org_hears_it_is_exhausted_by_email_and_webhook(
    database_factory: Callable[[str], str], tmp_path: Path
) -> None:
    org = uuid.uuid4()
    opened = opened_exhausted(org)

    async def take_in(sessions: SessionMaker, clock: FakeClock) -> None:
        for _ in range(2):  # the second time, Kafka redelivers the batch
            async with sessions() as session, session.begin():
                taken = await intake.take_in(session, topics.BILLING_EVENTS.name, [opened])
                await intake.queue_notifications(session, taken.new, clock.now())

    sent = await notices_sent(
        database_factory("notifier"),
        tmp_path,
        org=org,
        event_types=[TYPE],
        events=1,
        take_in=take_in,
    )
    sent.leak_nothing()
    en = sent.one(EN, "Your Tollgate credits are exhausted")
    assert "balance is 0 credits" in en
    assert "rejected with 402 until credits are added" in en
    zh = sent.one(ZH, "您的 Tollgate 额度已用完")
    assert "余额为 0 额度" in zh
    [webhook] = sent.webhooks
    body = json.loads(webhook.body)
    assert body["type"] == TYPE
    assert body["data"]["org_id"] == str(org)
    assert (body["data"]["balance"], body["data"]["mode"]) == (0, "prepaid")
