"""Billing's plan notices through the intake subscriber in process (FastStream's
in-memory test broker, real PostgreSQL): `PlanPaymentFailed` and `PlanSuspended` each
become one email per billing contact of the org, in the contact's language, and one
signed webhook to the org's subscribed endpoint; a redelivered event adds nothing.
The real-broker path of the intake is test_consumers.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faststream.kafka import TestKafkaBroker

from tollgate.contracts import topics
from tollgate.contracts.envelope import CloudEvent, encode
from tollgate.kit.db import SessionMaker
from tollgate.kit.kafka import make_broker, topic_name
from tollgate.notifier.intake.consumers import intake_consumers

from ..events import plan_payment_failed, plan_suspended
from ..factories import FakeClock, settings_for
from .notices import EN, ZH, counts, notices_sent

PLAN_TYPES = ["tollgate.billing.plan.payment_failed.v1", "tollgate.billing.plan.suspended.v1"]


async def test_plan_notices_become_one_email_per_contact_and_one_webhook(
    database_factory: Callable[[str], str], tmp_path: Path
) -> None:
    org = uuid.uuid4()
    failed = plan_payment_failed(org, plan_name="Pro <b>", invoice_id="in_1QxYz2")
    suspended = plan_suspended(org, plan_name="Pro <b>")

    async def take_in(sessions: SessionMaker, clock: FakeClock) -> None:
        settings = settings_for("postgresql+asyncpg://unused", kafka_topic_prefix="inproc.")
        topic = topic_name(topics.BILLING_EVENTS, settings)
        broker = make_broker(
            settings,
            client="notifier",
            sessions=sessions,
            routers=[intake_consumers(settings, clock)],
        )
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(encode(failed), encode(suspended), topic=topic)
            assert await counts(sessions) == (4, 2)  # 2 contacts x 2 events; 2 deliveries
            await test_broker.publish_batch(encode(suspended), encode(failed), topic=topic)

    sent = await notices_sent(
        database_factory("notifier"),
        tmp_path,
        org=org,
        event_types=PLAN_TYPES,
        events=2,
        take_in=take_in,
    )
    sent.leak_nothing()
    assert len(sent.mails) == 4
    en_failed = sent.one(EN, "Payment for your Tollgate plan")
    assert "in_1QxYz2" in en_failed
    assert failed.data.grace_until.strftime("%Y-%m-%d %H:%M UTC") in en_failed
    assert "402" in sent.one(EN, "plan Pro <b> is suspended")
    assert "in_1QxYz2" in sent.one(ZH, "付款失败")
    zh_suspended = sent.one(ZH, "已被暂停")
    assert "宽限期结束时账单仍未支付" in zh_suspended
    assert len(sent.htmls) == 4
    assert all("Pro &lt;b&gt;" in h and "Pro <b>" not in h for h in sent.htmls)

    assert {c.headers["webhook-id"] for c in sent.webhooks} == {
        f"msg_{uuid.UUID(e.id).hex}" for e in (failed, suspended)
    }
    bodies = {json.loads(c.body)["type"]: json.loads(c.body) for c in sent.webhooks}
    assert set(bodies) == set(PLAN_TYPES)
    _assert_payload(bodies[PLAN_TYPES[0]], failed)
    _assert_payload(bodies[PLAN_TYPES[1]], suspended)


def _assert_payload(body: dict[str, Any], event: CloudEvent[Any]) -> None:
    """The webhook carries the contract payload as published, nothing added."""
    assert body["data"] == event.data.model_dump(mode="json")
    assert body["data"]["org_id"] == str(event.data.org_id)
