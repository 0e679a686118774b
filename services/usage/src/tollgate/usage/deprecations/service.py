"""Deprecation notices: when an API or one of its routes is deprecated, tell each org
that called it lately.

Usage follows the API registry (`tollgate.accounts.apis.v1`). An API state with status
`deprecated` and a Sunset date not yet announced for that API (no date counts as one
value) is announced: every org whose live keys called the API in the last `WINDOW`
(test-mode calls never count; rejected calls do, the org still depends on the API)
gets one `ApiDeprecationAnnounced` through the outbox, in the same transaction that
records the (API, Sunset date) in `api_deprecations`. Routes likewise, each on its
own: a route marked deprecated, with a Sunset date not yet announced for it, is
announced to the orgs whose live keys called that route, one
`RouteDeprecationAnnounced` each, recorded as (API, route, Sunset date). So a
redelivered or republished state, or any other change of a deprecated API (a route's
price), never announces again, and moving a Sunset date announces the new date once.
A Sunset date already past is not announced (about to be retired; a late replay of an
old state must not mail anyone), nor are active or retired APIs, nor the routes of a
retired API. Never commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.contracts.events.accounts import ApiStatus, ApiUpserted
from tollgate.contracts.events.usage import ApiDeprecationAnnounced, RouteDeprecationAnnounced
from tollgate.kit.outbox import emit_many
from tollgate.usage.deprecations import repository

WINDOW = timedelta(days=30)
"""How far back a call makes an org one of the API's (or the route's) callers."""


def _window(now: datetime) -> tuple[datetime, datetime]:
    """The window's start, to the minute, and the first whole hour in it."""
    start = (now - WINDOW).replace(second=0, microsecond=0)
    whole_hours_from = start.replace(minute=0)
    if whole_hours_from < start:
        whole_hours_from += timedelta(hours=1)
    return start, whole_hours_from


def _announceable(sunset_at: datetime | None, now: datetime) -> bool:
    return sunset_at is None or sunset_at > now


async def _callers_to_tell(
    session: AsyncSession,
    api: ApiUpserted,
    route_id: uuid.UUID | None,
    sunset_at: datetime | None,
    now: datetime,
) -> list[repository.ApiCaller] | None:
    """The recent live callers of the API (or of its route `route_id`) to tell of this
    Sunset date, recorded with how many they are; None when it was announced before.
    Claimed first, so a state seen again costs one statement, not a window's scan."""
    claimed = await repository.claim_announcement(
        session,
        api_id=api.api_id,
        route_id=route_id,
        sunset_at=sunset_at,
        api_version=api.version,
        announced_at=now,
    )
    if claimed is None:
        return None
    start, whole_hours_from = _window(now)
    callers = await repository.live_callers(
        session, api.api_id, start=start, whole_hours_from=whole_hours_from, route_id=route_id
    )
    await repository.count_notified(session, claimed, len(callers))
    return callers


async def announce_deprecation(
    session: AsyncSession, api: ApiUpserted, now: datetime
) -> list[ApiDeprecationAnnounced]:
    """Announce the API's deprecation to its recent live callers if this (API, Sunset
    date) was never announced; returns the notices enqueued (none otherwise)."""
    if api.status is not ApiStatus.DEPRECATED or not _announceable(api.sunset_at, now):
        return []
    callers = await _callers_to_tell(session, api, None, api.sunset_at, now)
    if callers is None:
        return []
    start, _ = _window(now)
    notices = [
        ApiDeprecationAnnounced(
            org_id=caller.org_id,
            api_id=api.api_id,
            api_slug=api.slug,
            api_name=api.name,
            api_version=api.api_version,
            deprecated_at=api.deprecated_at,
            sunset_at=api.sunset_at,
            requests=caller.requests,
            window_start=start,
            window_end=now,
        )
        for caller in callers
    ]
    await emit_many(session, [(notice, str(api.api_id)) for notice in notices])
    return notices


async def announce_route_deprecations(
    session: AsyncSession, api: ApiUpserted, now: datetime
) -> list[RouteDeprecationAnnounced]:
    """Announce each deprecated route of the API to its recent live callers if this
    (route, Sunset date) was never announced; returns the notices enqueued."""
    if api.status is ApiStatus.RETIRED:
        return []
    start, _ = _window(now)
    notices: list[RouteDeprecationAnnounced] = []
    for route in api.routes:
        if not route.deprecated or not _announceable(route.sunset_at, now):
            continue
        callers = await _callers_to_tell(session, api, route.route_id, route.sunset_at, now)
        if callers is None:
            continue
        notices += [
            RouteDeprecationAnnounced(
                org_id=caller.org_id,
                api_id=api.api_id,
                api_slug=api.slug,
                api_name=api.name,
                api_version=api.api_version,
                route_id=route.route_id,
                method=route.method,
                path_template=route.path_template,
                deprecated_at=route.deprecated_at,
                sunset_at=route.sunset_at,
                requests=caller.requests,
                window_start=start,
                window_end=now,
            )
            for caller in callers
        ]
    await emit_many(session, [(notice, str(notice.route_id)) for notice in notices])
    return notices
