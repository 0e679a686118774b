"""Billing's `AutoTopUpFailed` through the intake rules (real PostgreSQL): one email per
contact of the org, in the contact's language with the reason in words, and one signed
webhook carrying the contract payload to the org's subscribed endpoint; a redelivered
event adds nothing. The broker transport around these rules is test_consumers.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tollgate.contracts import topics
from tollgate.contracts.envelope import CloudEvent, new_event
from tollgate.contracts.events.billing import AutoTopUpFailed
from tollgate.contracts.ids import uuid7
from tollgate.kit.sealing import Sealer
from tollgate.notifier.email import service as email
from tollgate.notifier.email.backends import FileBackend
from tollgate.notifier.email.worker import EmailWorker
from tollgate.notifier.intake import service as intake
from tollgate.notifier.models import EmailMessage, WebhookDelivery

from ..factories import (
    SEALING_KEY,
    FakeClock,
    database,
    delivery_worker,
    make_endpoint,
    migrated,
    receiver,
)

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


def _files(directory: Path) -> list[str]:
    return sorted(p.read_text(encoding="utf-8") for p in directory.glob("*.txt"))


async def test_a_failed_auto_top_up_becomes_one_email_per_contact_and_one_webhook(
    database_factory: Callable[[str], str], tmp_path: Path
) -> None:
    url = await migrated(database_factory("notifier"))
    clock = FakeClock()
    org, other = uuid.uuid4(), uuid.uuid4()
    declined = auto_top_up_failed(org, "card_declined", 480)
    capped = auto_top_up_failed(org, "monthly_cap_reached", 120)
    async with database(url) as sessions, receiver() as rec:
        async with sessions() as session, session.begin():
            await email.replace_contacts(
                session,
                org,
                [
                    email.Contact("billing@acme.example", "en"),
                    email.Contact("cw@acme.example", "zh-CN"),
                ],
                clock.now(),
            )
            await email.replace_contacts(
                session, other, [email.Contact("ops@other.example", "en")], clock.now()
            )
        endpoint, secret = await make_endpoint(
            sessions, org, rec.url, event_types=[TYPE], now=clock.now()
        )
        await make_endpoint(sessions, other, rec.url, event_types=[TYPE], now=clock.now())

        for _ in range(2):  # the second time, Kafka redelivers the batch
            async with sessions() as session, session.begin():
                taken = await intake.take_in(
                    session, topics.BILLING_EVENTS.name, [declined, capped]
                )
                await intake.queue_notifications(session, taken.new, clock.now())
        async with sessions() as session:
            mails = await session.scalar(select(func.count()).select_from(EmailMessage))
            deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))
        assert (mails, deliveries) == (4, 2)  # 2 contacts x 2 events; one endpoint x 2

        mailer = EmailWorker(
            sessions=sessions,
            backend=FileBackend(str(tmp_path)),
            sealer=Sealer(SEALING_KEY),
            clock=clock,
            sender="t@example.com",
            console_url="http://localhost:8085",
            max_attempts=3,
        )
        assert await mailer.run_once() == 4
        worker, sender = delivery_worker(sessions, clock)
        try:
            assert await worker.run_once() == 2
        finally:
            await sender.close()

    sent = await asyncio.to_thread(_files, tmp_path)
    assert not any("ops@other.example" in m for m in sent)
    en_declined = _one(sent, "billing@acme.example", "the card was declined")
    assert "Your Tollgate auto top-up failed" in en_declined
    assert "480 credits" in en_declined
    assert "402" in en_declined
    _one(sent, "billing@acme.example", "this month's spending cap for auto top-up is reached")
    zh_declined = _one(sent, "cw@acme.example", "银行卡被拒付")
    assert "自动充值失败" in zh_declined
    assert "480 额度" in zh_declined
    _one(sent, "cw@acme.example", "本月自动充值的支出上限已用完")

    bodies = [json.loads(c.body) for c in rec.captured]
    assert sorted(b["data"]["reason"] for b in bodies) == ["card_declined", "monthly_cap_reached"]
    for body in bodies:
        assert body["type"] == TYPE
        event = declined if body["data"]["reason"] == "card_declined" else capped
        assert body["data"] == event.data.model_dump(mode="json")
    assert all(secret.encode() not in c.body for c in rec.captured)
    assert all(str(endpoint.id) not in c.body.decode() for c in rec.captured)


def _one(mails: list[str], to: str, needle: str) -> str:
    found = [m for m in mails if f"To: {to}\n" in m and needle in m]
    assert len(found) == 1, (to, needle, mails)
    return found[0]
