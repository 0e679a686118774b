"""Refreshing a session once per refresh token: accounts revokes a session whose refresh
token is presented twice (the fake keeps that rule), so requests of one browser that
find the same session expiring must not each exchange it."""

from __future__ import annotations

import asyncio

import pytest

from tollgate.console.refreshes import SessionRefreshes
from tollgate.console.session import Session

from .fakes import FakeBackends, console, sign_in


async def test_requests_in_flight_with_one_expiring_session_refresh_it_once() -> None:
    fake = FakeBackends(token_ttl=10)  # inside the refresh margin
    async with console(fake) as client:
        await sign_in(client)
        keys, usage = await asyncio.gather(
            client.get(f"/orgs/{fake.org_id}/keys"), client.get(f"/orgs/{fake.org_id}/usage")
        )
    assert (keys.status_code, usage.status_code) == (200, 200)
    assert fake.refreshes == 1
    assert not fake.refresh_family_revoked
    assert "tg_session=" in keys.headers["set-cookie"]
    assert "tg_session=" in usage.headers["set-cookie"]


async def test_a_request_with_the_cookie_just_refreshed_gets_the_same_new_session() -> None:
    fake = FakeBackends(token_ttl=10)
    async with console(fake) as client:
        await sign_in(client)
        fake.token_ttl = 900  # the refreshed session is good for a while
        old = client.cookies["tg_session"]
        assert (await client.get(f"/orgs/{fake.org_id}/keys")).status_code == 200
        # A request that left the browser before that answer set the new cookie.
        client.cookies.delete("tg_session")
        client.cookies.set("tg_session", old, domain="console.test")
        late = await client.get(f"/orgs/{fake.org_id}/live/stream")
        assert late.status_code == 200
        assert "tg_session=" in late.headers["set-cookie"]  # the new session, again
        assert (await client.get(f"/orgs/{fake.org_id}/keys")).status_code == 200
    assert fake.refreshes == 1
    assert fake.live_tokens == ["Bearer access-1"]
    assert not fake.refresh_family_revoked


async def test_waiting_requests_share_one_exchange_and_its_failure() -> None:
    refreshes = SessionRefreshes()
    started: list[str] = []
    release = asyncio.Event()

    async def exchange(refresh_token: str) -> Session:
        started.append(refresh_token)
        await release.wait()
        if refresh_token == "spent":
            raise PermissionError("refused")
        return Session("access-new", f"{refresh_token}-next", 2e9)

    old = Session("access-old", "r0", 0)
    waiting = [asyncio.create_task(refreshes.refreshed(old, exchange)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    sessions = await asyncio.gather(*waiting)
    assert started == ["r0"]
    assert {s.refresh_token for s in sessions} == {"r0-next"}
    # A cookie two refreshes old gets the newest session of its line.
    newer = await refreshes.refreshed(sessions[0], exchange)
    assert (await refreshes.refreshed(old, exchange)) == newer
    assert started == ["r0", "r0-next"]

    spent = Session("access-old", "spent", 0)
    failing = [asyncio.create_task(refreshes.refreshed(spent, exchange)) for _ in range(2)]
    for task in failing:
        with pytest.raises(PermissionError):
            await task
    with pytest.raises(PermissionError):
        await refreshes.refreshed(spent, exchange)  # a failure is not kept: tried again
    assert started.count("spent") == 2


async def test_new_sessions_are_kept_a_while_and_in_bounded_number() -> None:
    calls: list[str] = []

    async def exchange(refresh_token: str) -> Session:
        calls.append(refresh_token)
        return Session("a", f"{refresh_token}+{len(calls)}", 2e9)

    bounded = SessionRefreshes(max_kept=2)
    for token in ("r1", "r2", "r3"):
        await bounded.refreshed(Session("a", token, 0), exchange)
    await bounded.refreshed(Session("a", "r1", 0), exchange)  # pushed out by r3
    await bounded.refreshed(Session("a", "r3", 0), exchange)  # still kept
    assert calls == ["r1", "r2", "r3", "r1"]

    brief = SessionRefreshes(keep_seconds=0.001)
    await brief.refreshed(Session("a", "r1", 0), exchange)
    await asyncio.sleep(0.01)
    await brief.refreshed(Session("a", "r1", 0), exchange)
    assert calls[-2:] == ["r1", "r1"]
