"""`/v1/users`: platform admins list, read, deactivate and reactivate users. A
deactivated user's sessions end at once (access and refresh tokens), it cannot sign in
(told exactly what a wrong password is told), every change is audited, and nobody but
an admin reaches any of it."""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Any

from tollgate.kit.testing.pages import check_list_contract

from ..factories import (
    User,
    login,
    make_admin,
    make_org,
    running,
    settings_for,
    signup,
    unique_email,
)


def _settings(accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Any:
    return settings_for(accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path)


async def test_admin_lists_users_with_filters_and_pages(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        admin = await make_admin(svc)
        tag = f"list{secrets.token_hex(3)}"
        users = [await signup(svc, email=unique_email(tag), login_now=False) for _ in range(3)]

        ids: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"email_prefix": tag.upper(), "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = await svc.http.get("/v1/users", params=params, headers=admin.headers)
            assert page.status_code == 200
            ids += [u["id"] for u in page.json()["items"]]
            pages += 1
            cursor = page.json()["next_cursor"]
            if not cursor:
                break
        assert pages == 2
        assert ids == [str(u.id) for u in users]  # creation order
        await check_list_contract(
            svc.http,
            "/v1/users",
            headers=admin.headers,
            params={"email_prefix": tag},
            expected={str(u.id) for u in users},
        )
        item = page.json()["items"][0]
        assert item["is_active"] is True
        assert "password_hash" not in page.text
        assert "totp_secret" not in page.text

        deactivated = await svc.http.post(
            f"/v1/users/{users[1].id}/deactivate", headers=admin.headers
        )
        assert deactivated.status_code == 200
        for active, expected in ((False, [users[1]]), (True, [users[0], users[2]])):
            filtered = await svc.http.get(
                "/v1/users", params={"email_prefix": tag, "active": active}, headers=admin.headers
            )
            assert [u["id"] for u in filtered.json()["items"]] == [str(u.id) for u in expected]

        # LIKE wildcards in the prefix are plain characters.
        wildcard = await svc.http.get(
            "/v1/users", params={"email_prefix": tag[:2] + "%"}, headers=admin.headers
        )
        assert wildcard.json()["items"] == []
        for bad in ({"limit": 201}, {"cursor": "bm9wZQ"}, {"email_prefix": ""}):
            response = await svc.http.get("/v1/users", params=bad, headers=admin.headers)
            assert response.status_code == 422, bad
            assert response.headers["content-type"] == "application/problem+json"


async def test_deactivation_ends_sessions_at_once_and_reactivation_allows_sign_in(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        admin = await make_admin(svc)
        user = await signup(svc)
        assert (await svc.http.get("/v1/auth/me", headers=user.headers)).status_code == 200
        old_access, old_refresh = user.access_token, user.refresh_token

        response = await svc.http.post(f"/v1/users/{user.id}/deactivate", headers=admin.headers)
        assert response.status_code == 200
        assert response.json()["is_active"] is False
        assert (await svc.http.get("/v1/auth/me", headers=user.headers)).status_code == 401
        refresh = await svc.http.post("/v1/auth/refresh", json={"refresh_token": old_refresh})
        assert refresh.status_code == 401

        refused = await login(svc, user)
        wrong = await login(svc, User(user.id, user.email, "wrong-password"))
        assert refused.status_code == wrong.status_code == 401
        assert refused.json()["detail"] == wrong.json()["detail"]
        shown = await svc.http.get(f"/v1/users/{user.id}", headers=admin.headers)
        assert shown.json()["is_active"] is False

        again = await svc.http.post(f"/v1/users/{user.id}/deactivate", headers=admin.headers)
        assert again.status_code == 200  # idempotent, and not audited twice

        back = await svc.http.post(f"/v1/users/{user.id}/reactivate", headers=admin.headers)
        assert back.status_code == 200
        assert back.json()["is_active"] is True
        # The sessions that were ended stay ended.
        stale = await svc.http.get("/v1/auth/me", headers={"Authorization": f"Bearer {old_access}"})
        assert stale.status_code == 401
        refresh = await svc.http.post("/v1/auth/refresh", json={"refresh_token": old_refresh})
        assert refresh.status_code == 401
        assert (await login(svc, user)).status_code == 200
        assert (await svc.http.get("/v1/auth/me", headers=user.headers)).status_code == 200

        audit = await svc.http.get(
            "/v1/audit", params={"target_id": str(user.id)}, headers=admin.headers
        )
        entries = [e for e in audit.json()["items"] if e["action"].startswith("user.")]
        assert [(e["action"], e["diff"]) for e in entries] == [
            ("user.reactivate", {"before": {"is_active": False}, "after": {"is_active": True}}),
            ("user.deactivate", {"before": {"is_active": True}, "after": {"is_active": False}}),
            ("user.register", {"email": user.email, "is_admin": False}),
        ]
        assert {e["actor_id"] for e in entries[:2]} == {str(admin.id)}
        failed = [e for e in audit.json()["items"] if e["action"] == "auth.login_failed"]
        assert [e["diff"]["reason"] for e in failed] == ["wrong_password", "inactive"]


async def test_an_admin_grants_and_revokes_platform_admin_audited(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        admin = await make_admin(svc)
        user = await signup(svc)
        assert (await svc.http.get("/v1/users", headers=user.headers)).status_code == 403

        granted = await svc.http.post(f"/v1/users/{user.id}/grant-admin", headers=admin.headers)
        assert granted.status_code == 200
        assert granted.json()["is_admin"] is True
        # Roles are read live: the same token is an admin's now.
        assert (await svc.http.get("/v1/users", headers=user.headers)).status_code == 200
        again = await svc.http.post(f"/v1/users/{user.id}/grant-admin", headers=admin.headers)
        assert again.status_code == 200  # idempotent, and not audited twice

        # The new admin cannot revoke itself; it can revoke the one who granted it.
        itself = await svc.http.post(f"/v1/users/{user.id}/revoke-admin", headers=user.headers)
        assert itself.status_code == 409
        assert itself.headers["content-type"] == "application/problem+json"
        revoked = await svc.http.post(f"/v1/users/{user.id}/revoke-admin", headers=admin.headers)
        assert revoked.json()["is_admin"] is False
        assert (await svc.http.get("/v1/users", headers=user.headers)).status_code == 403
        forged = await svc.http.post(f"/v1/users/{user.id}/grant-admin", headers=user.headers)
        assert forged.status_code == 403
        me = await svc.http.get("/v1/auth/me", headers=user.headers)
        assert me.json()["is_admin"] is False

        audit = await svc.http.get(
            "/v1/audit", params={"target_id": str(user.id)}, headers=admin.headers
        )
        entries = [e for e in audit.json()["items"] if e["action"].endswith("_admin")]
        assert [(e["action"], e["diff"], e["actor_id"]) for e in entries] == [
            (
                "user.demote_admin",
                {"before": {"is_admin": True}, "after": {"is_admin": False}},
                str(admin.id),
            ),
            (
                "user.promote_admin",
                {"before": {"is_admin": False}, "after": {"is_admin": True}},
                str(admin.id),
            ),
        ]


# (method, path after /v1/users/{id}) of every route that takes a user id.
PER_USER = [
    ("GET", ""),
    ("POST", "/deactivate"),
    ("POST", "/reactivate"),
    ("POST", "/grant-admin"),
    ("POST", "/revoke-admin"),
]


async def test_user_routes_are_for_admins_only_and_404_for_unknown_ids(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with running(_settings(accounts_db, kafka_bootstrap, topic_prefix, tmp_path)) as svc:
        admin = await make_admin(svc)
        owner = await signup(svc)
        await make_org(svc, owner)  # an org owner is still not a platform admin
        target = await signup(svc)
        existing = [(method, f"/v1/users/{target.id}{rest}") for method, rest in PER_USER]
        unknown = [(method, f"/v1/users/{uuid.uuid4()}{rest}") for method, rest in PER_USER]
        for method, path in [("GET", "/v1/users"), *existing, *unknown]:
            forbidden = await svc.http.request(method, path, headers=owner.headers)
            assert forbidden.status_code == 403, (method, path)
            assert forbidden.headers["content-type"] == "application/problem+json"
            anonymous = await svc.http.request(method, path)
            assert anonymous.status_code == 401, (method, path)
        assert (await svc.http.get("/v1/auth/me", headers=target.headers)).status_code == 200

        for method, path in unknown:
            missing = await svc.http.request(method, path, headers=admin.headers)
            assert missing.status_code == 404, (method, path)
            assert missing.headers["content-type"] == "application/problem+json"
        malformed = await svc.http.get("/v1/users/not-a-uuid", headers=admin.headers)
        assert malformed.status_code == 422

        # An admin cannot lock itself (and possibly the platform) out.
        itself = await svc.http.post(f"/v1/users/{admin.id}/deactivate", headers=admin.headers)
        assert itself.status_code == 409
        assert (await svc.http.get("/v1/auth/me", headers=admin.headers)).status_code == 200
        other_admin = await make_admin(svc)
        deactivated = await svc.http.post(
            f"/v1/users/{other_admin.id}/deactivate", headers=admin.headers
        )
        assert deactivated.status_code == 200
        assert (await svc.http.get("/v1/users", headers=other_admin.headers)).status_code == 401
