"""Deprecation notices on a real Postgres: exactly the orgs whose live keys called the API
(or the deprecated route) in the last 30 days get one notice each (an older call,
test-mode calls, calls to another API or route and calls without an org do not count); a
redelivered or republished state announces nothing more, a moved Sunset date announces
once again, an active API or a past Sunset date nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from tollgate.contracts import decode
from tollgate.contracts.events.accounts import ApiStatus, ApiUpserted, RouteSpec
from tollgate.contracts.events.gateway import RequestMode
from tollgate.contracts.events.usage import ApiDeprecationAnnounced, RouteDeprecationAnnounced
from tollgate.kit.db import SessionMaker
from tollgate.usage.deprecations.service import (
    announce_deprecation,
    announce_route_deprecations,
)
from tollgate.usage.models import outbox

from ..factories import completed, rejected
from ..ingest.test_service import as_deliveries, ingest, usage_db


def api_state(
    api_id: uuid.UUID,
    *,
    status: ApiStatus = ApiStatus.DEPRECATED,
    sunset_at: datetime | None = None,
    version: int = 2,
) -> ApiUpserted:
    """An API's registry state as accounts publishes it."""
    return ApiUpserted(
        api_id=api_id,
        slug="weather",
        name="Weather",
        api_version="v1",
        upstream_url="https://weather.internal.example",
        status=status,
        deprecated_at=datetime.now(UTC) if status is ApiStatus.DEPRECATED else None,
        sunset_at=sunset_at,
        timeout_ms=5000,
        price=1,
        charge_failed_calls=False,
        version=version,
        updated_at=datetime.now(UTC),
    )


async def announce(sessions: SessionMaker, api: ApiUpserted, now: datetime) -> dict[uuid.UUID, int]:
    """Run the rule in its own transaction; the notices enqueued, as org -> requests."""
    async with sessions() as session, session.begin():
        notices = await announce_deprecation(session, api, now)
    return {n.org_id: n.requests for n in notices}


async def outbox_notices(sessions: SessionMaker) -> list[ApiDeprecationAnnounced]:
    async with sessions() as session:
        values = (await session.scalars(select(outbox.c.value).order_by(outbox.c.id))).all()
    return [
        data
        for data in (decode(value).data for value in values)
        if isinstance(data, ApiDeprecationAnnounced)
    ]


async def test_recent_live_callers_are_told_once_per_sunset_date(
    database_factory: Callable[[str], str],
) -> None:
    now = datetime.now(UTC)
    window_start = (now - timedelta(days=30)).replace(second=0, microsecond=0)
    api, other_api = uuid.uuid4(), uuid.uuid4()
    recent, edge, stale, tester, elsewhere = (uuid.uuid4() for _ in range(5))
    key = uuid.uuid4
    events = [
        *(
            completed(org_id=recent, key_id=key(), api_id=api, time=now - timedelta(days=2))
            for _ in range(3)
        ),
        # Rejected calls count: the org still depends on the API.
        rejected(org_id=recent, key_id=key(), api_id=api, time=now - timedelta(hours=1)),
        # Inside the window by a minute, outside it by two: the window is exact to the
        # minute, not to the hour.
        completed(org_id=edge, key_id=key(), api_id=api, time=window_start + timedelta(minutes=1)),
        completed(org_id=stale, key_id=key(), api_id=api, time=window_start - timedelta(minutes=2)),
        completed(org_id=stale, key_id=key(), api_id=api, time=now - timedelta(days=40)),
        completed(org_id=tester, key_id=key(), api_id=api, time=now - timedelta(days=1)).model_copy(
            update={"mode": RequestMode.TEST}
        ),
        completed(org_id=elsewhere, key_id=key(), api_id=other_api, time=now - timedelta(days=1)),
        rejected(org_id=None, key_id=None, api_id=api, time=now - timedelta(days=1)),
    ]
    sunset = now + timedelta(days=90)
    async with usage_db(database_factory) as sessions:
        await ingest(sessions, as_deliveries(events))

        assert await announce(sessions, api_state(api, status=ApiStatus.ACTIVE), now) == {}
        told = await announce(sessions, api_state(api, sunset_at=sunset), now)
        assert told == {recent: 4, edge: 1}
        # Kafka redelivers the state; accounts republishes it with a route's new price.
        assert await announce(sessions, api_state(api, sunset_at=sunset), now) == {}
        assert await announce(sessions, api_state(api, sunset_at=sunset, version=3), now) == {}

        later = sunset + timedelta(days=30)
        assert await announce(sessions, api_state(api, sunset_at=later, version=4), now) == told
        past = now - timedelta(days=1)
        assert await announce(sessions, api_state(api, sunset_at=past, version=5), now) == {}

        notices = await outbox_notices(sessions)
    assert sorted((n.org_id, n.sunset_at) for n in notices) == sorted(
        (org, date) for org in (recent, edge) for date in (sunset, later)
    )
    first = next(n for n in notices if n.org_id == recent and n.sunset_at == sunset)
    assert (first.api_id, first.api_slug, first.requests) == (api, "weather", 4)
    assert (first.window_start, first.window_end) == (window_start, now)


async def test_a_deprecation_without_a_sunset_date_is_announced_once(
    database_factory: Callable[[str], str],
) -> None:
    now = datetime.now(UTC)
    api, org = uuid.uuid4(), uuid.uuid4()
    async with usage_db(database_factory) as sessions:
        call = completed(org_id=org, key_id=uuid.uuid4(), api_id=api, time=now)
        await ingest(sessions, as_deliveries([call]))
        assert await announce(sessions, api_state(api), now) == {org: 1}
        assert await announce(sessions, api_state(api, version=3), now) == {}
        sunset = now + timedelta(days=60)
        assert await announce(sessions, api_state(api, sunset_at=sunset, version=4), now) == {
            org: 1
        }


def route(
    route_id: uuid.UUID,
    path: str,
    *,
    deprecated: bool = True,
    sunset_at: datetime | None = None,
) -> RouteSpec:
    return RouteSpec(
        route_id=route_id,
        method="GET",
        path_template=path,
        deprecated=deprecated,
        deprecated_at=datetime(2026, 11, 1, tzinfo=UTC) if deprecated else None,
        sunset_at=sunset_at,
    )


async def announce_routes(
    sessions: SessionMaker, api: ApiUpserted, now: datetime
) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
    """Run the route rule in its own transaction; (org, route) -> requests enqueued."""
    async with sessions() as session, session.begin():
        notices = await announce_route_deprecations(session, api, now)
    return {(n.org_id, n.route_id): n.requests for n in notices}


async def test_a_deprecated_routes_recent_callers_are_told_once_per_sunset_date(
    database_factory: Callable[[str], str],
) -> None:
    """Only the orgs that called the deprecated route itself hear of it (not the API's
    other callers, not test-mode calls); once per (route, Sunset date), however often the
    state comes again; a past Sunset date or a retired API tells nobody."""
    now = datetime.now(UTC)
    api = uuid.uuid4()
    old_route, kept_route = uuid.uuid4(), uuid.uuid4()
    caller, other_caller, tester = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    key = uuid.uuid4
    day_ago = now - timedelta(days=1)
    events = [
        *(
            completed(org_id=caller, key_id=key(), api_id=api, route_id=old_route, time=day_ago)
            for _ in range(2)
        ),
        completed(org_id=other_caller, key_id=key(), api_id=api, route_id=kept_route, time=day_ago),
        completed(
            org_id=tester, key_id=key(), api_id=api, route_id=old_route, time=day_ago
        ).model_copy(update={"mode": RequestMode.TEST}),
    ]
    sunset = now + timedelta(days=30)
    routes = [
        route(old_route, "/forecast/{city}", sunset_at=sunset),
        route(kept_route, "/now", deprecated=False),
    ]
    state = api_state(api, status=ApiStatus.ACTIVE).model_copy(update={"routes": routes})
    async with usage_db(database_factory) as sessions:
        await ingest(sessions, as_deliveries(events))

        assert await announce_routes(sessions, state, now) == {(caller, old_route): 2}
        assert await announce_routes(sessions, state, now) == {}  # redelivered
        # The whole API deprecated later: its own notice; the route's is not repeated.
        deprecated = state.model_copy(update={"status": ApiStatus.DEPRECATED, "version": 3})
        assert await announce_routes(sessions, deprecated, now) == {}
        assert await announce(sessions, deprecated, now) == {caller: 2, other_caller: 1}

        later = sunset + timedelta(days=30)
        moved = [route(old_route, "/forecast/{city}", sunset_at=later), routes[1]]
        assert await announce_routes(
            sessions, state.model_copy(update={"routes": moved, "version": 4}), now
        ) == {(caller, old_route): 2}
        past = [route(old_route, "/forecast/{city}", sunset_at=now - timedelta(hours=1))]
        assert (
            await announce_routes(
                sessions, state.model_copy(update={"routes": past, "version": 5}), now
            )
            == {}
        )
        undated = [route(old_route, "/forecast/{city}")]
        retired = state.model_copy(
            update={"routes": undated, "status": ApiStatus.RETIRED, "version": 6}
        )
        assert await announce_routes(sessions, retired, now) == {}

        async with sessions() as session:
            values = (await session.scalars(select(outbox.c.value).order_by(outbox.c.id))).all()
    notices = [
        data
        for data in (decode(value).data for value in values)
        if isinstance(data, RouteDeprecationAnnounced)
    ]
    assert [(n.org_id, n.sunset_at) for n in notices] == [(caller, sunset), (caller, later)]
    first = notices[0]
    assert (first.method, first.path_template, first.api_slug) == (
        "GET",
        "/forecast/{city}",
        "weather",
    )
    assert first.deprecated_at == datetime(2026, 11, 1, tzinfo=UTC)
