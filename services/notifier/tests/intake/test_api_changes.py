"""Accounts' `ApiChanged` through the intake subscriber in process (FastStream's in-memory
test broker, real PostgreSQL): an API change is about the platform, not one org, so every
org whose endpoints take the type gets its own signed webhook with the contract payload;
an org subscribed to other types gets nothing, and a redelivered event adds nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from faststream.kafka import TestKafkaBroker
from sqlalchemy import func, select

from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.accounts import ApiChange, ApiChanged, ApiChangeKind, BreakingRule
from tollgate.kit.kafka import make_broker, topic_name
from tollgate.notifier.intake.consumers import intake_consumers
from tollgate.notifier.models import WebhookDelivery

from ..factories import (
    FakeClock,
    database,
    delivery_worker,
    make_endpoint,
    migrated,
    receiver,
    settings_for,
)

API_CHANGED = "tollgate.accounts.api.changed.v1"


def api_changed() -> ApiChanged:
    return ApiChanged(
        api_id=uuid.uuid4(),
        slug="petstore",
        name="Petstore",
        api_version="2.0.0",
        version=4,
        changes=[
            ApiChange(
                kind=ApiChangeKind.REMOVED,
                method="POST",
                path="/pets",
                rule=BreakingRule.REMOVED_OPERATION,
            )
        ],
        breaking=1,
        changed_at=datetime.now(UTC),
    )


async def test_an_api_change_reaches_every_org_that_subscribed_once(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    settings = settings_for(url, kafka_topic_prefix="inproc.")
    topic = topic_name(topics.ACCOUNTS_EVENTS, settings)
    clock = FakeClock()
    subscribed, catch_all, elsewhere = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    event = new_event(api_changed(), source="tollgate/accounts/test")
    async with database(url) as sessions, receiver() as rec:
        await make_endpoint(sessions, subscribed, rec.url, event_types=[API_CHANGED])
        await make_endpoint(sessions, catch_all, rec.url, event_types=[])
        await make_endpoint(
            sessions, elsewhere, rec.url, event_types=["tollgate.billing.credits.low.v1"]
        )
        broker = make_broker(
            settings,
            client="notifier",
            sessions=sessions,
            routers=[intake_consumers(settings, clock)],
        )
        async with TestKafkaBroker(broker) as test_broker:
            await test_broker.publish_batch(encode(event), topic=topic)
            await test_broker.publish_batch(encode(event), topic=topic)  # redelivered
        async with sessions() as session:
            rows = await session.execute(
                select(WebhookDelivery.org_id, func.count()).group_by(WebhookDelivery.org_id)
            )
            assert dict(rows.all()) == {subscribed: 1, catch_all: 1}
        worker, sender = delivery_worker(sessions, clock)
        try:
            assert await worker.run_once() == 2
        finally:
            await sender.close()

    assert len({c.headers["webhook-id"] for c in rec.captured}) == 2
    for captured in rec.captured:
        body = json.loads(captured.body)
        assert body["type"] == API_CHANGED
        assert body["data"] == event.data.model_dump(mode="json")
