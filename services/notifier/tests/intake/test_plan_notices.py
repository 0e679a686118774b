"""Billing's plan notices through the intake subscriber in process (FastStream's
in-memory test broker, real PostgreSQL): `PlanPaymentFailed` and `PlanSuspended` each
become one email per billing contact of the org, in the contact's language, and one
signed webhook to the org's subscribed endpoint; a redelivered event adds nothing.
The real-broker path of the intake is test_consumers.py."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faststream.kafka import TestKafkaBroker
from sqlalchemy import func, select

from tollgate.contracts import topics
from tollgate.contracts.envelope import CloudEvent, encode
from tollgate.kit.kafka import make_broker, topic_name
from tollgate.kit.sealing import Sealer
from tollgate.notifier.email import service as email
from tollgate.notifier.email.backends import FileBackend
from tollgate.notifier.email.worker import EmailWorker
from tollgate.notifier.intake.consumers import intake_consumers
from tollgate.notifier.models import EmailMessage, WebhookDelivery

from ..events import plan_payment_failed, plan_suspended
from ..factories import (
    SEALING_KEY,
    FakeClock,
    database,
    delivery_worker,
    make_endpoint,
    migrated,
    receiver,
    settings_for,
)

PLAN_TYPES = ["tollgate.billing.plan.payment_failed.v1", "tollgate.billing.plan.suspended.v1"]


def _files(directory: Path, suffix: str) -> list[str]:
    return sorted(p.read_text(encoding="utf-8") for p in directory.glob(f"*{suffix}"))


async def _counts(sessions: Any) -> tuple[int, int]:
    async with sessions() as session:
        mails = await session.scalar(select(func.count()).select_from(EmailMessage))
        deliveries = await session.scalar(select(func.count()).select_from(WebhookDelivery))
    return int(mails or 0), int(deliveries or 0)


async def test_plan_notices_become_one_email_per_contact_and_one_webhook(
    database_factory: Callable[[str], str], tmp_path: Path
) -> None:
    url = await migrated(database_factory("notifier"))
    settings = settings_for(url, kafka_topic_prefix="inproc.")
    topic = topic_name(topics.BILLING_EVENTS, settings)
    clock = FakeClock()
    org, other = uuid.uuid4(), uuid.uuid4()
    failed = plan_payment_failed(org, plan_name="Pro <b>", invoice_id="in_1QxYz2")
    suspended = plan_suspended(org, plan_name="Pro <b>")
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
            sessions, org, rec.url, event_types=PLAN_TYPES, now=clock.now()
        )
        await make_endpoint(sessions, other, rec.url, event_types=PLAN_TYPES, now=clock.now())

        broker = make_broker(
            settings,
            client="notifier",
            sessions=sessions,
            routers=[intake_consumers(settings, clock)],
        )
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(encode(failed), encode(suspended), topic=topic)
            assert await _counts(sessions) == (4, 2)  # 2 contacts x 2 events; 2 deliveries
            await test_broker.publish_batch(encode(suspended), encode(failed), topic=topic)
            assert await _counts(sessions) == (4, 2)  # redelivered: nothing more

        mailer = EmailWorker(
            sessions=sessions,
            backend=FileBackend(str(tmp_path)),
            sealer=Sealer(SEALING_KEY),
            clock=clock,
            sender="t@example.com",
            console_url="http://localhost:8081",
            max_attempts=3,
        )
        assert await mailer.run_once() == 4
        worker, sender = delivery_worker(sessions, clock)
        try:
            assert await worker.run_once() == 2
        finally:
            await sender.close()

    mails = await asyncio.to_thread(_files, tmp_path, ".txt")
    assert len(mails) == 4
    assert not any("ops@other.example" in m for m in mails)
    en_failed = _one(mails, "billing@acme.example", "Payment for your Tollgate plan")
    assert "in_1QxYz2" in en_failed
    assert failed.data.grace_until.strftime("%Y-%m-%d %H:%M UTC") in en_failed
    assert "402" in _one(mails, "billing@acme.example", "plan Pro <b> is suspended")
    assert "in_1QxYz2" in _one(mails, "cw@acme.example", "付款失败")
    zh_suspended = _one(mails, "cw@acme.example", "已被暂停")
    assert "宽限期结束时账单仍未支付" in zh_suspended
    htmls = await asyncio.to_thread(_files, tmp_path, ".html")
    assert len(htmls) == 4
    assert all("Pro &lt;b&gt;" in h and "Pro <b>" not in h for h in htmls)

    assert len(rec.captured) == 2
    assert {c.headers["webhook-id"] for c in rec.captured} == {
        f"msg_{uuid.UUID(e.id).hex}" for e in (failed, suspended)
    }
    bodies = {json.loads(c.body)["type"]: json.loads(c.body) for c in rec.captured}
    assert set(bodies) == set(PLAN_TYPES)
    _assert_payload(bodies[PLAN_TYPES[0]], failed)
    _assert_payload(bodies[PLAN_TYPES[1]], suspended)
    assert all(secret.encode() not in c.body for c in rec.captured)
    assert all(str(endpoint.id) not in c.body.decode() for c in rec.captured)


def _one(mails: list[str], to: str, needle: str) -> str:
    found = [m for m in mails if f"To: {to}\n" in m and needle in m]
    assert len(found) == 1, (to, needle, mails)
    return found[0]


def _assert_payload(body: dict[str, Any], event: CloudEvent[Any]) -> None:
    """The webhook carries the contract payload as published, nothing added."""
    assert body["data"] == event.data.model_dump(mode="json")
    assert body["data"]["org_id"] == str(event.data.org_id)
