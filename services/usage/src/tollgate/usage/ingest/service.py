"""Ingestion rules: a batch of request events into the log, aggregates and quotas.

Exactly-once effect. Every request event is one row of the request log, keyed by its
request id: `record_requests` runs inside the consumer's transaction, inserts the
batch's events (a request id already logged is skipped: a redelivery after a crash
between the database commit and the Kafka offset commit, or the gateway re-sending an
event), aggregates only the rows actually inserted, counts quotas, and moves the
stored positions (`consumer_positions`, the next offset per group, topic and
partition) past the batch. All of it commits or none of it does, so any record is
counted once however often Kafka delivers it.

The positions tell a redelivery from a new log. A record below its partition's
position that was already logged is a redelivery (counted in `redelivered_skipped`).
A stored position beyond the partition's log end (`log_ends`, the fetch high
watermarks), or a record below it that was never logged, means the log was replaced
(a new broker after `make up` restarted, a recreated topic): the position goes back
to the log's start and the partition is reported in `positions_reset`. A new log
that has already grown to the old position is taken in all the same, because no
record is skipped on its offset alone, with one exception: a record below the position
whose day the request log no longer keeps (`oldest_logged_day`, the retention's) cannot
be looked up, and is taken for a redelivery (a log replaced by one that has grown past
the old position with events older than the retention is the rarer case; counting a
request twice is the worse mistake). Never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.contracts.events.gateway import RequestCompleted, RequestRejected
from tollgate.usage import histogram
from tollgate.usage.ingest import repository
from tollgate.usage.ingest.repository import AggregateKey, AggregateValues, LogRow
from tollgate.usage.models import NIL
from tollgate.usage.quotas.service import count_admitted

RequestEvent = RequestCompleted | RequestRejected


@dataclass(frozen=True)
class Delivery:
    """One Kafka record of the request topic; `event` is None when it could not be
    decoded (it still moves the position: a poison record must not block a partition)."""

    partition: int
    offset: int
    event: RequestEvent | None


@dataclass(frozen=True)
class IngestResult:
    """What one batch changed."""

    ingested: int
    redelivered_skipped: int
    duplicates_skipped: int
    thresholds_crossed: int
    positions_reset: tuple[int, ...] = ()
    """Partitions whose log was replaced (see the module docstring): position back to 0."""


def _log_rows(events: Sequence[RequestEvent]) -> list[LogRow]:
    rows: list[LogRow] = []
    for e in events:
        if isinstance(e, RequestCompleted):
            rows.append(
                (
                    e.request_id,
                    e.time,
                    e.org_id,
                    e.key_id,
                    e.api_id,
                    e.route_id,
                    e.method,
                    e.path,
                    e.status,
                    "completed",
                    None,
                    e.latency_ms,
                    e.upstream_latency_ms,
                    e.request_bytes,
                    e.response_bytes,
                    e.client_ip,
                    e.cost,
                    e.gateway_instance,
                    e.mode.value,
                    e.served_by.value,
                    orjson.dumps(e.contract_drift).decode()
                    if e.contract_drift is not None
                    else None,
                )
            )
        else:
            rows.append(
                (
                    e.request_id,
                    e.time,
                    e.org_id,
                    e.key_id,
                    e.api_id,
                    e.route_id,
                    e.method,
                    e.path,
                    e.status,
                    "rejected",
                    e.reason.value,
                    e.latency_ms,
                    None,
                    None,
                    None,
                    e.client_ip,
                    0,
                    e.gateway_instance,
                    e.mode.value,
                    None,
                    None,
                )
            )
    return rows


@dataclass(slots=True)
class _MinuteGroup:
    """A minute aggregate being built, with the latest request time in it (quota alerts
    report it as `crossed_at`)."""

    latest: datetime
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    credits: int = 0
    latency_ms_sum: int = 0
    latency_hist: dict[int, int] = field(default_factory=dict)
    drifted: int = 0


@dataclass(frozen=True)
class Aggregates:
    """What a batch adds: minute and hour aggregate rows, and admitted requests per key
    and UTC day with the latest of their times (for quotas)."""

    minutes: dict[AggregateKey, AggregateValues]
    hours: dict[AggregateKey, AggregateValues]
    admitted: dict[tuple[uuid.UUID, date], tuple[int, datetime]]


def aggregate(events: Iterable[RequestEvent]) -> Aggregates:
    """Per-minute and per-hour aggregates and per-key-day admitted counts of `events`.

    One pass over the events builds the minute groups; hours and quota counts are then
    summed from those groups (a batch has far fewer groups than events).
    """
    bucket_of = histogram.bucket_of
    groups: dict[AggregateKey, _MinuteGroup] = {}
    for e in events:
        drifted = 0
        if isinstance(e, RequestCompleted):
            reason = ""
            bytes_in, bytes_out, credits = e.request_bytes, e.response_bytes, e.cost
            drifted = 1 if e.contract_drift else 0
        else:
            reason = e.reason.value
            bytes_in = bytes_out = credits = 0
        time = e.time
        key: AggregateKey = (
            time.replace(second=0, microsecond=0),
            e.org_id or NIL,
            e.key_id or NIL,
            e.api_id or NIL,
            e.route_id or NIL,
            e.method,
            e.status,
            reason,
            e.mode.value,
        )
        group = groups.get(key)
        if group is None:
            group = groups[key] = _MinuteGroup(latest=time)
        elif group.latest < time:
            group.latest = time
        group.requests += 1
        group.bytes_in += bytes_in
        group.bytes_out += bytes_out
        group.credits += credits
        group.latency_ms_sum += e.latency_ms
        group.drifted += drifted
        hist = group.latency_hist
        index = bucket_of(e.latency_ms)
        hist[index] = hist.get(index, 0) + 1

    minutes: dict[AggregateKey, AggregateValues] = {}
    hours: dict[AggregateKey, AggregateValues] = {}
    admitted: dict[tuple[uuid.UUID, date], tuple[int, datetime]] = {}
    for key, group in groups.items():
        minute, org_id, key_id, api_id, route_id, method, status, reason, mode = key
        minute_values = minutes[key] = AggregateValues(
            group.requests,
            group.bytes_in,
            group.bytes_out,
            group.credits,
            group.latency_ms_sum,
            group.latency_hist,
            group.drifted,
        )
        hour_key: AggregateKey = (
            minute.replace(minute=0),
            org_id,
            key_id,
            api_id,
            route_id,
            method,
            status,
            reason,
            mode,
        )
        hour = hours.get(hour_key)
        if hour is None:
            hours[hour_key] = minute_values.copy()
        else:
            hour.add(minute_values)
        if not reason:  # completed: admitted, so it counts against the key's quota
            slot = (key_id, minute.date())
            counted, latest = admitted.get(slot, (0, group.latest))
            admitted[slot] = (counted + group.requests, max(latest, group.latest))
    return Aggregates(minutes, hours, admitted)


async def record_requests(
    session: AsyncSession,
    *,
    group_id: str,
    topic: str,
    deliveries: Sequence[Delivery],
    log_ends: Mapping[int, int] | None = None,
    oldest_logged_day: date | None = None,
) -> IngestResult:
    """Take in a batch of request events exactly once (see the module docstring)."""
    if not deliveries:
        return IngestResult(0, 0, 0, 0)
    positions = await repository.lock_positions(
        session, group_id, topic, [d.partition for d in deliveries]
    )
    ends = log_ends or {}
    replaced = {p for p, at in positions.items() if p in ends and at > ends[p]}
    for p in replaced:
        positions[p] = 0
    candidates: list[tuple[Delivery, RequestEvent, bool]] = []
    redelivered = duplicates = 0
    for d in deliveries:
        below = d.offset < positions.get(d.partition, 0)
        if d.event is None:
            redelivered += below
        elif below and oldest_logged_day is not None and d.event.time.date() < oldest_logged_day:
            redelivered += 1  # its log day is gone: it cannot be looked up
        else:
            candidates.append((d, d.event, below))
    logged = await repository.insert_log_rows(session, _log_rows([e for _, e, _ in candidates]))
    inserted = set(logged)
    new: list[RequestEvent] = []
    for d, event, below in candidates:
        if (event.request_id, event.time) in inserted:
            inserted.discard((event.request_id, event.time))  # once, even if sent twice
            new.append(event)
            if below:  # never logged, yet below the position: another log than before
                replaced.add(d.partition)
        elif below:
            redelivered += 1
        else:
            duplicates += 1
    aggregates = aggregate(new)
    await repository.add_to_aggregates(session, "usage_minute", aggregates.minutes)
    await repository.add_to_aggregates(session, "usage_hour", aggregates.hours)
    minutes, hours = repository.by_org(aggregates.minutes), repository.by_org(aggregates.hours)
    await repository.add_to_aggregates(session, "usage_org_minute", minutes)
    await repository.add_to_aggregates(session, "usage_org_hour", hours)
    for table, days in (("usage_key_hour", False), ("usage_key_day", True)):
        rollup = repository.by_key(aggregates.hours, days=days)
        await repository.add_to_key_rollup(session, table, rollup)
    crossed = await count_admitted(session, aggregates.admitted)
    reset = tuple(sorted(replaced))
    if reset:
        await repository.reset_positions(session, group_id, topic, reset)
    next_offsets: dict[int, int] = {}
    for d in deliveries:
        next_offsets[d.partition] = max(next_offsets.get(d.partition, 0), d.offset + 1)
    await repository.save_positions(session, group_id, topic, next_offsets)
    return IngestResult(
        ingested=len(new),
        redelivered_skipped=redelivered,
        duplicates_skipped=duplicates,
        thresholds_crossed=len(crossed),
        positions_reset=reset,
    )
