"""Usage's `ApiDeprecationAnnounced` through the intake rules (real PostgreSQL): one email
per contact of the org, in the contact's language, naming the API and its retirement date,
and one signed webhook carrying the contract payload to the org's subscribed endpoint; a
redelivered event adds nothing and another org hears nothing. The broker transport around
these rules is test_consumers.py."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tollgate.contracts import topics
from tollgate.contracts.envelope import CloudEvent, new_event
from tollgate.contracts.events.usage import ApiDeprecationAnnounced, RouteDeprecationAnnounced
from tollgate.kit.db import SessionMaker
from tollgate.notifier.intake import service as intake

from ..factories import FakeClock
from .notices import EN, ZH, notices_sent

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


def taken_in_twice(
    events: list[CloudEvent[Any]],
) -> Callable[[SessionMaker, FakeClock], Awaitable[None]]:
    """The intake of `events` as usage's topic brings them, then once more: the second
    time, Kafka redelivers the batch."""

    async def take_in(sessions: SessionMaker, clock: FakeClock) -> None:
        for _ in range(2):
            async with sessions() as session, session.begin():
                taken = await intake.take_in(session, topics.USAGE_EVENTS.name, events)
                await intake.queue_notifications(session, taken.new, clock.now())

    return take_in


async def test_a_deprecation_notice_is_mailed_to_each_contact_once_and_sent_as_a_webhook(
    database_factory: Callable[[str], str], tmp_path: Path
) -> None:
    org = uuid.uuid4()
    dated = deprecation_notice(org, datetime(2026, 6, 30, 12, 0, tzinfo=UTC))
    undated = deprecation_notice(org, None)

    sent = await notices_sent(
        database_factory("notifier"),
        tmp_path,
        org=org,
        event_types=[TYPE],
        events=2,
        take_in=taken_in_twice([dated, undated]),
    )
    sent.leak_nothing()
    en = sent.one(EN, "Retirement date: 2026-06-30 12:00 UTC")
    assert "The API Weather v1 is deprecated" in en
    assert "1204 times in the last 30 days" in en
    sent.one(EN, "Retirement date: not set yet")
    zh = sent.one(ZH, "停用日期:2026-06-30 12:00 UTC")
    assert "API Weather v1 已弃用" in zh
    sent.one(ZH, "停用日期:尚未确定")

    bodies = [json.loads(c.body) for c in sent.webhooks]
    assert sorted(b["data"]["sunset_at"] or "" for b in bodies) == ["", "2026-06-30T12:00:00Z"]
    for body in bodies:
        assert body["type"] == TYPE
        event = dated if body["data"]["sunset_at"] else undated
        assert body["data"] == event.data.model_dump(mode="json")


ROUTE_TYPE = "tollgate.usage.route_deprecation.announced.v1"


def route_notice(org_id: uuid.UUID, method: str, sunset_at: datetime | None) -> CloudEvent[Any]:
    """A route's deprecation notice as usage publishes it."""
    now = datetime.now(UTC)
    return new_event(
        RouteDeprecationAnnounced(
            org_id=org_id,
            api_id=uuid.uuid4(),
            api_slug="weather",
            api_name="Weather",
            api_version="v1",
            route_id=uuid.uuid4(),
            method=method,
            path_template="/forecast/{city}",
            deprecated_at=now,
            sunset_at=sunset_at,
            requests=311,
            window_start=now - timedelta(days=30),
            window_end=now,
        ),
        source="tollgate/usage/test",
    )


async def test_a_route_deprecation_is_mailed_to_each_contact_once_and_sent_as_a_webhook(
    database_factory: Callable[[str], str], tmp_path: Path
) -> None:
    org = uuid.uuid4()
    dated = route_notice(org, "GET", datetime(2026, 6, 30, 12, 0, tzinfo=UTC))
    any_method = route_notice(org, "*", None)

    sent = await notices_sent(
        database_factory("notifier"),
        tmp_path,
        org=org,
        event_types=[ROUTE_TYPE],
        events=2,
        take_in=taken_in_twice([dated, any_method]),
    )
    sent.leak_nothing()
    en = sent.one(EN, "Retirement date: 2026-06-30 12:00 UTC")
    assert "GET /forecast/{city} of the API Weather v1 is deprecated" in en
    assert "(/weather/forecast/{city}) 311 times in the last 30 days" in en
    assert "answered 410 Gone" in en
    undated = sent.one(EN, "Retirement date: not set yet")
    assert "/forecast/{city} of the API Weather v1 is deprecated" in undated
    assert "* /forecast" not in undated
    zh = sent.one(ZH, "停用日期:2026-06-30 12:00 UTC")
    assert "API Weather v1 的 GET /forecast/{city} 已弃用" in zh
    sent.one(ZH, "停用日期:尚未确定")

    bodies = [json.loads(c.body) for c in sent.webhooks]
    assert sorted(b["data"]["method"] for b in bodies) == ["*", "GET"]
    for body in bodies:
        assert body["type"] == ROUTE_TYPE
        event = dated if body["data"]["method"] == "GET" else any_method
        assert body["data"] == event.data.model_dump(mode="json")
