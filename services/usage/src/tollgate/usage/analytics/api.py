"""HTTP transport of analytics: validate, authorize, delegate. Everything is scoped
to the org named with `org_id` (admins may omit it to see every org)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from tollgate.kit.auth import CurrentPrincipal, principal_now
from tollgate.kit.db import DbSession
from tollgate.kit.problems import (
    Problem,
    ServiceUnavailable,
    TooManyRequests,
    documented_problems,
)
from tollgate.kit.requests import DateTimeText
from tollgate.usage.analytics import service
from tollgate.usage.analytics.live import LiveResponse, LiveStreams, stream_counts
from tollgate.usage.analytics.repository import UsageFilter
from tollgate.usage.analytics.schemas import (
    ErrorBreakdown,
    Granularity,
    KeyStats,
    Timeseries,
    TopDimension,
    TopList,
    TopOrder,
    UsageSummary,
)
from tollgate.usage.config import CurrentSettings, Settings
from tollgate.usage.reads import read_transaction
from tollgate.usage.retention.jobs import policy_from
from tollgate.usage.retention.service import complete_days_since
from tollgate.usage.scope import TimeRange, org_scope, time_range

router = APIRouter(prefix="/usage", tags=["analytics"])

LIVE_RETRY_AFTER_SECONDS = 10
"""Retry-After of a stream refused for the org's or user's cap: long enough for another
stream of the caller's to end or be closed."""

From = Annotated[
    DateTimeText | None, Query(alias="from", description="Range start (default: to - 24 h).")
]
To = Annotated[DateTimeText | None, Query(alias="to", description="Range end (default: now).")]
Mode = Annotated[
    Literal["live", "test"],
    Query(description="`live` (default) or `test` traffic (`tg_test_` keys): counted apart."),
]


def _span(settings: Settings, start: AwareDatetime | None, end: AwareDatetime | None) -> TimeRange:
    return time_range(
        start,
        end,
        default=timedelta(hours=24),
        longest=timedelta(days=settings.max_range_days),
    )


@router.get("/summary", response_model=UsageSummary)
async def get_summary(
    settings: CurrentSettings,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    org_id: uuid.UUID | None = None,
    start: From = None,
    end: To = None,
    mode: Mode = "live",
    key_id: uuid.UUID | None = None,
    api_id: uuid.UUID | None = None,
    route_id: uuid.UUID | None = None,
) -> UsageSummary:
    """Requests, errors, rejections, bytes, credits and latency percentiles."""
    where = UsageFilter(org_scope(principal, org_id), key_id, api_id, route_id, mode)
    span = _span(settings, start, end)
    async with read_transaction(session, settings):
        return await service.summary(session, where, span)


@router.get("/timeseries", response_model=Timeseries)
async def get_timeseries(
    settings: CurrentSettings,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    org_id: uuid.UUID | None = None,
    granularity: Granularity = "hour",
    start: From = None,
    end: To = None,
    mode: Mode = "live",
    key_id: uuid.UUID | None = None,
    api_id: uuid.UUID | None = None,
    route_id: uuid.UUID | None = None,
) -> Timeseries:
    """Usage per minute, hour or day (UTC), with empty buckets filled with zeros."""
    where = UsageFilter(org_scope(principal, org_id), key_id, api_id, route_id, mode)
    span = _span(settings, start, end)
    async with read_transaction(session, settings):
        return await service.timeseries(session, where, span, granularity)


@router.get("/top", response_model=TopList)
async def get_top(
    settings: CurrentSettings,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    by: TopDimension,
    org_id: uuid.UUID | None = None,
    order_by: TopOrder = "requests",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    start: From = None,
    end: To = None,
    mode: Mode = "live",
    key_id: uuid.UUID | None = None,
    api_id: uuid.UUID | None = None,
) -> TopList:
    """The busiest APIs, routes, keys or statuses."""
    where = UsageFilter(org_scope(principal, org_id), key_id, api_id, mode=mode)
    span = _span(settings, start, end)
    whole_days = complete_days_since(datetime.now(UTC), policy_from(settings))
    async with read_transaction(session, settings):
        return await service.top(
            session, where, span, by, order_by, limit, complete_since=whole_days
        )


@router.get("/errors", response_model=ErrorBreakdown)
async def get_errors(
    settings: CurrentSettings,
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    org_id: uuid.UUID | None = None,
    start: From = None,
    end: To = None,
    mode: Mode = "live",
    key_id: uuid.UUID | None = None,
    api_id: uuid.UUID | None = None,
    route_id: uuid.UUID | None = None,
) -> ErrorBreakdown:
    """Upstream errors by class and status; gateway rejections by reason."""
    where = UsageFilter(org_scope(principal, org_id), key_id, api_id, route_id, mode)
    span = _span(settings, start, end)
    async with read_transaction(session, settings):
        return await service.errors(session, where, span)


@router.get(
    "/keys/{key_id}",
    response_model=KeyStats,
    responses=documented_problems({404: ("No such key in the caller's orgs.", ["key-not-found"])}),
)
async def get_key_stats(
    settings: CurrentSettings,
    request: Request,
    key_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: DbSession,
    start: From = None,
    end: To = None,
    recent: Annotated[int, Query(ge=0, le=100)] = 20,
) -> KeyStats:
    """One key: totals, quota standing and its most recent requests."""
    span = _span(settings, start, end)
    async with read_transaction(session, settings):
        return await service.key_stats(
            session,
            principal,
            key_id,
            span,
            recent=recent,
            log_retention=timedelta(days=settings.request_log_retention_days + 1),
        )


@router.get(
    "/live",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE stream"}},
)
async def live(
    settings: CurrentSettings,
    request: Request,
    principal: CurrentPrincipal,
    org_id: uuid.UUID | None = None,
    seconds: Annotated[
        int | None, Query(ge=1, le=86_400, description="End the stream after this long.")
    ] = None,
    mode: Mode = "live",
) -> StreamingResponse:
    """Server-sent events: every second, per-second request/error/rejection counts of
    the last few seconds. The caller is checked again before each event: the stream
    ends once they may no longer see the org."""
    scope = org_scope(principal, org_id)

    async def allowed() -> bool:
        try:
            org_scope(await principal_now(request), org_id)
        except Problem:
            return False
        return True

    streams: LiveStreams = request.app.state.live_streams
    slot = streams.try_open(scope, principal.user_id)
    if slot == "replica":
        raise ServiceUnavailable(
            "too-many-streams",
            "Too many live streams; retry shortly.",
            headers={"Retry-After": "5"},
        )
    if isinstance(slot, str):  # the org's or the user's cap
        held = (
            f"this org has {settings.live_max_streams_per_org}"
            if slot == "org"
            else f"this user has {settings.live_max_streams_per_user}"
        )
        raise TooManyRequests(
            "too-many-streams",
            f"Too many live streams: {held} open; close one or retry later.",
            headers={"Retry-After": str(LIVE_RETRY_AFTER_SECONDS)},
        )
    duration = min(seconds or settings.live_max_stream_seconds, settings.live_max_stream_seconds)
    return LiveResponse(
        stream_counts(
            request.app.state.sessions,
            scope,
            mode,
            window=settings.live_window_seconds,
            duration=duration,
            allowed=allowed,
        ),
        slot,
    )
