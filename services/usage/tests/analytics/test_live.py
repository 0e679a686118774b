"""Live stream slots are shared fairly: one org (or one user) cannot take every stream
of a replica. The streams past a tenant's cap get 429 problem+json with Retry-After,
while another org is still served; slots come back when streams end."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from tollgate.contracts.events.gateway import RequestCompleted, RequestMode
from tollgate.contracts.events.identity import OrgMembership, UserState
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.identity import IdentityState
from tollgate.kit.testing.tokens import TokenMint
from tollgate.usage.app import create_app
from tollgate.usage.config import Settings
from tollgate.usage.ingest.service import Delivery, record_requests
from tollgate.usage.retention.service import PartitionDays, ensure_partitions

from ..factories import completed, migrated


@contextlib.asynccontextmanager
async def api(
    url: str, mint: TokenMint, identity: IdentityState | None = None, **caps: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The usage API in process (no Kafka), streams ending after one second unless
    `caps` says otherwise; `identity`: the replayed identity state it checks callers in."""
    settings = Settings(database_url=url, **{"live_max_stream_seconds": 1, **caps})
    app = create_app(settings, consume=False)
    engine = create_engine(url)
    app.state.sessions = session_maker(engine)
    app.state.jwt_verifier = mint.verifier()
    app.state.jwt_verifier.identity = identity
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://usage") as client:
            yield client
    finally:
        await engine.dispose()


async def streams(
    client: httpx.AsyncClient, *requests: tuple[uuid.UUID | None, dict[str, str]]
) -> list[httpx.Response]:
    """Open the streams concurrently (each runs to its end)."""

    async def one(org: uuid.UUID | None, headers: dict[str, str]) -> httpx.Response:
        params = {"org_id": str(org)} if org else {}
        return await client.get("/v1/usage/live", params=params, headers=headers)

    return list(await asyncio.gather(*(one(org, headers) for org, headers in requests)))


def assert_too_many(reply: httpx.Response, who: str) -> None:
    assert reply.status_code == 429, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert int(reply.headers["retry-after"]) > 0
    assert who in reply.json()["detail"]


async def test_one_org_cannot_take_every_stream(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("usage"))
    mint = TokenMint()
    busy, quiet = uuid.uuid4(), uuid.uuid4()
    members = [mint.headers(orgs={busy: "viewer"}) for _ in range(3)]
    other = mint.headers(orgs={quiet: "viewer"})
    async with api(
        url, mint, live_max_streams=4, live_max_streams_per_org=2, live_max_streams_per_user=5
    ) as client:
        first, second, third, neighbour = await streams(
            client, *((busy, h) for h in members), (quiet, other)
        )
        later = await client.get("/v1/usage/live", params={"org_id": str(busy)}, headers=members[2])
    assert sorted(r.status_code for r in (first, second, third)) == [200, 200, 429]
    assert_too_many(next(r for r in (first, second, third) if r.status_code == 429), "org")
    assert neighbour.status_code == 200, neighbour.text
    assert b"event: counts" in neighbour.content
    assert later.status_code == 200, later.text  # the slots came back


async def test_one_user_cannot_take_every_stream(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("usage"))
    mint = TokenMint()
    orgs = [uuid.uuid4() for _ in range(3)]
    user = mint.headers(orgs=dict.fromkeys(orgs, "viewer"))
    colleague = mint.headers(orgs={orgs[0]: "viewer"})
    async with api(
        url, mint, live_max_streams=10, live_max_streams_per_org=5, live_max_streams_per_user=2
    ) as client:
        replies = await streams(client, *((org, user) for org in orgs), (orgs[0], colleague))
    assert sorted(r.status_code for r in replies[:3]) == [200, 200, 429]
    assert_too_many(next(r for r in replies[:3] if r.status_code == 429), "user")
    assert replies[3].status_code == 200, replies[3].text


async def test_the_replica_cap_still_answers_503(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("usage"))
    mint = TokenMint()
    orgs = [uuid.uuid4() for _ in range(3)]
    async with api(
        url, mint, live_max_streams=2, live_max_streams_per_org=2, live_max_streams_per_user=2
    ) as client:
        replies = await streams(
            client, *((org, mint.headers(orgs={org: "viewer"})) for org in orgs)
        )
    assert sorted(r.status_code for r in replies) == [200, 200, 503]


def _viewer(user: uuid.UUID, org: uuid.UUID, version: int, *, member: bool) -> UserState:
    memberships = [OrgMembership(org_id=org, role="viewer")] if member else []
    return UserState(
        user_id=user,
        active=member,
        is_admin=False,
        memberships=memberships,
        version=version,
        updated_at=datetime.now(UTC),
    )


async def _logged(url: str, events: list[RequestCompleted]) -> None:
    engine = create_engine(url, pool_size=1)
    sessions = session_maker(engine)
    days = {e.time.date() for e in events}
    try:
        async with sessions() as session, session.begin():
            await ensure_partitions(session, days, PartitionDays())
        async with sessions() as session, session.begin():
            deliveries = [Delivery(0, n, e) for n, e in enumerate(events)]
            await record_requests(session, group_id="usage", topic="t", deliveries=deliveries)
    finally:
        await engine.dispose()


def _most_requests(stream: httpx.Response) -> int:
    frames = [f for f in stream.text.split("\n\n") if f.startswith("event: counts")]
    assert frames
    return max(
        sum(int(s["requests"]) for s in orjson.loads(f.split("data: ", 1)[1])["seconds"])
        for f in frames
    )


async def test_a_removed_member_stops_seeing_the_stream(
    database_factory: Callable[[str], str],
) -> None:
    # Before: the stream was authorised once, at open, and ran for its whole
    # `live_max_stream_seconds` (an hour by default): a member removed and deactivated
    # went on seeing the org's traffic.
    url = await migrated(database_factory("usage"))
    org, user = uuid.uuid4(), uuid.uuid4()
    later = datetime.now(UTC) + timedelta(seconds=2)
    await _logged(
        url,
        [
            completed(org_id=org, key_id=uuid.uuid4(), api_id=uuid.uuid4(), time=later)
            for _ in range(5)
        ],
    )
    mint = TokenMint()
    identity = IdentityState()
    identity.apply(user, _viewer(user, org, 1, member=True))
    identity.mark_synced(time.monotonic())
    headers = mint.headers(user_id=user, orgs={org: "viewer"}, state_version=1)

    async def remove_after_a_second() -> None:
        await asyncio.sleep(1)
        identity.apply(user, _viewer(user, org, 2, member=False))

    async with api(url, mint, identity=identity, live_max_stream_seconds=6) as client:
        started = time.monotonic()
        remover = asyncio.create_task(remove_after_a_second())
        stream = await client.get("/v1/usage/live", params={"org_id": str(org)}, headers=headers)
        ended = time.monotonic() - started
        await remover
    assert stream.status_code == 200
    assert ended < 4  # ended at the first tick after the removal, not after 6 s
    assert _most_requests(stream) == 0  # the traffic logged after the removal: never shown


async def test_the_stream_counts_live_traffic_unless_test_is_asked_for(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("usage"))
    org = uuid.uuid4()
    now = datetime.now(UTC)
    events = [
        completed(org_id=org, key_id=uuid.uuid4(), api_id=uuid.uuid4(), time=now) for _ in range(3)
    ]
    events.append(events.pop().model_copy(update={"mode": RequestMode.TEST}))
    await _logged(url, events)
    mint = TokenMint()
    member = mint.headers(orgs={org: "viewer"})
    async with api(url, mint) as client:
        live, test = [
            await client.get(
                "/v1/usage/live", params={"org_id": str(org), "mode": mode}, headers=member
            )
            for mode in ("live", "test")
        ]
    assert (_most_requests(live), _most_requests(test)) == (2, 1)
