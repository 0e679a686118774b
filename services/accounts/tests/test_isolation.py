"""Tenant isolation: every route that takes an id, called by each role of another org
with the first org's ids (and with its own org plus the first org's member,
invitation and key ids), answers 404 and changes nothing. The route list is read
from the app's OpenAPI schema, so a new id-taking route is walked automatically."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from .factories import (
    Service,
    User,
    add_member,
    make_admin,
    make_api,
    make_key,
    make_org,
    running,
    settings_for,
    signup,
)

BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/v1/orgs/{org_id}"): {"name": "pwned"},
    ("PATCH", "/v1/orgs/{org_id}/members/{user_id}"): {"role": "viewer"},
    ("POST", "/v1/orgs/{org_id}/invitations"): {"email": "intruder@example.com"},
    ("POST", "/v1/orgs/{org_id}/keys"): {"name": "intruder"},
    ("PATCH", "/v1/keys/{key_id}"): {"enabled": False},
    ("POST", "/v1/keys/{key_id}/rotate"): {"grace_seconds": 0},
}
# The API registry is platform-level (admins manage it, members read it) and so is user
# administration (admins only, 403 for everyone else: tests/identity/test_users_api.py)
# and the public catalog (tests/catalog): not tenant data.
PLATFORM = re.compile(r"^/v1/(apis|users|catalog)")


async def _state(svc: Service, owner: User, org_id: uuid.UUID, key_id: str) -> Any:
    org = (await svc.http.get(f"/v1/orgs/{org_id}", headers=owner.headers)).json()
    members = (await svc.http.get(f"/v1/orgs/{org_id}/members", headers=owner.headers)).json()
    invitations = (
        await svc.http.get(f"/v1/orgs/{org_id}/invitations", headers=owner.headers)
    ).json()
    key = (await svc.http.get(f"/v1/keys/{key_id}", headers=owner.headers)).json()
    keys = (await svc.http.get(f"/v1/orgs/{org_id}/keys", headers=owner.headers)).json()
    return org, members, invitations, key, keys


async def test_no_route_reaches_another_orgs_objects(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        await make_api(svc, admin)
        owner_a, member_a = await signup(svc), await signup(svc)
        org_a = await make_org(svc, owner_a, "Victim")
        await add_member(svc, org_a, member_a, "developer")
        key_a = await make_key(svc, owner_a, org_a)
        invitation_a = (
            await svc.http.post(
                f"/v1/orgs/{org_a}/invitations",
                json={"email": "invitee@example.com"},
                headers=owner_a.headers,
            )
        ).json()["id"]

        intruders = {
            "owner": await signup(svc),
            "developer": await signup(svc),
            "viewer": await signup(svc),
        }
        org_b = await make_org(svc, intruders["owner"], "Intruder")
        for role in ("developer", "viewer"):
            await add_member(svc, org_b, intruders[role], role)
        key_b = await make_key(svc, intruders["owner"], org_b)
        for user in intruders.values():  # fresh tokens are not needed: roles are read live
            assert user.access_token

        sessions_a = await svc.http.get("/v1/auth/sessions", headers=member_a.headers)
        member_session_a = sessions_a.json()["items"][0]["id"]
        before = await _state(svc, owner_a, org_a, key_a["id"])
        victim_ids = {
            "org_id": org_a,
            "user_id": member_a.id,
            "key_id": key_a["id"],
            "invitation_id": invitation_a,
            "session_id": member_session_a,
        }
        # Own org in the path, the victim's object in the rest of it.
        mixed_ids = {**victim_ids, "org_id": org_b}

        routes = [
            (path, operations)
            for path, operations in svc.app.openapi()["paths"].items()
            if "{" in path and not PLATFORM.match(path)
        ]
        tried = 0
        for route_path, operations in routes:
            for method in sorted(m.upper() for m in operations):
                for ids in (victim_ids, mixed_ids):
                    own_org_only = route_path == "/v1/orgs/{org_id}" or route_path.endswith(
                        ("/members", "/invitations", "/keys")
                    )
                    if ids is mixed_ids and ("{org_id}" not in route_path or own_org_only):
                        continue  # the intruder's own org alone: allowed, covers nothing of A's
                    path = route_path.format(**{k: str(v) for k, v in ids.items()})
                    for role, user in intruders.items():
                        response = await svc.http.request(
                            method,
                            path,
                            json=BODIES.get((method, route_path)),
                            headers=user.headers,
                        )
                        tried += 1
                        # In its own org a low role may be refused first (403): that
                        # says nothing about the victim's objects either.
                        allowed = {404} if ids is victim_ids else {403, 404}
                        assert response.status_code in allowed, (role, method, path, response.text)
                        assert response.headers["content-type"] == "application/problem+json"
                        # ... with a slug the route's OpenAPI documents for its status.
                        documented = operations[method.lower()]["responses"][
                            str(response.status_code)
                        ]["x-problem-types"]
                        slug = response.json()["type"].rsplit("/", 1)[1]
                        assert slug in documented, (method, route_path, slug, documented)
        audit = [
            await svc.http.get("/v1/audit", params={"org_id": str(org_a)}, headers=u.headers)
            for u in intruders.values()
        ]
        assert [r.status_code for r in audit] == [404, 404, 404]
        tried += len(audit)
        accept = await svc.http.post(
            "/v1/invitations/accept", json={"token": "x" * 43}, headers=intruders["owner"].headers
        )
        assert accept.status_code == 400
        tried += 1

        after = await _state(svc, owner_a, org_a, key_a["id"])
        assert after == before
        # The victim member's session was not ended by anyone else.
        assert (await svc.http.get("/v1/auth/me", headers=member_a.headers)).status_code == 200
        assert key_b["org_id"] == str(org_b)
        operations = sum(len(ops) for _, ops in routes)
        assert operations >= 16
        print(
            f"\ntenant isolation: {tried} cross-tenant combinations over {operations} "
            f"id-taking operations ({len(routes)} paths), 0 leaks"
        )
