"""SQL of the analytics API: sums and merged histograms over the aggregate tables.

A range is answered from `usage_hour` for its whole hours and from `usage_minute` for
the minutes at either edge, so a 30-day summary reads hours, not 43,200 minutes, and
is still exact to the minute. A query that neither filters nor groups by key reads the
org rollups (`usage_org_hour`, `usage_org_minute`: the same summed over keys) instead,
which with thousands of keys hold orders of magnitude fewer rows. Histograms are merged
in SQL by bucket index (`jsonb_each_text`), which is what makes percentiles correct over
any merge.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    Subquery,
    Uuid,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.kit.db import BIGINT_MAX
from tollgate.usage.histogram import Histogram
from tollgate.usage.models import (
    NIL,
    UsageHour,
    UsageKeyDay,
    UsageKeyHour,
    UsageMinute,
    UsageOrgHour,
    UsageOrgMinute,
)
from tollgate.usage.scope import TimeRange

_MINUTE: Any = UsageMinute.__table__
_HOUR: Any = UsageHour.__table__
_ORG_MINUTE: Any = UsageOrgMinute.__table__
_ORG_HOUR: Any = UsageOrgHour.__table__
_KEY_HOUR: Any = UsageKeyHour.__table__
_KEY_DAY: Any = UsageKeyDay.__table__
_COLUMNS = (
    "bucket", "org_id", "key_id", "api_id", "route_id", "method", "status", "reason",
    "requests", "bytes_in", "bytes_out", "credits", "latency_ms_sum", "latency_hist",
    "drifted",
)  # fmt: skip


@dataclass(frozen=True)
class UsageFilter:
    """Which aggregate rows a query covers (None: no restriction)."""

    org_id: uuid.UUID | None
    key_id: uuid.UUID | None = None
    api_id: uuid.UUID | None = None
    route_id: uuid.UUID | None = None
    mode: str | None = None  # "live" or "test"; None: both


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floored = _floor_hour(moment)
    return floored if floored == moment else floored + timedelta(hours=1)


def _part(table: Any, where: UsageFilter, start: datetime, end: datetime) -> Select[Any]:
    conditions: list[ColumnElement[bool]] = [table.c.bucket >= start, table.c.bucket < end]
    for name in ("org_id", "key_id", "api_id", "route_id", "mode"):
        value = getattr(where, name)
        if value is not None:
            conditions.append(table.c[name] == value)
    if "key_id" not in table.c:  # an org rollup: every key summed, shown as the nil key
        return select(
            *(
                literal(NIL, Uuid).label(name) if name == "key_id" else table.c[name]
                for name in _COLUMNS
            )
        ).where(*conditions)
    return select(*(table.c[name] for name in _COLUMNS)).where(*conditions)


def _tables(where: UsageFilter, by_key: bool) -> tuple[Any, Any]:
    """(minute table, hour table) to read: the org rollups unless a key is involved."""
    if by_key or where.key_id is not None:
        return _MINUTE, _HOUR
    return _ORG_MINUTE, _ORG_HOUR


def rows_in(where: UsageFilter, span: TimeRange, *, by_key: bool = False) -> Subquery:
    """Aggregate rows covering `span` exactly once: hours inside, minutes at the edges.
    `by_key`: the rows keep the key dimension (else they may be summed over keys)."""
    minute, hour = _tables(where, by_key)
    first_hour, last_hour = _ceil_hour(span.start), _floor_hour(span.end)
    if first_hour >= last_hour:
        return _part(minute, where, span.start, span.end).subquery("rows")
    parts = [_part(hour, where, first_hour, last_hour)]
    if span.start < first_hour:
        parts.append(_part(minute, where, span.start, first_hour))
    if last_hour < span.end:
        parts.append(_part(minute, where, last_hour, span.end))
    if len(parts) == 1:
        return parts[0].subquery("rows")
    return union_all(*parts).subquery("rows")


def rows_by(
    table: str, where: UsageFilter, start: datetime, end: datetime, *, by_key: bool = False
) -> Subquery:
    """Rows of one aggregate table (`minute` or `hour`) in [start, end)."""
    minute, hour = _tables(where, by_key)
    return _part(minute if table == "minute" else hour, where, start, end).subquery("rows")


def _floor_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(moment: datetime) -> datetime:
    floored = _floor_day(moment)
    return floored if floored == moment else floored + timedelta(days=1)


_KEY_MEASURES = (
    "requests", "rejected", "errors", "client_errors", "server_errors", "bytes_in",
    "bytes_out", "credits", "latency_ms_sum", "drifted",
)  # fmt: skip


def _key_part(
    table: Any, where: UsageFilter, start: datetime, end: datetime, *, sign: int = 1
) -> Select[Any]:
    """`table`'s per-key measures in [start, end); `sign=-1` negates them (a part taken
    away from a whole day)."""
    conditions: list[ColumnElement[bool]] = [table.c.bucket >= start, table.c.bucket < end]
    for name in ("org_id", "mode"):
        value = getattr(where, name)
        if value is not None:
            conditions.append(table.c[name] == value)

    def signed(value: Any, name: str) -> Any:
        return (-value if sign < 0 else value).label(name)

    if "api_id" not in table.c:  # usage_key_hour / usage_key_day
        measures = [signed(table.c[n], n) for n in _KEY_MEASURES]
        return select(table.c.key_id, *measures).where(*conditions)
    requests, done = table.c.requests, table.c.reason == ""
    error = done & (table.c.status >= 400)

    def when(condition: Any, value: Any = requests) -> Any:
        return case((condition, value), else_=0)

    return select(
        table.c.key_id,
        signed(requests, "requests"),
        signed(when(~done), "rejected"),
        signed(when(error), "errors"),
        signed(when(error & (table.c.status < 500)), "client_errors"),
        signed(when(error & (table.c.status >= 500)), "server_errors"),
        signed(table.c.bytes_in, "bytes_in"),
        signed(table.c.bytes_out, "bytes_out"),
        signed(table.c.credits, "credits"),
        signed(when(done, table.c.latency_ms_sum), "latency_ms_sum"),
        signed(table.c.drifted, "drifted"),
    ).where(*conditions)


def key_rows_in(
    where: UsageFilter, span: TimeRange, *, complete_since: datetime | None = None
) -> Subquery | None:
    """Per-key rows whose measures sum to exactly those of `span`; columns `key_id` and
    the measures of `Totals`. None when `where` restricts a dimension these rows do not
    have (key, API, route).

    Whole UTC days come from `usage_key_day`. A part of a day at either edge comes from
    `usage_key_hour` for its whole hours and `usage_minute` for its edge minutes, unless
    it is more than half the day: then it is the day's row minus the rest of the day
    (negated rows), which is far fewer rows. A range ending now is the common case: the
    rest of today is (nearly) empty, so "the last 24 hours" reads one day row per key
    and a few hours instead of 23 hours of key-hours. A day before `complete_since` (see
    `retention.service.complete_days_since`; None: every day is) is never read that way:
    retention has dropped its minutes or some of its hours, so the rest of the day would
    be taken away as nothing; its part is read from what is left, as every other view
    reads it."""
    if where.key_id is not None or where.api_id is not None or where.route_id is not None:
        return None
    parts: list[Select[Any]] = []

    def by_hours(start: datetime, end: datetime, sign: int) -> None:
        first_hour, last_hour = _ceil_hour(start), _floor_hour(end)
        if first_hour >= last_hour:
            if start < end:
                parts.append(_key_part(_MINUTE, where, start, end, sign=sign))
            return
        parts.append(_key_part(_KEY_HOUR, where, first_hour, last_hour, sign=sign))
        if start < first_hour:
            parts.append(_key_part(_MINUTE, where, start, first_hour, sign=sign))
        if last_hour < end:
            parts.append(_key_part(_MINUTE, where, last_hour, end, sign=sign))

    def within_day(start: datetime, end: datetime) -> None:  # [start, end) in one UTC day
        day = _floor_day(start)
        whole = complete_since is None or day >= complete_since
        if end - start <= timedelta(hours=12) or not whole:
            by_hours(start, end, 1)
            return
        parts.append(_key_part(_KEY_DAY, where, day, day + timedelta(days=1)))
        by_hours(day, start, -1)
        by_hours(end, day + timedelta(days=1), -1)

    first_day, last_day = _ceil_day(span.start), _floor_day(span.end)
    if first_day > last_day:  # inside one day
        within_day(span.start, span.end)
    else:
        if first_day < last_day:
            parts.append(_key_part(_KEY_DAY, where, first_day, last_day))
        if span.start < first_day:
            within_day(span.start, first_day)
        if last_day < span.end:
            within_day(last_day, span.end)
    if len(parts) == 1:
        return parts[0].subquery("rows")
    return union_all(*parts).subquery("rows")


async def key_totals(
    session: AsyncSession, rows: Subquery, *, order_by: str, limit: int
) -> list[tuple[Any, Totals]]:
    """The top `limit` keys of `key_rows_in` rows by `order_by`, with their totals: the
    ranking sums one measure over every key, the other measures are summed for the
    winners only. A key whose requests sum to zero sent none in the range (its rows were
    all taken away again with the rest of a day) and is no part of the answer."""
    label = rows.c.key_id.label("g")
    ranked = select(label, func.coalesce(func.sum(rows.c[order_by]), 0).label(order_by))
    ranked = ranked.group_by(label).having(func.sum(rows.c.requests) > 0)
    ranked = ranked.order_by(literal_column(order_by).desc(), label)
    winners = [row.g for row in await session.execute(ranked.limit(limit))]
    if not winners:
        return []
    measures = [func.coalesce(func.sum(rows.c[n]), 0).label(n) for n in _KEY_MEASURES]
    stmt = select(label, *measures).where(rows.c.key_id.in_(winners)).group_by(label)
    totals = {row.g: _totals(row) for row in await session.execute(stmt)}
    return [(key, totals[key]) for key in winners]


def _total(expression: Any, *where: Any) -> Any:
    summed = func.sum(expression)
    return func.coalesce(summed.filter(and_(*where)) if where else summed, 0)


def _measures(rows: Subquery) -> list[Any]:
    completed = rows.c.reason == ""
    requests = rows.c.requests
    return [
        _total(requests).label("requests"),
        _total(requests, rows.c.reason != "").label("rejected"),
        _total(requests, completed, rows.c.status >= 400).label("errors"),
        _total(requests, completed, rows.c.status >= 400, rows.c.status < 500).label(
            "client_errors"
        ),
        _total(requests, completed, rows.c.status >= 500).label("server_errors"),
        _total(rows.c.bytes_in).label("bytes_in"),
        _total(rows.c.bytes_out).label("bytes_out"),
        _total(rows.c.credits).label("credits"),
        _total(rows.c.latency_ms_sum, completed).label("latency_ms_sum"),
        _total(rows.c.drifted).label("drifted"),
    ]


@dataclass(frozen=True)
class Totals:
    """Summed measures of a set of aggregate rows."""

    requests: int = 0
    rejected: int = 0
    errors: int = 0
    client_errors: int = 0
    server_errors: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    credits: int = 0
    latency_ms_sum: int = 0
    drifted: int = 0

    @property
    def completed(self) -> int:
        return self.requests - self.rejected


def _totals(row: Any) -> Totals:
    # Sums of bigint are numeric in SQL and exact here; past BIGINT_MAX they saturate,
    # like the rollup rows they come from, so every figure fits a JSON client's int64.
    return Totals(
        **{name: min(int(getattr(row, name)), BIGINT_MAX) for name in Totals.__dataclass_fields__}
    )


async def totals(session: AsyncSession, rows: Subquery) -> Totals:
    """Measures summed over all `rows`."""
    row = (await session.execute(select(*_measures(rows)))).one()
    return _totals(row)


async def totals_by(
    session: AsyncSession,
    rows: Subquery,
    group: Any,
    *,
    order_by: str | None = None,
    limit: int | None = None,
    where: Sequence[ColumnElement[bool]] = (),
) -> list[tuple[Any, Totals]]:
    """Measures per value of `group` (an expression over `rows`), optionally top-N."""
    label = group.label("g")
    stmt = select(label, *_measures(rows)).where(*where).group_by(label)
    if order_by is not None:
        stmt = stmt.order_by(literal_column(order_by).desc(), label)
    else:
        stmt = stmt.order_by(label)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [(row.g, _totals(row)) for row in await session.execute(stmt)]


async def histograms_by(
    session: AsyncSession,
    rows: Subquery,
    group: Any | None = None,
    where: Sequence[ColumnElement[bool]] = (),
) -> dict[Any, Histogram]:
    """Merged latency histograms of completed requests, per value of `group` (or one,
    under the key None)."""
    buckets = func.jsonb_each_text(rows.c.latency_hist).table_valued("key", "value").lateral("h")
    count = func.sum(cast(buckets.c.value, BigInteger))
    grouping = [group.label("g")] if group is not None else []
    per_bucket = (
        select(*grouping, cast(buckets.c.key, Integer).label("k"), count.label("n"))
        .select_from(rows.join(buckets, true()))
        .where(rows.c.reason == "", *where)
        .group_by(*grouping, buckets.c.key)
        .subquery("b")
    )
    # One row per group with the bucket indexes and counts as two arrays: far fewer
    # rows to decode than one per (group, bucket).
    outer = [per_bucket.c.g] if group is not None else []
    indexes = func.array_agg(per_bucket.c.k).label("ks")
    counts = func.array_agg(cast(per_bucket.c.n, BigInteger)).label("ns")
    stmt = select(*outer, indexes, counts).group_by(*outer)
    merged: dict[Any, Histogram] = {}
    for row in await session.execute(stmt):
        if row.ks is None:  # no completed requests at all (an aggregate of no rows)
            continue
        merged[row.g if group is not None else None] = dict(zip(row.ks, row.ns, strict=True))
    return merged


async def breakdown_by_status(session: AsyncSession, rows: Subquery) -> list[tuple[int, str, int]]:
    """(status, rejection reason or '', requests) for every status ≥ 400 or rejection."""
    stmt = (
        select(rows.c.status, rows.c.reason, _total(rows.c.requests).label("n"))
        .where((rows.c.status >= 400) | (rows.c.reason != ""))
        .group_by(rows.c.status, rows.c.reason)
        .order_by(literal_column("n").desc(), rows.c.status, rows.c.reason)
    )
    return [(int(r.status), str(r.reason), int(r.n)) for r in await session.execute(stmt)]


async def aggregate_org_of_key(session: AsyncSession, key_id: uuid.UUID) -> uuid.UUID | None:
    """The org a key's traffic was counted under (latest hour), for keys usage has not
    seen on the key topic."""
    found: uuid.UUID | None = await session.scalar(
        select(_HOUR.c.org_id)
        .where(_HOUR.c.key_id == key_id)
        .order_by(_HOUR.c.bucket.desc())
        .limit(1)
    )
    return found
