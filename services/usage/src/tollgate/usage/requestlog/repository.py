"""SQL of the request log: filtered keyset pages and lookup by request id."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.usage.models import RequestLogEntry


@dataclass(frozen=True)
class LogFilter:
    """Which log rows a listing covers; None leaves a field unrestricted."""

    start: datetime
    end: datetime
    org_id: uuid.UUID | None = None
    all_orgs: bool = False
    key_id: uuid.UUID | None = None
    api_id: uuid.UUID | None = None
    route_id: uuid.UUID | None = None
    status: int | None = None
    status_class: int | None = None  # 2 for 2xx ... 5 for 5xx
    outcome: str | None = None
    reason: str | None = None
    path_prefix: str | None = None
    mode: str | None = None


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _conditions(where: LogFilter) -> list[ColumnElement[bool]]:
    log = RequestLogEntry
    conditions: list[ColumnElement[bool]] = [log.time >= where.start, log.time < where.end]
    if not where.all_orgs:
        conditions.append(log.org_id == where.org_id)
    for name in ("key_id", "api_id", "route_id", "status", "outcome", "reason", "mode"):
        value = getattr(where, name)
        if value is not None:
            conditions.append(getattr(log, name) == value)
    if where.status_class is not None:
        low = where.status_class * 100
        conditions.extend([log.status >= low, log.status < low + 100])
    if where.path_prefix:
        conditions.append(log.path.like(_like_prefix(where.path_prefix), escape="\\"))
    return conditions


async def page(
    session: AsyncSession,
    where: LogFilter,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[RequestLogEntry]:
    """Up to `limit` rows, newest first, strictly after the keyset position `after`."""
    log = RequestLogEntry
    conditions = _conditions(where)
    if after is not None:
        conditions.append(tuple_(log.time, log.request_id) < tuple_(*after))
    stmt = (
        select(log).where(*conditions).order_by(log.time.desc(), log.request_id.desc()).limit(limit)
    )
    return list(await session.scalars(stmt))


async def by_request_id(session: AsyncSession, request_id: uuid.UUID) -> RequestLogEntry | None:
    """The log row of a request, or None (unknown or past retention)."""
    found: RequestLogEntry | None = await session.scalar(
        select(RequestLogEntry).where(RequestLogEntry.request_id == request_id).limit(1)
    )
    return found


@dataclass(frozen=True)
class SecondCounts:
    """Requests in one second of one org (or of all orgs)."""

    second: datetime
    requests: int
    errors: int
    rejected: int


async def counts_per_second(
    session: AsyncSession, org_id: uuid.UUID | None, mode: str, start: datetime, end: datetime
) -> list[SecondCounts]:
    """Per-second request, error (completed, status ≥ 400) and rejection counts in
    [start, end) of `mode` (live or test keys) for one org (None: all orgs), seconds
    without traffic left out."""
    log = RequestLogEntry
    second = func.date_trunc("second", log.time).label("second")
    conditions: list[ColumnElement[bool]] = [
        log.time >= start,
        log.time < end,
        log.mode == mode,
    ]
    if org_id is not None:
        conditions.append(log.org_id == org_id)
    stmt = (
        select(
            second,
            func.count().label("requests"),
            func.count()
            .filter(and_(log.outcome == "completed", log.status >= 400))
            .label("errors"),
            func.count().filter(log.outcome == "rejected").label("rejected"),
        )
        .where(*conditions)
        .group_by(second)
    )
    return [
        SecondCounts(row.second, int(row.requests), int(row.errors), int(row.rejected))
        for row in await session.execute(stmt)
    ]
