"""Test mode in usage, on a real Postgres: `tg_test_` traffic is counted apart (a
`mode` on the log and the aggregates), costs nothing, and shows only under `mode=test`;
contract drift of sandbox answers is kept on the log and counted."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from tollgate.contracts.events.gateway import RequestMode, ServedBy
from tollgate.usage.analytics.repository import UsageFilter
from tollgate.usage.analytics.service import summary
from tollgate.usage.ingest.service import Delivery
from tollgate.usage.models import UsageHour
from tollgate.usage.requestlog.repository import LogFilter
from tollgate.usage.requestlog.schemas import RequestLogItem
from tollgate.usage.requestlog.service import list_requests
from tollgate.usage.scope import TimeRange

from ..factories import completed, rejected
from .test_service import ingest, usage_db


async def test_test_traffic_is_counted_apart_and_free(
    database_factory: Callable[[str], str],
) -> None:
    org, live_key, test_key, api = (uuid.uuid4() for _ in range(4))
    now = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    live = [completed(org_id=org, key_id=live_key, api_id=api, cost=3, time=now) for _ in range(4)]
    test = [
        completed(org_id=org, key_id=test_key, api_id=api, cost=0, time=now).model_copy(
            update={"mode": RequestMode.TEST, "served_by": ServedBy.MOCK}
        )
        for _ in range(6)
    ]
    drifted = completed(org_id=org, key_id=test_key, api_id=api, cost=0, time=now).model_copy(
        update={
            "mode": RequestMode.TEST,
            "served_by": ServedBy.SANDBOX,
            "contract_drift": ['/body/id: "id" is a required property'],
        }
    )
    invalid = rejected(org_id=org, key_id=test_key, api_id=api, time=now).model_copy(
        update={"mode": RequestMode.TEST}
    )
    events = [*live, *test, drifted, invalid]
    async with usage_db(database_factory) as sessions:
        await ingest(sessions, [Delivery(0, n, e) for n, e in enumerate(events)])
        span = TimeRange(now - timedelta(hours=1), now + timedelta(minutes=10))
        async with sessions() as session, session.begin():
            live_totals = await summary(session, UsageFilter(org, mode="live"), span)
            test_totals = await summary(session, UsageFilter(org, mode="test"), span)
            both = await summary(session, UsageFilter(org), span)
            drift_count = await session.scalar(
                select(func.sum(UsageHour.drifted)).where(UsageHour.org_id == org)
            )
            test_log, _ = await list_requests(
                session,
                LogFilter(start=span.start, end=span.end, org_id=org, mode="test"),
                cursor=None,
                limit=50,
            )
            live_log, _ = await list_requests(
                session,
                LogFilter(start=span.start, end=span.end, org_id=org, mode="live"),
                cursor=None,
                limit=50,
            )
    assert (live_totals.requests, live_totals.credits) == (4, 12)
    assert (test_totals.requests, test_totals.credits) == (8, 0)
    assert test_totals.rejected == 1
    assert (test_totals.contract_drift, live_totals.contract_drift) == (1, 0)
    assert both.requests == 12
    assert drift_count == 1
    assert len(live_log) == 4
    assert {row.key_id for row in live_log} == {live_key}
    items = [RequestLogItem.of(row) for row in test_log]
    assert {item.mode for item in items} == {"test"}
    assert sorted(str(item.served_by) for item in items) == ["None", *["mock"] * 6, "sandbox"]
    assert [i.contract_drift for i in items if i.contract_drift] == [
        ['/body/id: "id" is a required property']
    ]
