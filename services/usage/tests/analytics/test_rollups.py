"""The analytics answers read from the rollups (org rollups when no key is involved, the
keyed minute/hour tables otherwise) equal a recomputation from the request log itself,
for random traffic over three days and random ranges whose edges cut hours, with every
filter (key, API, route, mode)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from tollgate.contracts.events.gateway import RejectionReason, RequestMode
from tollgate.kit.db import SessionMaker, create_engine, session_maker
from tollgate.usage import histogram
from tollgate.usage.analytics.repository import UsageFilter
from tollgate.usage.analytics.schemas import Granularity, TopDimension
from tollgate.usage.analytics.service import errors, summary, timeseries, top
from tollgate.usage.ingest.service import Delivery, RequestEvent, record_requests
from tollgate.usage.models import NIL, RequestLogEntry
from tollgate.usage.retention.service import PartitionDays, ensure_partitions
from tollgate.usage.scope import TimeRange

from ..factories import completed, long_tail_latency, migrated, rejected


@dataclass(frozen=True)
class Logged:
    """A request log row, as the recomputation needs it."""

    time: datetime
    org_id: uuid.UUID
    key_id: uuid.UUID
    api_id: uuid.UUID
    route_id: uuid.UUID
    status: int
    reason: str
    latency_ms: int
    bytes_in: int
    bytes_out: int
    credits: int
    mode: str


def _traffic(rng: random.Random, start: datetime) -> list[RequestEvent]:
    orgs = [uuid.uuid4(), uuid.uuid4()]
    apis = [uuid.uuid4(), uuid.uuid4()]
    routes: list[uuid.UUID | None] = [None, uuid.uuid4(), uuid.uuid4()]
    keys = [(rng.choice(orgs), uuid.uuid4(), rng.random() < 0.3) for _ in range(8)]
    events: list[RequestEvent] = []
    for _ in range(1500):
        org, key, test = rng.choice(keys)
        at = start + timedelta(seconds=rng.uniform(0, 3 * 86400))
        mode = {"mode": RequestMode.TEST if test else RequestMode.LIVE}
        if rng.random() < 0.1:
            event: RequestEvent = rejected(
                org_id=org,
                key_id=key,
                api_id=rng.choice(apis),
                reason=rng.choice(list(RejectionReason)),
                time=at,
            ).model_copy(update=mode)
        else:
            event = completed(
                org_id=org,
                key_id=key,
                api_id=rng.choice(apis),
                route_id=rng.choice(routes),
                status=rng.choice((200, 200, 200, 201, 404, 422, 500, 503)),
                latency_ms=long_tail_latency(rng),
                time=at,
                cost=rng.randint(0, 5),
                method=rng.choice(("GET", "POST")),
            ).model_copy(update=mode)
        events.append(event)
    return events


def _expected(rows: Sequence[Logged]) -> dict[str, Any]:
    done = [r for r in rows if not r.reason]
    hist: histogram.Histogram = {}
    for r in done:
        histogram.record(hist, r.latency_ms)
    qs = histogram.percentiles(hist)
    errored = [r for r in done if r.status >= 400]
    return {
        "requests": len(rows),
        "rejected": len(rows) - len(done),
        "errors": len(errored),
        "client_errors": sum(1 for r in errored if r.status < 500),
        "server_errors": sum(1 for r in errored if r.status >= 500),
        "bytes_in": sum(r.bytes_in for r in rows),
        "bytes_out": sum(r.bytes_out for r in rows),
        "credits": sum(r.credits for r in rows),
        "mean": round(sum(r.latency_ms for r in done) / len(done), 3) if done else None,
        "p50": qs[0.5],
        "p95": qs[0.95],
        "p99": qs[0.99],
    }


def _answered(t: Any) -> dict[str, Any]:
    return {
        "requests": t.requests,
        "rejected": t.rejected,
        "errors": t.errors,
        "client_errors": t.client_errors,
        "server_errors": t.server_errors,
        "bytes_in": t.bytes_in,
        "bytes_out": t.bytes_out,
        "credits": t.credits,
        "mean": t.latency.mean_ms,
        "p50": t.latency.p50_ms,
        "p95": t.latency.p95_ms,
        "p99": t.latency.p99_ms,
    }


def _matches(row: Logged, where: UsageFilter) -> bool:
    return all(
        getattr(where, name) is None or getattr(row, name) == getattr(where, name)
        for name in ("org_id", "key_id", "api_id", "route_id", "mode")
    )


async def _contents(sessions: SessionMaker, table: str) -> list[tuple[Any, ...]]:
    async with sessions() as session:
        rows = await session.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4, 5, 6, 7, 8"))
        return [tuple(row) for row in rows]


async def test_rollup_answers_equal_the_log(database_factory: Callable[[str], str]) -> None:
    rng = random.Random(11)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    events = _traffic(rng, start)
    engine = create_engine(await migrated(database_factory("usage")), pool_size=2)
    sessions = session_maker(engine)
    try:
        async with sessions() as session, session.begin():
            await ensure_partitions(session, {e.time.date() for e in events}, PartitionDays())
        for first in range(0, len(events), 400):  # several batches: upserts merge
            batch = [Delivery(0, n, events[n]) for n in range(first, first + 400) if n < 1500]
            async with sessions() as session, session.begin():
                await record_requests(session, group_id="usage", topic="t", deliveries=batch)
        async with sessions() as session:
            log = [
                Logged(
                    row.time,
                    row.org_id or NIL,
                    row.key_id or NIL,
                    row.api_id or NIL,
                    row.route_id or NIL,
                    row.status,
                    row.reason or "",
                    row.latency_ms,
                    row.request_bytes or 0 if row.outcome == "completed" else 0,
                    row.response_bytes or 0 if row.outcome == "completed" else 0,
                    row.cost if row.outcome == "completed" else 0,
                    row.mode,
                )
                for row in await session.scalars(select(RequestLogEntry))
            ]
        assert len(log) == 1500
        # What ingest wrote to the rollups is what rebuilding them from the keyed tables
        # gives (the function bulk loads use).
        rollups = ("usage_org_minute", "usage_org_hour", "usage_key_hour", "usage_key_day")
        written = {t: await _contents(sessions, t) for t in rollups}
        async with sessions() as session, session.begin():
            await session.execute(text("SELECT usage_org_rollup_rebuild()"))
        assert {t: await _contents(sessions, t) for t in rollups} == written
        assert all(written.values())
        some = log[rng.randrange(len(log))]
        filters = [
            UsageFilter(org_id=some.org_id, mode="live"),
            UsageFilter(org_id=some.org_id, mode="test"),
            UsageFilter(org_id=some.org_id),
            UsageFilter(org_id=None),
            UsageFilter(org_id=some.org_id, api_id=some.api_id, mode=some.mode),
            UsageFilter(org_id=some.org_id, route_id=some.route_id),
            UsageFilter(org_id=some.org_id, key_id=some.key_id),
        ]
        spans = [  # a whole UTC day with both edges cutting an hour; then random ones
            TimeRange(
                start + timedelta(minutes=1440 - 37), start + timedelta(minutes=2 * 1440 + 83)
            ),
            # edges that are most of a day (top keys reads those as the day's row minus the
            # rest of the day), across a midnight and inside one day
            TimeRange(start + timedelta(minutes=137), start + timedelta(minutes=1440 + 1303)),
            TimeRange(start + timedelta(minutes=1440 + 73), start + timedelta(minutes=1440 + 1247)),
        ]
        for _ in range(6):
            first_minute = rng.randrange(0, 3 * 1440 - 10)
            length = rng.choice((rng.randrange(1, 59), rng.randrange(61, 3 * 1440)))
            spans.append(
                TimeRange(
                    start + timedelta(minutes=first_minute),
                    start + timedelta(minutes=min(first_minute + length, 3 * 1440 + 30)),
                )
            )
        for span in spans:
            for where in filters:
                inside = [r for r in log if span.start <= r.time < span.end and _matches(r, where)]
                async with sessions() as session:
                    answer = await summary(session, where, span)
                    assert _answered(answer) == _expected(inside), (where, span)
                    broken = await errors(session, where, span)
                    by_status: dict[tuple[int, str | None], int] = {}
                    for r in inside:
                        if r.status >= 400 or r.reason:
                            slot = (r.status, r.reason or None)
                            by_status[slot] = by_status.get(slot, 0) + 1
                    assert {
                        (i.status, i.rejection_reason): i.requests for i in broken.items
                    } == by_status
                    dimensions: list[tuple[TopDimension, str]] = [
                        ("api", "api_id"),
                        ("route", "route_id"),
                        ("key", "key_id"),
                        ("status", "status"),
                    ]
                    for by, field in dimensions:
                        ranked = await top(session, where, span, by, "requests", 50)
                        groups: dict[Any, list[Logged]] = {}
                        for r in inside:
                            groups.setdefault(getattr(r, field), []).append(r)
                        got = {
                            item.value: (item.requests, item.errors, item.latency.p95_ms)
                            for item in ranked.items
                        }
                        want = {
                            (None if v == NIL else str(v)): (
                                _expected(g)["requests"],
                                _expected(g)["errors"],
                                _expected(g)["p95"],
                            )
                            for v, g in groups.items()
                        }
                        assert got == want, (where, span, by)
                    for order_by in ("errors", "rejected", "credits"):
                        best = await top(session, where, span, "key", order_by, 3)
                        per_key: dict[uuid.UUID, int] = {}
                        for r in inside:
                            measure = {
                                "errors": int(not r.reason and r.status >= 400),
                                "rejected": int(bool(r.reason)),
                                "credits": r.credits,
                            }[order_by]
                            per_key[r.key_id] = per_key.get(r.key_id, 0) + measure
                        ranking = sorted(per_key, key=lambda k: (-per_key[k], k))[:3]
                        assert [i.value for i in best.items] == [str(k) for k in ranking]
                    granularity: Granularity = (
                        "minute" if span.end - span.start < timedelta(hours=2) else "hour"
                    )
                    series = await timeseries(session, where, span, granularity)
                    step = timedelta(minutes=1 if granularity == "minute" else 60)
                    for point in series.points:
                        bucket = [r for r in log if point.time <= r.time < point.time + step]
                        want_point = _expected([r for r in bucket if _matches(r, where)])
                        assert (point.requests, point.errors, point.credits, point.p95_ms) == (
                            want_point["requests"],
                            want_point["errors"],
                            want_point["credits"],
                            want_point["p95"],
                        ), (where, point.time)
    finally:
        await engine.dispose()


async def test_top_keys_leaves_out_keys_that_sent_only_in_the_rest_of_the_day(
    database_factory: Callable[[str], str],
) -> None:
    # A range covering most of a day is read as the day minus the rest of it: a key that
    # sent only in that rest sums to nothing and must not be listed.
    day = datetime(2026, 3, 2, tzinfo=UTC)
    org, api, inside, outside = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events: list[RequestEvent] = [
        completed(org_id=org, key_id=outside, api_id=api, time=day + timedelta(minutes=20)),
        completed(org_id=org, key_id=outside, api_id=api, time=day + timedelta(hours=23)),
        completed(org_id=org, key_id=inside, api_id=api, time=day + timedelta(hours=9)),
    ]
    engine = create_engine(await migrated(database_factory("usage")), pool_size=2)
    sessions = session_maker(engine)
    try:
        async with sessions() as session, session.begin():
            await ensure_partitions(session, {day.date()}, PartitionDays())
            deliveries = [Delivery(0, n, event) for n, event in enumerate(events)]
            await record_requests(session, group_id="usage", topic="t", deliveries=deliveries)
        span = TimeRange(day + timedelta(minutes=45), day + timedelta(hours=22, minutes=30))
        async with sessions() as session:
            ranked = await top(session, UsageFilter(org_id=org), span, "key", "errors", 10)
        assert [(i.value, i.requests) for i in ranked.items] == [(str(inside), 1)]
    finally:
        await engine.dispose()
