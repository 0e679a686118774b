"""Usage's `ApiDeprecationAnnounced` through the intake rules (real PostgreSQL): one email
per contact of the org, in the contact's language, naming the API and its retirement date,
and one signed webhook carrying the contract payload to the org's subscribed endpoint; a
redelivered event adds nothing and another org hears nothing. The broker transport around
these rules is test_consumers.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from tollgate.contracts import topics
from tollgate.contracts.envelope import CloudEvent, new_event
from tollgate.contracts.events.usage import ApiDeprecationAnnounced
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

TYPE = "tollgate.usage.api_deprecation.announced.v1"


def deprecation_notice(org_id: uuid.UUID, sunset_at: datetime | None) -> CloudEvent[Any]:
    """A deprecation notice as usage publishes it."""
    now = datetime.now(UTC)
    return new_event(
        ApiDeprecationAnnounced(
            org_id=org_id,
            api_id=uuid.uuid4(),
            api_slug="weather",
            api_name="Weather",
            api_version="v1",
            deprecated_at=now,
            sunset_at=sunset_at,
            requests=1204,
            window_start=now - timedelta(days=30),
            window_end=now,
        ),
        source="tollgate/usage/test",
    )


def _files(directory: Path) -> list[str]:
    return sorted(p.read_text(encoding="utf-8") for p in directory.glob("*.txt"))


async def test_a_deprecation_notice_is_mailed_to_each_contact_once_and_sent_as_a_webhook(
    database_factory: Callable[[str], str], tmp_path: Path
) -> None:
    url = await migrated(database_factory("notifier"))
    clock = FakeClock()
    org, other = uuid.uuid4(), uuid.uuid4()
    dated = deprecation_notice(org, datetime(2026, 6, 30, 12, 0, tzinfo=UTC))
    undated = deprecation_notice(org, None)
    async with database(url) as sessions, receiver() as rec:
        async with sessions() as session, session.begin():
            await email.replace_contacts(
                session,
                org,
                [
                    email.Contact("dev@acme.example", "en"),
                    email.Contact("kf@acme.example", "zh-CN"),
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
                taken = await intake.take_in(session, topics.USAGE_EVENTS.name, [dated, undated])
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
    en = _one(sent, "dev@acme.example", "Retirement date: 2026-06-30 12:00 UTC")
    assert "The API Weather v1 is deprecated" in en
    assert "1204 times in the last 30 days" in en
    _one(sent, "dev@acme.example", "Retirement date: not set yet")
    zh = _one(sent, "kf@acme.example", "停用日期:2026-06-30 12:00 UTC")
    assert "API Weather v1 已弃用" in zh
    _one(sent, "kf@acme.example", "停用日期:尚未确定")

    bodies = [json.loads(c.body) for c in rec.captured]
    assert sorted(b["data"]["sunset_at"] or "" for b in bodies) == ["", "2026-06-30T12:00:00Z"]
    for body in bodies:
        assert body["type"] == TYPE
        event = dated if body["data"]["sunset_at"] else undated
        assert body["data"] == event.data.model_dump(mode="json")
    assert all(secret.encode() not in c.body for c in rec.captured)
    assert all(str(endpoint.id) not in c.body.decode() for c in rec.captured)


def _one(mails: list[str], to: str, needle: str) -> str:
    found = [m for m in mails if f"To: {to}\n" in m and needle in m]
    assert len(found) == 1, (to, needle, mails)
    return found[0]
