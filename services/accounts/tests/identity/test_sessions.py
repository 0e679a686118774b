"""The caller's own sessions and password: list them (which one is this), end one
(another user's session id is a 404), and change the password, which ends every other
session everywhere (published in the user's state) and continues the caller's in a
new one."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tollgate.accounts.identity import repository as repo
from tollgate.accounts.identity import service as identity
from tollgate.accounts.identity.tokens import new_secret
from tollgate.contracts.events.identity import UserState
from tollgate.contracts.ids import uuid7

from ..factories import Service, User, events, login, remember, running, settings_for, signup


async def test_sessions_are_listed_and_ended_by_their_owner_only(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        laptop = await signup(svc)
        phone = User(laptop.id, laptop.email, laptop.password)
        assert (await login(svc, phone)).status_code == 200
        other = await signup(svc)

        listed = await svc.http.get("/v1/auth/sessions", headers=laptop.headers)
        assert listed.status_code == 200
        items = listed.json()["items"]
        assert len(items) == 2
        assert sum(item["current"] for item in items) == 1
        mine = {item["id"] for item in items}
        phone_session = next(
            item["id"]
            for item in (await svc.http.get("/v1/auth/sessions", headers=phone.headers)).json()[
                "items"
            ]
            if item["current"]
        )
        assert phone_session in mine
        assert "refresh_token" not in listed.text
        assert laptop.refresh_token not in listed.text

        others = (await svc.http.get("/v1/auth/sessions", headers=other.headers)).json()
        other_session = others["items"][0]["id"]
        assert other_session not in mine
        foreign = await svc.http.delete(
            f"/v1/auth/sessions/{other_session}", headers=laptop.headers
        )
        assert foreign.status_code == 404
        unknown = await svc.http.delete(f"/v1/auth/sessions/{uuid.uuid4()}", headers=laptop.headers)
        assert unknown.status_code == 404
        assert (await svc.http.get("/v1/auth/me", headers=other.headers)).status_code == 200

        ended = await svc.http.delete(f"/v1/auth/sessions/{phone_session}", headers=laptop.headers)
        assert ended.status_code == 204
        again = await svc.http.delete(f"/v1/auth/sessions/{phone_session}", headers=laptop.headers)
        assert again.status_code == 204
        assert (await svc.http.get("/v1/auth/me", headers=phone.headers)).status_code == 401
        renewed = await svc.http.post(
            "/v1/auth/refresh", json={"refresh_token": phone.refresh_token}
        )
        assert renewed.status_code == 401
        left = (await svc.http.get("/v1/auth/sessions", headers=laptop.headers)).json()
        assert [item["id"] for item in left["items"]] == list(mine - {phone_session})


async def test_changing_the_password_ends_every_other_session_everywhere(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        laptop = await signup(svc)
        phone = User(laptop.id, laptop.email, laptop.password)
        assert (await login(svc, phone)).status_code == 200
        new_password = "new-" + secrets.token_urlsafe(12)
        remember(new_password)

        wrong = await svc.http.post(
            "/v1/auth/password",
            json={"current_password": "not-it-at-all", "new_password": new_password},
            headers=laptop.headers,
        )
        assert wrong.status_code == 400
        weak = await svc.http.post(
            "/v1/auth/password",
            json={"current_password": laptop.password, "new_password": "short"},
            headers=laptop.headers,
        )
        assert weak.status_code == 422
        # 30 characters, 90 bytes: more than bcrypt reads. Before: a 500, and a slot of
        # the sign-in throttle used up.
        too_long = await svc.http.post(
            "/v1/auth/password",
            json={"current_password": laptop.password, "new_password": "密" * 30},
            headers=laptop.headers,
        )
        assert too_long.status_code == 422
        assert too_long.json()["type"].endswith("/password-too-long")
        changed = await svc.http.post(
            "/v1/auth/password",
            json={"current_password": laptop.password, "new_password": new_password},
            headers=laptop.headers,
        )
        assert changed.status_code == 200, changed.text
        fresh = changed.json()
        remember(fresh["access_token"], fresh["refresh_token"])
        assert new_password not in changed.text

        assert (await svc.http.get("/v1/auth/me", headers=phone.headers)).status_code == 401
        assert (await svc.http.get("/v1/auth/me", headers=laptop.headers)).status_code == 401
        fresh_headers = {"Authorization": f"Bearer {fresh['access_token']}"}
        assert (await svc.http.get("/v1/auth/me", headers=fresh_headers)).status_code == 200
        for old in (phone.refresh_token, laptop.refresh_token):
            refused = await svc.http.post("/v1/auth/refresh", json={"refresh_token": old})
            assert refused.status_code == 401
        sessions = (await svc.http.get("/v1/auth/sessions", headers=fresh_headers)).json()
        assert [item["current"] for item in sessions["items"]] == [True]

        assert (await login(svc, laptop)).status_code == 401  # the old password
        laptop.password = new_password
        assert (await login(svc, laptop)).status_code == 200

        state = [e.data for e in await events(svc, laptop.id) if isinstance(e.data, UserState)]
        assert state[-1].sessions_revoked_at is not None  # other services refuse old tokens


async def _sign_out_everywhere(svc: Service, victim: User) -> httpx.Response:
    return await svc.http.post(
        "/v1/auth/logout",
        json={"refresh_token": victim.refresh_token, "everywhere": True},
        headers=victim.headers,
    )


async def _reset_the_password(svc: Service, victim: User) -> httpx.Response:
    raw, hashed = new_secret()
    async with svc.sessions() as session, session.begin():  # as the emailed link would
        await repo.insert_password_reset(
            session,
            id=uuid7(),
            user_id=victim.id,
            token_hash=hashed,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
    return await svc.http.post(
        "/v1/auth/password-reset/confirm",
        json={"token": raw, "new_password": "a-new-password-" + secrets.token_hex(4)},
    )


@pytest.mark.parametrize("end_them", [_sign_out_everywhere, _reset_the_password])
async def test_a_rotation_in_flight_does_not_outlive_ending_every_session(
    accounts_db: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    end_them: Callable[[Service, User], Awaitable[httpx.Response]],
) -> None:
    # Before: ending every session revoked the tokens it could see; a rotation not yet
    # committed issued one it could not, and that session went on refreshing for good
    # (its access tokens accepted by every other service).
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        victim = await signup(svc)
        thief = User(victim.id, victim.email, victim.password)
        assert (await login(svc, thief)).status_code == 200
        async with svc.sessions() as session:
            rotating = await session.begin()
            pair = await identity.refresh(
                session, settings, svc.app.state.keyring, thief.refresh_token
            )
            assert isinstance(pair, identity.TokenPair)
            ending = asyncio.create_task(end_them(svc, victim))
            await asyncio.sleep(0.5)  # it waits for the rotation, or it does not
            await rotating.commit()
        assert (await ending).status_code in (200, 204)
        again = await svc.http.post("/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
        assert again.status_code == 401


@pytest.mark.parametrize("how", ["logout", "end-session"])
async def test_ending_one_session_while_it_rotates_waits_instead_of_deadlocking(
    accounts_db: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A rotation locks the user, then the token; ending one session locked the token,
    # then the user (publishing the user state): a deadlock, and a 500.
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        laptop = await signup(svc)
        phone = User(laptop.id, laptop.email, laptop.password)
        assert (await login(svc, phone)).status_code == 200
        items = (await svc.http.get("/v1/auth/sessions", headers=phone.headers)).json()["items"]
        phone_session = next(item["id"] for item in items if item["current"])
        real = repo.lock_refresh_token
        rotating: set[int] = set()

        async def slow_lock(session: Any, token_hash: str) -> Any:
            if id(session) in rotating:
                await asyncio.sleep(0.5)  # the rotation holds the user; the other one runs
            return await real(session, token_hash)

        monkeypatch.setattr(repo, "lock_refresh_token", slow_lock)

        async def end_it() -> httpx.Response:
            await asyncio.sleep(0.1)
            if how == "logout":
                return await svc.http.post(
                    "/v1/auth/logout",
                    json={"refresh_token": phone.refresh_token},
                    headers=phone.headers,
                )
            return await svc.http.delete(
                f"/v1/auth/sessions/{phone_session}", headers=phone.headers
            )

        async with svc.sessions() as session:
            rotation = await session.begin()
            rotating.add(id(session))
            ending = asyncio.create_task(end_it())
            pair = await identity.refresh(
                session, settings, svc.app.state.keyring, phone.refresh_token
            )
            assert isinstance(pair, identity.TokenPair)
            await rotation.commit()
        assert (await ending).status_code == 204
        again = await svc.http.post("/v1/auth/refresh", json={"refresh_token": pair.refresh_token})
        assert again.status_code == 401  # the session it rotated is the one ended
