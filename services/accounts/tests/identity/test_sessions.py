"""The caller's own sessions and password: list them (which one is this), end one
(another user's session id is a 404), and change the password, which ends every other
session everywhere (published in the user's state) and continues the caller's in a
new one."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path

from tollgate.contracts.events.identity import UserState

from ..factories import User, events, login, remember, running, settings_for, signup


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
