"""Analytics rules: ranges, buckets, gap filling, percentiles. Never commits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.kit.auth import Principal
from tollgate.kit.problems import NotFound, Unprocessable
from tollgate.usage import histogram
from tollgate.usage.analytics import repository
from tollgate.usage.analytics.repository import Totals, UsageFilter
from tollgate.usage.analytics.schemas import (
    ErrorBreakdown,
    ErrorCount,
    Granularity,
    KeyStats,
    LatencyStats,
    QuotaStanding,
    Timeseries,
    TimeseriesPoint,
    TopDimension,
    TopItem,
    TopList,
    TopOrder,
    UsageSummary,
    UsageTotals,
)
from tollgate.usage.models import NIL
from tollgate.usage.quotas import repository as quotas
from tollgate.usage.requestlog.repository import LogFilter
from tollgate.usage.requestlog.schemas import RequestLogItem
from tollgate.usage.requestlog.service import recent_for_key
from tollgate.usage.scope import TimeRange, can_see

MAX_POINTS = 1500
"""Most buckets a time series returns; longer ranges need a coarser granularity."""

STEP = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}


def latency_stats(hist: histogram.Histogram, latency_ms_sum: int, completed: int) -> LatencyStats:
    """Mean and percentiles of a merged histogram."""
    qs = histogram.percentiles(hist)
    return LatencyStats(
        mean_ms=round(latency_ms_sum / completed, 3) if completed else None,
        p50_ms=qs[0.5],
        p90_ms=qs[0.9],
        p95_ms=qs[0.95],
        p99_ms=qs[0.99],
    )


def _usage_totals(totals: Totals, hist: histogram.Histogram) -> UsageTotals:
    completed = totals.completed
    return UsageTotals(
        requests=totals.requests,
        completed=completed,
        rejected=totals.rejected,
        errors=totals.errors,
        client_errors=totals.client_errors,
        server_errors=totals.server_errors,
        error_rate=round(totals.errors / completed, 6) if completed else 0.0,
        bytes_in=totals.bytes_in,
        bytes_out=totals.bytes_out,
        credits=totals.credits,
        contract_drift=totals.drifted,
        latency=latency_stats(hist, totals.latency_ms_sum, completed),
    )


async def totals_for(session: AsyncSession, where: UsageFilter, span: TimeRange) -> UsageTotals:
    """Totals and latency of the rows matching `where` over `span`."""
    rows = repository.rows_in(where, span)
    totals = await repository.totals(session, rows)
    hists = await repository.histograms_by(session, rows) if totals.completed else {}
    return _usage_totals(totals, hists.get(None, {}))


async def summary(session: AsyncSession, where: UsageFilter, span: TimeRange) -> UsageSummary:
    """The summary of a range."""
    totals = await totals_for(session, where, span)
    return UsageSummary(org_id=where.org_id, start=span.start, end=span.end, **totals.model_dump())


def _floor(moment: datetime, granularity: Granularity) -> datetime:
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    if granularity == "minute":
        return moment
    moment = moment.replace(minute=0)
    return moment if granularity == "hour" else moment.replace(hour=0)


def _ceil(moment: datetime, granularity: Granularity) -> datetime:
    floored = _floor(moment, granularity)
    return floored if floored == moment else floored + STEP[granularity]


async def timeseries(
    session: AsyncSession, where: UsageFilter, span: TimeRange, granularity: Granularity
) -> Timeseries:
    """Usage per bucket over the range, every bucket present (gaps are zeros)."""
    start, end = _floor(span.start, granularity), _ceil(span.end, granularity)
    step = STEP[granularity]
    if (end - start) / step > MAX_POINTS:
        raise Unprocessable(
            "range-too-long",
            f"At most {MAX_POINTS} points: shorten the range or use a coarser granularity.",
        )
    rows = repository.rows_by("minute" if granularity == "minute" else "hour", where, start, end)
    group: Any = (
        func.date_trunc("day", rows.c.bucket, "UTC") if granularity == "day" else rows.c.bucket
    )
    by_bucket = {
        moment.astimezone(UTC): totals
        for moment, totals in await repository.totals_by(session, rows, group)
    }
    hists = {
        moment.astimezone(UTC): hist
        for moment, hist in (await repository.histograms_by(session, rows, group)).items()
    }
    points = []
    moment = start
    while moment < end:
        totals = by_bucket.get(moment, Totals())
        qs = histogram.percentiles(hists.get(moment, {}))
        points.append(
            TimeseriesPoint(
                time=moment,
                requests=totals.requests,
                rejected=totals.rejected,
                errors=totals.errors,
                credits=totals.credits,
                bytes_in=totals.bytes_in,
                bytes_out=totals.bytes_out,
                p50_ms=qs[0.5],
                p95_ms=qs[0.95],
                p99_ms=qs[0.99],
            )
        )
        moment += step
    return Timeseries(
        org_id=where.org_id, granularity=granularity, start=start, end=end, points=points
    )


def _dimension(rows: Any, by: TopDimension) -> Any:
    return {
        "api": rows.c.api_id,
        "route": rows.c.route_id,
        "key": rows.c.key_id,
        "status": rows.c.status,
    }[by]


def _value(raw: Any) -> str | None:
    if raw is None or raw == NIL:
        return None
    return str(raw)


async def top(
    session: AsyncSession,
    where: UsageFilter,
    span: TimeRange,
    by: TopDimension,
    order_by: TopOrder,
    limit: int,
    *,
    complete_since: datetime | None = None,
) -> TopList:
    """The `limit` busiest values of a dimension, by `order_by`. `complete_since`: the
    oldest UTC day retention has left whole (`retention.service.complete_days_since`;
    None: every day)."""
    rows = repository.rows_in(where, span, by_key=by == "key")
    group = _dimension(rows, by)
    key_rows = (
        repository.key_rows_in(where, span, complete_since=complete_since) if by == "key" else None
    )
    if key_rows is not None:  # narrow per-key rollups; histograms of the winners only
        ranked = await repository.key_totals(session, key_rows, order_by=order_by, limit=limit)
    else:
        ranked = await repository.totals_by(session, rows, group, order_by=order_by, limit=limit)
    values = [value for value, _ in ranked]
    hists = (
        await repository.histograms_by(session, rows, group, where=[group.in_(values)])
        if values
        else {}
    )
    items = [
        TopItem(
            value=_value(value),
            requests=totals.requests,
            rejected=totals.rejected,
            errors=totals.errors,
            credits=totals.credits,
            latency=latency_stats(hists.get(value, {}), totals.latency_ms_sum, totals.completed),
        )
        for value, totals in ranked
    ]
    return TopList(
        org_id=where.org_id, by=by, order_by=order_by, start=span.start, end=span.end, items=items
    )


async def errors(session: AsyncSession, where: UsageFilter, span: TimeRange) -> ErrorBreakdown:
    """Errors by class, rejections by reason, and both by status."""
    rows = repository.rows_in(where, span)
    totals = await repository.totals(session, rows)
    items = await repository.breakdown_by_status(session, rows)
    rejected: dict[str, int] = {}
    for _, reason, count in items:
        if reason:
            rejected[reason] = rejected.get(reason, 0) + count
    return ErrorBreakdown(
        org_id=where.org_id,
        start=span.start,
        end=span.end,
        requests=totals.requests,
        by_class={"4xx": totals.client_errors, "5xx": totals.server_errors},
        rejected_by_reason=rejected,
        items=[
            ErrorCount(status=status, rejection_reason=reason or None, requests=count)
            for status, reason, count in items
        ],
    )


async def key_owner(session: AsyncSession, principal: Principal, key_id: uuid.UUID) -> uuid.UUID:
    """The org of a key the caller may see; 404 when unknown or another tenant's."""
    known = await quotas.key_limits(session, key_id)
    org_id = known.org_id if known else await repository.aggregate_org_of_key(session, key_id)
    if org_id is None or not can_see(principal, org_id):
        raise NotFound("key-not-found", "No such key.")
    return org_id


async def key_stats(
    session: AsyncSession,
    principal: Principal,
    key_id: uuid.UUID,
    span: TimeRange,
    *,
    recent: int,
    log_retention: timedelta,
) -> KeyStats:
    """A key's totals over the range, its quota standing and its latest requests."""
    org_id = await key_owner(session, principal, key_id)
    totals = await totals_for(session, UsageFilter(org_id=org_id, key_id=key_id), span)
    today = datetime.now(UTC).date()
    known = await quotas.key_limits(session, key_id)
    standing = QuotaStanding(
        per_day=known.per_day if known else None,
        used_today=await quotas.used_in(session, key_id, "day", today),
        per_month=known.per_month if known else None,
        used_this_month=await quotas.used_in(session, key_id, "month", today.replace(day=1)),
    )
    log_start = max(span.start, span.end - log_retention)
    latest = await recent_for_key(
        session, LogFilter(start=log_start, end=span.end, org_id=org_id, key_id=key_id), recent
    )
    return KeyStats(
        key_id=key_id,
        org_id=org_id,
        start=span.start,
        end=span.end,
        totals=totals,
        quota=standing,
        recent=[RequestLogItem.of(row) for row in latest],
    )
