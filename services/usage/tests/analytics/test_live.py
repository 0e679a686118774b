"""Live stream slots are shared fairly: one org (or one user) cannot take every stream
of a replica. The streams past a tenant's cap get 429 problem+json with Retry-After,
while another org is still served; slots come back when streams end."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.testing.tokens import TokenMint
from tollgate.usage.app import create_app
from tollgate.usage.config import Settings

from ..factories import migrated


@contextlib.asynccontextmanager
async def api(url: str, mint: TokenMint, **caps: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The usage API in process (no Kafka), streams ending after one second."""
    settings = Settings(database_url=url, live_max_stream_seconds=1, **caps)
    app = create_app(settings, consume=False)
    engine = create_engine(url)
    app.state.sessions = session_maker(engine)
    app.state.jwt_verifier = mint.verifier()
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
