"""Ingestion against a real Postgres: exactly once through redelivery, aggregates equal
the log, rejected traffic kept apart, quota thresholds announced once."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.contracts.decoding import decode
from tollgate.contracts.events.accounts import KeyUpserted, Limits
from tollgate.contracts.events.gateway import RequestMode
from tollgate.contracts.events.usage import UsageThresholdCrossed
from tollgate.kit.db import BIGINT_MAX, SessionMaker, create_engine, session_maker
from tollgate.usage import histogram
from tollgate.usage.analytics.repository import UsageFilter
from tollgate.usage.analytics.service import summary, timeseries, top
from tollgate.usage.ingest.service import (
    Delivery,
    IngestResult,
    RequestEvent,
    aggregate,
    record_requests,
)
from tollgate.usage.models import RequestLogEntry, outbox
from tollgate.usage.quotas.repository import key_limits
from tollgate.usage.quotas.service import apply_key_state
from tollgate.usage.retention.service import (
    PartitionDays,
    RetentionPolicy,
    enforce_retention,
    ensure_partitions,
    oldest_kept_day,
)
from tollgate.usage.scope import TimeRange

from ..factories import completed, migrated, rejected

TOPIC = "tollgate.gateway.requests.v1"


@contextlib.asynccontextmanager
async def usage_db(database_factory: Callable[[str], str]) -> AsyncIterator[SessionMaker]:
    """Sessions on a fresh, migrated usage database."""
    engine = create_engine(await migrated(database_factory("usage")), pool_size=2)
    try:
        yield session_maker(engine)
    finally:
        await engine.dispose()


async def ingest(
    sessions: SessionMaker,
    deliveries: Sequence[Delivery],
    log_ends: dict[int, int] | None = None,
    oldest_logged_day: date | None = None,
) -> IngestResult:
    async with sessions() as session, session.begin():
        await ensure_partitions(
            session,
            {d.event.time.date() for d in deliveries if d.event is not None},
            PartitionDays(),
        )
    async with sessions() as session, session.begin():
        return await record_requests(
            session,
            group_id="usage",
            topic=TOPIC,
            deliveries=deliveries,
            log_ends=log_ends,
            oldest_logged_day=oldest_logged_day,
        )


def as_deliveries(
    events: Sequence[RequestEvent], partition: int = 0, first: int = 0
) -> list[Delivery]:
    return [Delivery(partition, first + n, e) for n, e in enumerate(events)]


async def scalar(session: AsyncSession, sql: str) -> int:
    return int((await session.scalar(text(sql))) or 0)


async def test_a_redelivered_batch_counts_once(database_factory: Callable[[str], str]) -> None:
    async with usage_db(database_factory) as sessions:
        org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        batch = as_deliveries(
            [completed(org_id=org, key_id=key, api_id=api, cost=3) for _ in range(10)]
        )
        first = await ingest(sessions, batch)
        again = await ingest(sessions, batch)  # Kafka redelivers after a crash before its commit
        assert (first.ingested, first.redelivered_skipped) == (10, 0)
        assert (again.ingested, again.redelivered_skipped) == (0, 10)
        async with sessions() as session:
            assert await scalar(session, "SELECT sum(requests) FROM usage_minute") == 10
            assert await scalar(session, "SELECT sum(credits) FROM usage_hour") == 30
            assert await scalar(session, "SELECT count(*) FROM request_log") == 10


async def test_a_redelivery_whose_log_day_retention_dropped_counts_once(
    database_factory: Callable[[str], str],
) -> None:
    # Before: a record below the stored position whose log row retention had dropped
    # was taken for a new log: counted again in the hourly and daily totals (kept 400
    # days) and in quotas, and the partition's position went back to its start.
    async with usage_db(database_factory) as sessions:
        now = datetime.now(UTC)
        org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        backlog = [  # a backlog worked off late: made 9 days ago, then now
            *(
                completed(org_id=org, key_id=key, api_id=api, time=now - timedelta(days=9))
                for _ in range(5)
            ),
            *(completed(org_id=org, key_id=key, api_id=api, time=now) for _ in range(5)),
        ]
        deliveries = as_deliveries(backlog)
        kept = oldest_kept_day(now, 7)
        first = await ingest(sessions, deliveries, oldest_logged_day=kept)
        async with sessions() as session, session.begin():
            await enforce_retention(session, RetentionPolicy(7, 35, 400), now, PartitionDays())
        again = await ingest(sessions, deliveries[3:], oldest_logged_day=kept)  # redelivered
        assert (first.ingested, again.ingested, again.redelivered_skipped) == (10, 0, 7)
        assert again.positions_reset == ()
        async with sessions() as session:
            assert await scalar(session, "SELECT sum(requests) FROM usage_hour") == 10
            assert await scalar(session, "SELECT sum(requests) FROM usage_key_day") == 10


async def test_an_event_sent_twice_by_the_gateway_counts_once(
    database_factory: Callable[[str], str],
) -> None:
    async with usage_db(database_factory) as sessions:
        event = completed(org_id=uuid.uuid4(), key_id=uuid.uuid4(), api_id=uuid.uuid4())
        # Same request id at two offsets (a producer retry), one of them in the same batch.
        result = await ingest(sessions, [Delivery(0, 0, event), Delivery(0, 1, event)])
        later = await ingest(sessions, [Delivery(0, 2, event)])
        assert (result.ingested, result.duplicates_skipped) == (1, 1)
        assert (later.ingested, later.duplicates_skipped) == (0, 1)
        async with sessions() as session:
            assert await scalar(session, "SELECT sum(requests) FROM usage_minute") == 1


async def test_rejections_are_counted_apart_with_their_reason(
    database_factory: Callable[[str], str],
) -> None:
    async with usage_db(database_factory) as sessions:
        org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        events: list[RequestEvent] = [
            completed(org_id=org, key_id=key, api_id=api, status=200),
            completed(org_id=org, key_id=key, api_id=api, status=503),
            rejected(org_id=org, key_id=key, api_id=api),
            rejected(org_id=None, key_id=None, api_id=None, status=401),
        ]
        await ingest(sessions, as_deliveries(events))
        async with sessions() as session:
            rows = (
                await session.execute(
                    text("SELECT status, reason, requests FROM usage_minute ORDER BY status")
                )
            ).all()
            logged = await session.scalar(
                select(func.count()).where(RequestLogEntry.reason == "rate_limited")
            )
        assert [(r.status, r.reason, r.requests) for r in rows] == [
            (200, "", 1),
            (401, "rate_limited", 1),
            (429, "rate_limited", 1),
            (503, "", 1),
        ]
        assert logged == 2


async def test_aggregates_equal_a_recomputation_from_the_log(
    database_factory: Callable[[str], str],
) -> None:
    async with usage_db(database_factory) as sessions:
        org, api = uuid.uuid4(), uuid.uuid4()
        keys = [uuid.uuid4() for _ in range(3)]
        base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
        events: list[RequestEvent] = [
            completed(
                org_id=org,
                key_id=keys[n % 3],
                api_id=api,
                status=(200, 404, 500)[n % 3],
                latency_ms=n % 997,
                time=base + timedelta(seconds=17 * n),
            )
            for n in range(600)
        ]
        for offset in range(0, 600, 100):
            await ingest(sessions, as_deliveries(events[offset : offset + 100], first=offset))
        async with sessions() as session:
            mismatches = await scalar(session, RECOMPUTE_MISMATCHES)
        assert mismatches == 0


NIL_SQL = "'00000000-0000-0000-0000-000000000000'::uuid"
RECOMPUTE_MISMATCHES = f"""
WITH logged AS (
    SELECT date_trunc('hour', time) AS bucket,
           coalesce(org_id, {NIL_SQL}) AS org_id,
           coalesce(key_id, {NIL_SQL}) AS key_id,
           coalesce(api_id, {NIL_SQL}) AS api_id,
           coalesce(route_id, {NIL_SQL}) AS route_id,
           method, status, coalesce(reason, '') AS reason, count(*) AS requests,
           sum(coalesce(request_bytes, 0)) AS bytes_in,
           sum(coalesce(response_bytes, 0)) AS bytes_out,
           sum(cost) AS credits, sum(latency_ms) AS latency_ms_sum
    FROM request_log GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
)
SELECT count(*) FROM logged FULL JOIN usage_hour AS h USING
    (bucket, org_id, key_id, api_id, route_id, method, status, reason)
WHERE logged.requests IS DISTINCT FROM h.requests
   OR logged.bytes_in IS DISTINCT FROM h.bytes_in
   OR logged.bytes_out IS DISTINCT FROM h.bytes_out
   OR logged.credits IS DISTINCT FROM h.credits
   OR logged.latency_ms_sum IS DISTINCT FROM h.latency_ms_sum
"""


def key_state(
    key_id: uuid.UUID,
    org_id: uuid.UUID,
    per_day: int | None,
    version: int,
    per_month: int | None = None,
) -> KeyUpserted:
    return KeyUpserted(
        key_id=key_id,
        org_id=org_id,
        key_hash="0" * 64,
        prefix="tg_live_AbCd",
        last4="wxyz",
        name="ci",
        environment="live",
        enabled=True,
        limits=Limits(per_day=per_day, per_month=per_month),
        version=version,
        updated_at=datetime.now(UTC),
    )


async def announced(sessions: SessionMaker) -> list[UsageThresholdCrossed]:
    async with sessions() as session:
        values = (await session.scalars(select(outbox.c.value).order_by(outbox.c.id))).all()
    events = [decode(v).data for v in values]
    return [e for e in events if isinstance(e, UsageThresholdCrossed)]


async def test_quota_thresholds_are_announced_once_each(
    database_factory: Callable[[str], str],
) -> None:
    async with usage_db(database_factory) as sessions:
        org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with sessions() as session, session.begin():
            assert await apply_key_state(session, key_state(key, org, per_day=10, version=2))
            assert not await apply_key_state(session, key_state(key, org, per_day=99, version=1))
        events = [completed(org_id=org, key_id=key, api_id=api) for _ in range(12)]
        # Rejected traffic does not count against the quota.
        events_with_noise: list[RequestEvent] = [
            *[rejected(org_id=org, key_id=key, api_id=api) for _ in range(20)],
            *events,
        ]
        deliveries = as_deliveries(events_with_noise)
        await ingest(sessions, deliveries[:27])  # 7 admitted: below 80 %
        assert await announced(sessions) == []
        await ingest(sessions, deliveries[27:29])  # 9 admitted: 80 % crossed
        await ingest(sessions, deliveries[27:29])  # redelivered: nothing new
        await ingest(sessions, deliveries[29:])  # 12 admitted: 100 % crossed
        crossed = await announced(sessions)
        assert [(e.period, e.threshold_percent, e.limit) for e in crossed] == [
            ("day", 80, 10),
            ("day", 100, 10),
        ]
        assert crossed[0].used == 9
        assert crossed[1].used == 12
        assert {e.key_id for e in crossed} == {key}


async def test_a_monthly_quota_is_announced_against_the_month(
    database_factory: Callable[[str], str],
) -> None:
    async with usage_db(database_factory) as sessions:
        org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with sessions() as session, session.begin():
            await apply_key_state(session, key_state(key, org, None, 1, per_month=5))
        deliveries = as_deliveries(
            [completed(org_id=org, key_id=key, api_id=api) for _ in range(6)]
        )
        await ingest(sessions, deliveries[:3])  # 3 of 5: below 80 %
        assert await announced(sessions) == []
        await ingest(sessions, deliveries[3:])
        await ingest(sessions, deliveries[3:])  # redelivered: nothing new
        crossed = await announced(sessions)
        assert [(e.period, e.threshold_percent, e.limit, e.used) for e in crossed] == [
            ("month", 80, 5, 6),
            ("month", 100, 5, 6),
        ]


def test_one_pass_gives_minutes_hours_and_quota_counts() -> None:
    org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    late = midnight - timedelta(seconds=30)  # the day (and month) before
    events: list[RequestEvent] = [
        completed(org_id=org, key_id=key, api_id=api, latency_ms=10, time=late),
        completed(org_id=org, key_id=key, api_id=api, latency_ms=300, time=midnight),
        completed(
            org_id=org, key_id=key, api_id=api, latency_ms=10, time=midnight + timedelta(seconds=5)
        ),
        completed(
            org_id=org, key_id=key, api_id=api, latency_ms=20, time=midnight + timedelta(minutes=7)
        ),
        rejected(org_id=org, key_id=key, api_id=api, time=midnight + timedelta(minutes=8)),
    ]

    result = aggregate(events)

    per_minute = {k[0]: (v.requests, v.latency_ms_sum) for k, v in result.minutes.items()}
    assert per_minute == {
        late.replace(second=0): (1, 10),
        midnight: (2, 310),
        midnight + timedelta(minutes=7): (1, 20),
        midnight + timedelta(minutes=8): (1, 1),
    }
    completed_hour = [v for k, v in result.hours.items() if k[0] == midnight and not k[7]]
    assert [(v.requests, v.latency_ms_sum) for v in completed_hour] == [(3, 330)]
    assert completed_hour[0].latency_hist == {
        histogram.bucket_of(10): 1,
        histogram.bucket_of(20): 1,
        histogram.bucket_of(300): 1,
    }
    # Rejections never count against a quota; the latest admitted time is kept per day.
    assert result.admitted == {
        (key, late.date()): (1, late),
        (key, midnight.date()): (3, midnight + timedelta(minutes=7)),
    }


async def test_positions_beyond_a_new_log_end_restart_from_its_start(
    database_factory: Callable[[str], str],
) -> None:
    async with usage_db(database_factory) as sessions:
        org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        first_run = as_deliveries([completed(org_id=org, key_id=key, api_id=api) for _ in range(8)])
        assert (await ingest(sessions, first_run, log_ends={0: 8})).ingested == 8
        # The broker is new (a restarted `make up`): the same offsets, other events, and
        # the stored position (8) lies beyond the new log's end (3).
        second_run = as_deliveries(
            [completed(org_id=org, key_id=key, api_id=api) for _ in range(3)]
        )
        result = await ingest(sessions, second_run, log_ends={0: 3})
        assert (result.ingested, result.redelivered_skipped) == (3, 0)
        assert result.positions_reset == (0,)
        again = await ingest(sessions, second_run, log_ends={0: 3})  # and a redelivery of it
        assert (again.ingested, again.redelivered_skipped, again.positions_reset) == (0, 3, ())
        # Old events on a log that was reset again: request ids still count them once.
        replayed = await ingest(sessions, first_run[:2], log_ends={0: 2})
        assert (replayed.ingested, replayed.duplicates_skipped) == (0, 2)
        async with sessions() as session:
            assert await scalar(session, "SELECT count(*) FROM request_log") == 11


async def test_a_new_log_as_long_as_the_old_one_is_taken_in(
    database_factory: Callable[[str], str],
) -> None:
    async with usage_db(database_factory) as sessions:
        org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        first_run = as_deliveries([completed(org_id=org, key_id=key, api_id=api) for _ in range(6)])
        assert (await ingest(sessions, first_run, log_ends={0: 6})).ingested == 6
        # `make up` again: a new broker whose log already holds as many records as the old
        # one when usage first reads it. Same offsets, same log end, other events.
        second_run = as_deliveries(
            [completed(org_id=org, key_id=key, api_id=api) for _ in range(6)]
        )
        result = await ingest(sessions, second_run, log_ends={0: 6})
        assert (result.ingested, result.redelivered_skipped) == (6, 0)
        assert result.positions_reset == (0,)
        again = await ingest(sessions, second_run, log_ends={0: 6})  # and a redelivery of it
        assert (again.ingested, again.redelivered_skipped, again.positions_reset) == (0, 6, ())
        async with sessions() as session:
            assert await scalar(session, "SELECT count(*) FROM request_log") == 12
            assert await scalar(session, "SELECT sum(requests) FROM usage_minute") == 12


def huge_answer(org: uuid.UUID, key: uuid.UUID, api: uuid.UUID, at: datetime) -> RequestEvent:
    """A completed request whose answer was 2^62 bytes: the contract allows up to 2^63 - 1."""
    event = completed(org_id=org, key_id=key, api_id=api, time=at)
    return event.model_copy(update={"response_bytes": 2**62})


async def test_sums_no_bigint_holds_saturate_instead_of_blocking_ingest(
    database_factory: Callable[[str], str],
) -> None:
    # Before: two contract-valid sizes (or costs) in one minute summed past what a bigint
    # holds, and the batch failed on every retry: the partition stopped for good.
    async with usage_db(database_factory) as sessions:
        org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        at = datetime.now(UTC).replace(second=5, microsecond=0)
        huge = [huge_answer(org, key, api, at) for _ in range(3)]
        first = await ingest(sessions, as_deliveries(huge[:2]))  # summed in one batch
        later = await ingest(sessions, as_deliveries(huge[2:], first=2))  # added by the upsert
        assert (first.ingested, later.ingested) == (2, 1)
        span = TimeRange(at.replace(second=0), at.replace(second=0) + timedelta(minutes=1))
        async with sessions() as session:
            assert await scalar(session, "SELECT count(*) FROM request_log") == 3
            for table in ("usage_minute", "usage_hour", "usage_org_hour", "usage_key_day"):
                assert await scalar(session, f"SELECT sum(bytes_out) FROM {table}") == BIGINT_MAX
            for where in (UsageFilter(org_id=org), UsageFilter(org_id=org, key_id=key)):
                answer = await summary(session, where, span)
                assert (answer.requests, answer.bytes_out) == (3, BIGINT_MAX)
            ranked = await top(session, UsageFilter(org_id=org), span, "key", "requests", 5)
            assert [(i.value, i.requests) for i in ranked.items] == [(str(key), 3)]


async def test_answers_summed_over_many_rows_stay_within_a_bigint(
    database_factory: Callable[[str], str],
) -> None:
    # Each hour holds a contract-valid size; a range over several hours sums past 2^63.
    async with usage_db(database_factory) as sessions:
        org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        hour = datetime(2026, 3, 2, tzinfo=UTC)
        events = [huge_answer(org, key, api, hour + timedelta(hours=n)) for n in range(4)]
        await ingest(sessions, as_deliveries(events))
        span = TimeRange(hour, hour + timedelta(hours=4))
        async with sessions() as session:
            answer = await summary(session, UsageFilter(org_id=org), span)
            series = await timeseries(session, UsageFilter(org_id=org), span, "day")
        assert (answer.requests, answer.bytes_out) == (4, BIGINT_MAX)
        assert [p.bytes_out for p in series.points] == [BIGINT_MAX]


async def test_a_nil_key_seen_in_both_modes_in_one_batch_does_not_block_ingest(
    database_factory: Callable[[str], str],
) -> None:
    # Before: two rejections without a resolved key, one live and one test (the contract
    # allows it), in one minute made two rows with one primary key in a single upsert;
    # Postgres refused the batch on every retry.
    async with usage_db(database_factory) as sessions:
        at = datetime.now(UTC).replace(second=5, microsecond=0)
        live = rejected(org_id=None, key_id=None, api_id=None, status=401, time=at)
        test = rejected(org_id=None, key_id=None, api_id=None, status=401, time=at)
        test = test.model_copy(update={"mode": RequestMode.TEST})
        result = await ingest(sessions, as_deliveries([live, test]))
        assert result.ingested == 2
        async with sessions() as session:
            assert await scalar(session, "SELECT count(*) FROM request_log") == 2
            for table in ("usage_minute", "usage_hour", "usage_key_hour", "usage_key_day"):
                assert await scalar(session, f"SELECT sum(requests) FROM {table}") == 2
            assert await scalar(session, "SELECT sum(requests) FROM usage_org_minute") == 2


async def test_a_limit_near_a_bigint_does_not_block_ingest(
    database_factory: Callable[[str], str],
) -> None:
    # Before: a contract-valid limit near 2^63 overflowed `80 * limit` in the quota check,
    # and every batch with that key's traffic failed for ever.
    async with usage_db(database_factory) as sessions:
        org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with sessions() as session, session.begin():
            await apply_key_state(session, key_state(key, org, per_day=2**62, version=1))
        result = await ingest(
            sessions, as_deliveries([completed(org_id=org, key_id=key, api_id=api)])
        )
        assert result.ingested == 1
        assert await announced(sessions) == []


async def test_a_limit_past_a_bigint_is_kept_as_unreachable(
    database_factory: Callable[[str], str],
) -> None:
    # Before: a contract-valid limit past 2^63 failed the key registry's batch on every
    # retry (the key topic is read from the beginning: every later key was stuck too).
    async with usage_db(database_factory) as sessions:
        org, key, api = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with sessions() as session, session.begin():
            state = key_state(key, org, per_day=2**70, version=1, per_month=2**64)
            assert await apply_key_state(session, state)
        result = await ingest(
            sessions, as_deliveries([completed(org_id=org, key_id=key, api_id=api)])
        )
        assert result.ingested == 1
        async with sessions() as session:
            known = await key_limits(session, key)
        assert known is not None
        assert (known.per_day, known.per_month) == (BIGINT_MAX, BIGINT_MAX)
