"""SQL of deprecations: who called an API or a route in a window, and what was announced."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.usage.models import NIL, ApiDeprecation


@dataclass(frozen=True)
class ApiCaller:
    """An org that called an API in a window, and how many times."""

    org_id: uuid.UUID
    requests: int


async def live_callers(
    session: AsyncSession,
    api_id: uuid.UUID,
    *,
    start: datetime,
    whole_hours_from: datetime,
    route_id: uuid.UUID | None = None,
) -> list[ApiCaller]:
    """Orgs with live requests (completed or rejected) to the API (to its route
    `route_id`, when given) since `start`, by org id.

    Whole hours from `whole_hours_from` on (the hour of `start` rounded up, up to now)
    come from `usage_org_hour`; the minutes before it from `usage_org_minute`, so the
    window is exact to the minute. Requests without a known org are left out."""
    route = "" if route_id is None else "AND route_id = :route_id"
    rows = await session.execute(
        text(
            f"""
            SELECT org_id, sum(requests) AS requests FROM (
                SELECT org_id, requests FROM usage_org_hour
                WHERE api_id = :api_id {route} AND mode = 'live'
                    AND bucket >= :whole_hours_from
                UNION ALL
                SELECT org_id, requests FROM usage_org_minute
                WHERE api_id = :api_id {route} AND mode = 'live'
                    AND bucket >= :start AND bucket < :whole_hours_from
            ) AS calls
            WHERE org_id <> :nil
            GROUP BY org_id
            HAVING sum(requests) > 0
            ORDER BY org_id
            """
        ),
        {
            "api_id": api_id,
            "route_id": route_id,
            "start": start,
            "whole_hours_from": whole_hours_from,
            "nil": NIL,
        },
    )
    return [ApiCaller(org_id=row.org_id, requests=int(row.requests)) for row in rows]


async def claim_announcement(
    session: AsyncSession,
    *,
    api_id: uuid.UUID,
    route_id: uuid.UUID | None,
    sunset_at: datetime | None,
    api_version: int,
    announced_at: datetime,
) -> int | None:
    """Record that the deprecation of the API (`route_id` None) or of its route with
    this Sunset date is announced now; its row id, or None when it already was (the row
    stays as first written). Claimed before the callers are counted, so a state seen
    again costs one statement, not a scan of the window."""
    stmt = (
        insert(ApiDeprecation)
        .values(
            api_id=api_id,
            route_id=route_id,
            sunset_at=sunset_at,
            api_version=api_version,
            orgs_notified=0,
            announced_at=announced_at,
        )
        .on_conflict_do_nothing(constraint="api_deprecations_once")
        .returning(ApiDeprecation.id)
    )
    claimed: int | None = await session.scalar(stmt)
    return claimed


async def count_notified(session: AsyncSession, announcement_id: int, orgs: int) -> None:
    """How many orgs the claimed announcement told."""
    await session.execute(
        update(ApiDeprecation)
        .where(ApiDeprecation.id == announcement_id)
        .values(orgs_notified=orgs)
    )


async def announcements(
    session: AsyncSession, api_id: uuid.UUID, *, before: int | None, limit: int
) -> list[ApiDeprecation]:
    """The API's announcements (its own and its routes'), newest first, below `before`."""
    stmt = select(ApiDeprecation).where(ApiDeprecation.api_id == api_id)
    if before is not None:
        stmt = stmt.where(ApiDeprecation.id < before)
    stmt = stmt.order_by(ApiDeprecation.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())
