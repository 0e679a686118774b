"""`/v1/orgs`: orgs, members, roles and invitations, with the role table enforced."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from tollgate.contracts.events.accounts import MemberInvited
from tollgate.kit.sealing import Sealer

from ..factories import (
    SEALING_KEY,
    add_member,
    events,
    make_admin,
    make_org,
    remember,
    running,
    settings_for,
    signup,
)


async def test_org_lifecycle_and_roles(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        owner = await signup(svc)
        viewer = await signup(svc)
        org_id = await make_org(svc, owner, "Acme")
        await add_member(svc, org_id, viewer, "viewer")

        listed = await svc.http.get("/v1/orgs", headers=owner.headers)
        assert [o["id"] for o in listed.json()["items"]] == [str(org_id)]
        got = await svc.http.get(f"/v1/orgs/{org_id}", headers=viewer.headers)
        assert got.status_code == 200
        assert got.json()["name"] == "Acme"

        renamed = await svc.http.patch(
            f"/v1/orgs/{org_id}", json={"name": "Acme Ltd"}, headers=owner.headers
        )
        assert renamed.json()["name"] == "Acme Ltd"
        assert (
            await svc.http.patch(f"/v1/orgs/{org_id}", json={"name": "X"}, headers=viewer.headers)
        ).status_code == 403
        assert (
            await svc.http.patch(f"/v1/orgs/{org_id}", json={"name": ""}, headers=owner.headers)
        ).status_code == 422
        assert (
            await svc.http.patch(
                f"/v1/orgs/{org_id}",
                json={"name": "X", "id": str(uuid.uuid4())},
                headers=owner.headers,
            )
        ).status_code == 422

        members = await svc.http.get(f"/v1/orgs/{org_id}/members", headers=viewer.headers)
        assert {m["email"]: m["role"] for m in members.json()["items"]} == {
            owner.email: "owner",
            viewer.email: "viewer",
        }
        one = await svc.http.get(f"/v1/orgs/{org_id}/members/{viewer.id}", headers=owner.headers)
        assert one.json()["role"] == "viewer"
        missing = await svc.http.get(
            f"/v1/orgs/{org_id}/members/{uuid.uuid4()}", headers=owner.headers
        )
        assert missing.status_code == 404

        promote = await svc.http.patch(
            f"/v1/orgs/{org_id}/members/{viewer.id}",
            json={"role": "developer"},
            headers=owner.headers,
        )
        assert promote.json()["role"] == "developer"
        by_developer = await svc.http.patch(
            f"/v1/orgs/{org_id}/members/{owner.id}",
            json={"role": "viewer"},
            headers=viewer.headers,
        )
        assert by_developer.status_code == 403
        bad_role = await svc.http.patch(
            f"/v1/orgs/{org_id}/members/{viewer.id}", json={"role": "god"}, headers=owner.headers
        )
        assert bad_role.status_code == 422
        last_owner = await svc.http.patch(
            f"/v1/orgs/{org_id}/members/{owner.id}",
            json={"role": "viewer"},
            headers=owner.headers,
        )
        assert last_owner.status_code == 409
        assert (
            await svc.http.delete(f"/v1/orgs/{org_id}/members/{owner.id}", headers=owner.headers)
        ).status_code == 409

        # A member may leave; removal ends its access at once (roles are read fresh).
        left = await svc.http.delete(
            f"/v1/orgs/{org_id}/members/{viewer.id}", headers=viewer.headers
        )
        assert left.status_code == 204
        assert (await svc.http.get(f"/v1/orgs/{org_id}", headers=viewer.headers)).status_code == 404
        # Removing a member who is already gone is a retried removal: same state, 204;
        # a user who never belonged to the org stays a 404.
        assert (
            await svc.http.delete(f"/v1/orgs/{org_id}/members/{viewer.id}", headers=owner.headers)
        ).status_code == 204
        assert (
            await svc.http.delete(
                f"/v1/orgs/{org_id}/members/{uuid.uuid4()}", headers=owner.headers
            )
        ).status_code == 404


async def test_admin_sees_every_org_and_self_service_can_be_closed(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        self_service_orgs=False,
    )
    async with running(settings) as svc:
        user = await signup(svc)
        admin = await make_admin(svc)
        refused = await svc.http.post("/v1/orgs", json={"name": "Mine"}, headers=user.headers)
        assert refused.status_code == 403
        org_id = await make_org(svc, admin, "Managed")
        got = await svc.http.get(f"/v1/orgs/{org_id}", headers=admin.headers)
        assert got.status_code == 200
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await svc.http.get("/v1/orgs", params=params, headers=admin.headers)).json()
            seen += [o["id"] for o in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert str(org_id) in seen
        assert len(seen) == len(set(seen))
        too_big = await svc.http.get("/v1/orgs", params={"limit": 10_000}, headers=admin.headers)
        assert too_big.status_code == 422
        bad_cursor = await svc.http.get("/v1/orgs", params={"cursor": "%%%"}, headers=admin.headers)
        assert bad_cursor.status_code == 422


async def test_an_invitation_does_not_outlive_its_senders_right_to_send_it(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # Before: an owner could invite a second account of their own as owner, be removed,
    # and come back as an owner by accepting it.
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        alice, mallory, alt, colleague = [await signup(svc) for _ in range(4)]
        org_id = await make_org(svc, alice, "Guarded")
        await add_member(svc, org_id, mallory, "owner")
        tokens = {}
        for invitee in (alt, colleague):
            sent = await svc.http.post(
                f"/v1/orgs/{org_id}/invitations",
                json={"email": invitee.email, "role": "owner"},
                headers=mallory.headers,
            )
            assert sent.status_code == 201
        for event in await events(svc, org_id):
            if isinstance(event.data, MemberInvited):
                token = Sealer(SEALING_KEY).unseal(event.data.invitation_token_sealed).decode()
                remember(token)
                tokens[event.data.email] = token
        # Still an owner: the colleague's invitation stands.
        joined = await svc.http.post(
            "/v1/invitations/accept",
            json={"token": tokens[colleague.email]},
            headers=colleague.headers,
        )
        assert joined.status_code == 200
        removed = await svc.http.delete(
            f"/v1/orgs/{org_id}/members/{mallory.id}", headers=alice.headers
        )
        assert removed.status_code == 204
        void = await svc.http.post(
            "/v1/invitations/accept", json={"token": tokens[alt.email]}, headers=alt.headers
        )
        assert void.status_code == 400
        assert void.json()["type"].endswith("/invitation-void")
        members = await svc.http.get(f"/v1/orgs/{org_id}/members", headers=alice.headers)
        assert alt.email not in members.text
        # A remaining owner can invite the same address again: the void one is replaced.
        again = await svc.http.post(
            f"/v1/orgs/{org_id}/invitations",
            json={"email": alt.email, "role": "viewer"},
            headers=alice.headers,
        )
        assert again.status_code == 201, again.text


async def test_one_user_belongs_to_at_most_orgs_max_per_user_orgs(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # Before: no cap: a user's whole state is one event, and at about 15,000 orgs it
    # outgrew what Kafka takes (the outbox then refuses it, deactivation included).
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        orgs_max_per_user=2,
    )
    async with running(settings) as svc:
        busy, inviter = await signup(svc), await signup(svc)
        await make_org(svc, busy, "One")
        await make_org(svc, busy, "Two")
        third = await svc.http.post("/v1/orgs", json={"name": "Three"}, headers=busy.headers)
        assert third.status_code == 409
        assert third.json()["type"].endswith("/too-many-orgs")
        org_id = await make_org(svc, inviter, "Inviting")
        sent = await svc.http.post(
            f"/v1/orgs/{org_id}/invitations",
            json={"email": busy.email, "role": "viewer"},
            headers=inviter.headers,
        )
        assert sent.status_code == 201
        invited = [e.data for e in await events(svc, org_id) if isinstance(e.data, MemberInvited)]
        token = Sealer(SEALING_KEY).unseal(invited[-1].invitation_token_sealed).decode()
        remember(token)
        joined = await svc.http.post(
            "/v1/invitations/accept", json={"token": token}, headers=busy.headers
        )
        assert joined.status_code == 409
        assert joined.json()["type"].endswith("/too-many-orgs")


async def test_invite_accept_and_revoke(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        owner = await signup(svc)
        invitee = await signup(svc)
        stranger = await signup(svc)
        org_id = await make_org(svc, owner, "Inviting")
        invited = await svc.http.post(
            f"/v1/orgs/{org_id}/invitations",
            json={"email": invitee.email, "role": "developer"},
            headers=owner.headers,
        )
        assert invited.status_code == 201
        assert "token" not in invited.json()
        twice = await svc.http.post(
            f"/v1/orgs/{org_id}/invitations", json={"email": invitee.email}, headers=owner.headers
        )
        assert twice.status_code == 409
        member_self = await svc.http.post(
            f"/v1/orgs/{org_id}/invitations", json={"email": owner.email}, headers=owner.headers
        )
        assert member_self.status_code == 409

        sent = [e for e in await events(svc, org_id) if e.type == MemberInvited.event_type]
        assert len(sent) == 1
        data = sent[0].data
        assert isinstance(data, MemberInvited)
        assert data.email == invitee.email
        assert data.org_name == "Inviting"
        token = Sealer(SEALING_KEY).unseal(data.invitation_token_sealed).decode()
        remember(token)

        # Only the addressee can use it.
        wrong_user = await svc.http.post(
            "/v1/invitations/accept", json={"token": token}, headers=stranger.headers
        )
        assert wrong_user.status_code == 400
        accepted = await svc.http.post(
            "/v1/invitations/accept", json={"token": token}, headers=invitee.headers
        )
        assert accepted.status_code == 200
        assert accepted.json() == {"org_id": str(org_id), "role": "developer"}
        again = await svc.http.post(
            "/v1/invitations/accept", json={"token": token}, headers=invitee.headers
        )
        assert again.status_code == 400
        me = (await svc.http.get("/v1/auth/me", headers=invitee.headers)).json()
        assert me["orgs"] == [{"org_id": str(org_id), "role": "developer"}]

        pending = await svc.http.post(
            f"/v1/orgs/{org_id}/invitations", json={"email": stranger.email}, headers=owner.headers
        )
        listed = await svc.http.get(f"/v1/orgs/{org_id}/invitations", headers=owner.headers)
        assert len(listed.json()["items"]) == 2
        by_developer = await svc.http.get(f"/v1/orgs/{org_id}/invitations", headers=invitee.headers)
        assert by_developer.status_code == 403
        revoked = await svc.http.delete(
            f"/v1/orgs/{org_id}/invitations/{pending.json()['id']}", headers=owner.headers
        )
        assert revoked.status_code == 204
        twice_revoked = await svc.http.delete(
            f"/v1/orgs/{org_id}/invitations/{pending.json()['id']}", headers=owner.headers
        )
        assert twice_revoked.status_code == 204  # a retried revoke: same state
        assert (
            await svc.http.delete(
                f"/v1/orgs/{org_id}/invitations/{uuid.uuid4()}", headers=owner.headers
            )
        ).status_code == 404


async def test_two_owners_demoting_each_other_at_once_leave_one_owner_and_no_error(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # Before: each locked its target first, then the other's row: a deadlock, which
    # Postgres broke by failing one of them with a 500.
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        for _ in range(8):
            a, b = await signup(svc), await signup(svc)
            org = await make_org(svc, a)
            await add_member(svc, org, b, "owner")
            answers = await asyncio.gather(
                svc.http.patch(
                    f"/v1/orgs/{org}/members/{b.id}", json={"role": "viewer"}, headers=a.headers
                ),
                svc.http.patch(
                    f"/v1/orgs/{org}/members/{a.id}", json={"role": "viewer"}, headers=b.headers
                ),
            )
            assert sorted(r.status_code for r in answers) == [200, 409]
