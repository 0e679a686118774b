"""Every change to what a user may do puts the user's complete state on
`tollgate.accounts.users.v1` (through the outbox, in the same transaction), with a
version that only grows; accounts republishes every user when it starts."""

from __future__ import annotations

import uuid
from pathlib import Path

import jwt

from tollgate.accounts.identity import state as user_state
from tollgate.contracts.events.accounts import MemberInvited
from tollgate.contracts.events.identity import UserState
from tollgate.kit.sealing import Sealer

from ..factories import (
    SEALING_KEY,
    Service,
    events,
    login,
    make_admin,
    make_org,
    remember,
    running,
    settings_for,
    signup,
)


async def states(svc: Service, user_id: uuid.UUID) -> list[UserState]:
    """The user's states in the outbox, oldest first."""
    return [e.data for e in await events(svc, user_id) if isinstance(e.data, UserState)]


def roles(state: UserState) -> dict[uuid.UUID, str]:
    return {m.org_id: str(m.role) for m in state.memberships}


async def test_each_change_of_a_users_access_publishes_its_whole_state(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        owner = await signup(svc)
        member = await signup(svc)
        org_id = await make_org(svc, owner)
        assert roles((await states(svc, owner.id))[-1]) == {org_id: "owner"}

        await svc.http.post(
            f"/v1/orgs/{org_id}/invitations",
            json={"email": member.email, "role": "developer"},
            headers=owner.headers,
        )
        invited = [e.data for e in await events(svc, org_id) if isinstance(e.data, MemberInvited)]
        token = Sealer(SEALING_KEY).unseal(invited[0].invitation_token_sealed).decode()
        remember(token)
        accepted = await svc.http.post(
            "/v1/invitations/accept", json={"token": token}, headers=member.headers
        )
        assert accepted.status_code == 200
        lowered = await svc.http.patch(
            f"/v1/orgs/{org_id}/members/{member.id}", json={"role": "viewer"}, headers=owner.headers
        )
        assert lowered.status_code == 200
        removed = await svc.http.delete(
            f"/v1/orgs/{org_id}/members/{member.id}", headers=owner.headers
        )
        assert removed.status_code == 204
        deactivated = await svc.http.post(
            f"/v1/users/{member.id}/deactivate", headers=admin.headers
        )
        assert deactivated.status_code == 200

        history = await states(svc, member.id)
        assert [(s.active, roles(s)) for s in history] == [
            (True, {}),  # registered
            (True, {org_id: "developer"}),  # invitation accepted
            (True, {org_id: "viewer"}),  # role lowered
            (True, {}),  # removed
            (False, {}),  # deactivated
        ]
        versions = [s.version for s in history]
        assert versions == sorted(set(versions))
        assert history[-1].sessions_revoked_at is not None
        assert (await states(svc, admin.id))[-1].is_admin


async def test_a_start_republishes_every_user_without_changing_versions(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        owner = await signup(svc)
        org_id = await make_org(svc, owner)
        before = await states(svc, owner.id)
        count = await user_state.republish_all(svc.sessions)
        after = await states(svc, owner.id)
    assert count >= 1
    assert len(after) == len(before) + 1
    assert after[-1].version == before[-1].version
    assert roles(after[-1]) == {org_id: "owner"}


async def test_a_session_ended_alone_is_published_so_its_access_tokens_die_everywhere(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        user = await signup(svc)
        laptop = _sid(user.access_token)
        logged_out = await svc.http.post(
            "/v1/auth/logout", json={"refresh_token": user.refresh_token}, headers=user.headers
        )
        assert logged_out.status_code == 204
        assert (await login(svc, user)).status_code == 200  # a second session
        phone = _sid(user.access_token)
        ended = await svc.http.delete(f"/v1/auth/sessions/{phone}", headers=user.headers)
        assert ended.status_code == 204
        published = await states(svc, user.id)
    assert published[-2].ended_sessions == [laptop]
    assert published[-1].ended_sessions == [phone, laptop]  # latest first
    assert published[-1].version == published[-2].version + 1


def _sid(access_token: str) -> uuid.UUID:
    return uuid.UUID(jwt.decode(access_token, options={"verify_signature": False})["sid"])
