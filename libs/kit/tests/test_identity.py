"""Authorising against the replayed identity state, not the token's role snapshot:
a lowered role, a removal, a deactivation and revoked sessions apply to tokens issued
before them; a new org works with the token that predates it once its membership
arrives; nothing is decided before the state is replayed. In process: an app with
the kit's `CurrentPrincipal`, a minted token, and records applied as the reader would.
(The same against a real broker and real services: tests/system/test_identity_and_audit.py.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI

from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.accounts import OrgRole
from tollgate.contracts.events.identity import OrgMembership, UserState
from tollgate.kit.auth import CurrentPrincipal, Role, authorize_org
from tollgate.kit.identity import MISS_WAIT, IdentityState
from tollgate.kit.service import create_app
from tollgate.kit.testing.tokens import TokenMint


def user_state(
    user_id: uuid.UUID,
    *,
    version: int,
    roles: dict[uuid.UUID, str] | None = None,
    active: bool = True,
    admin: bool = False,
    revoked_at: datetime | None = None,
    ended: list[uuid.UUID] | None = None,
) -> UserState:
    """A users.v1 payload as accounts publishes it."""
    return UserState(
        user_id=user_id,
        active=active,
        is_admin=admin,
        memberships=[
            OrgMembership(org_id=org, role=OrgRole(role)) for org, role in (roles or {}).items()
        ],
        sessions_revoked_at=revoked_at,
        ended_sessions=ended or [],
        version=version,
        updated_at=datetime.now(UTC),
    )


def caught_up_state() -> IdentityState:
    state = IdentityState()
    state.mark_synced(time.monotonic())
    return state


def org_app(state: IdentityState | None, mint: TokenMint) -> FastAPI:
    """A service with one org-scoped route that needs the developer role."""

    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        yield

    app = create_app(
        service="t", title="t", description="t", lifespan=lifespan, max_body_bytes=1024
    )
    verifier = mint.verifier()
    verifier.identity = state
    app.state.jwt_verifier = verifier

    @app.post("/v1/orgs/{org_id}/things")
    async def make_thing(org_id: uuid.UUID, principal: CurrentPrincipal) -> dict[str, str]:
        authorize_org(principal, org_id, Role.developer)
        return {"ok": "yes"}

    return app


async def call(app: FastAPI, org: uuid.UUID, token: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post(
            f"/v1/orgs/{org}/things", headers={"Authorization": f"Bearer {token}"}
        )


async def test_a_lowered_role_is_refused_although_the_token_says_developer() -> None:
    mint, state = TokenMint(), caught_up_state()
    user, org = uuid.uuid4(), uuid.uuid4()
    token = mint.token(user_id=user, orgs={org: "developer"})
    state.apply(user, user_state(user, version=1, roles={org: "developer"}))
    app = org_app(state, mint)
    assert (await call(app, org, token)).status_code == 200

    state.apply(user, user_state(user, version=2, roles={org: "viewer"}))
    refused = await call(app, org, token)
    assert refused.status_code == 403
    assert refused.json()["type"].endswith("/forbidden")


async def test_a_removed_member_gets_404_after_the_grace_wait() -> None:
    mint, state = TokenMint(), caught_up_state()
    user, org = uuid.uuid4(), uuid.uuid4()
    token = mint.token(user_id=user, orgs={org: "owner"})
    state.apply(user, user_state(user, version=1, roles={}))
    app = org_app(state, mint)

    async def keep_syncing() -> None:
        while True:
            state.mark_synced(time.monotonic())
            await asyncio.sleep(0.02)

    syncing = asyncio.create_task(keep_syncing())
    try:
        started = time.monotonic()
        refused = await call(app, org, token)
        waited = time.monotonic() - started
    finally:
        syncing.cancel()
    assert refused.status_code == 404
    assert waited < MISS_WAIT + 0.2


async def test_a_removal_is_refused_at_once_when_the_state_is_newer_than_the_token() -> None:
    mint, state = TokenMint(), caught_up_state()
    user, org = uuid.uuid4(), uuid.uuid4()
    token = mint.token(user_id=user, orgs={org: "owner"}, state_version=3)
    app = org_app(state, mint)
    state.apply(user, user_state(user, version=4, roles={}))
    started = time.monotonic()
    assert (await call(app, org, token)).status_code == 404
    assert time.monotonic() - started < 0.2  # no wait for a membership in flight


async def test_a_membership_the_token_knows_is_awaited_while_the_state_is_older() -> None:
    mint, state = TokenMint(), caught_up_state()
    user, org = uuid.uuid4(), uuid.uuid4()
    token = mint.token(user_id=user, orgs={org: "owner"}, state_version=4)
    state.apply(user, user_state(user, version=3, roles={}))
    app = org_app(state, mint)

    async def membership_arrives() -> None:
        await asyncio.sleep(0.1)
        state.apply(user, user_state(user, version=4, roles={org: "owner"}))

    arrival = asyncio.create_task(membership_arrives())
    assert (await call(app, org, token)).status_code == 200
    await arrival


async def test_deactivated_users_and_revoked_sessions_are_refused_with_401() -> None:
    mint, state = TokenMint(), caught_up_state()
    user, org = uuid.uuid4(), uuid.uuid4()
    old_token = mint.token(user_id=user, orgs={org: "owner"})
    app = org_app(state, mint)

    state.apply(
        user,
        user_state(
            user,
            version=1,
            roles={org: "owner"},
            revoked_at=datetime.now(UTC) + timedelta(seconds=2),
        ),
    )
    revoked = await call(app, org, old_token)
    assert revoked.status_code == 401
    assert "revoked" in revoked.json()["detail"]

    state.apply(user, user_state(user, version=2, roles={org: "owner"}, active=False))
    deactivated = await call(app, org, old_token)
    assert deactivated.status_code == 401
    assert "deactivated" in deactivated.json()["detail"]


async def test_a_token_of_a_session_ended_alone_is_refused_the_others_still_work() -> None:
    mint, state = TokenMint(), caught_up_state()
    user, org = uuid.uuid4(), uuid.uuid4()
    laptop, phone = uuid.uuid4(), uuid.uuid4()
    signed_out = mint.token(user_id=user, orgs={org: "owner"}, session_id=laptop)
    still_in = mint.token(user_id=user, orgs={org: "owner"}, session_id=phone)
    app = org_app(state, mint)
    state.apply(user, user_state(user, version=1, roles={org: "owner"}))
    assert (await call(app, org, signed_out)).status_code == 200

    state.apply(user, user_state(user, version=2, roles={org: "owner"}, ended=[laptop]))
    refused = await call(app, org, signed_out)
    assert refused.status_code == 401
    assert "ended" in refused.json()["detail"]
    assert (await call(app, org, still_in)).status_code == 200


async def test_an_unknown_user_is_judged_by_its_token_a_known_one_by_the_state() -> None:
    mint, state = TokenMint(), caught_up_state()
    user, org = uuid.uuid4(), uuid.uuid4()
    admin_token = mint.token(user_id=user, admin=True)
    app = org_app(state, mint)
    assert (await call(app, org, admin_token)).status_code == 200  # not published (yet)

    state.mark_synced(time.monotonic() + 10)  # nothing more is coming
    state.apply(user, user_state(user, version=1, admin=False))
    assert (await call(app, org, admin_token)).status_code == 404
    state.apply(user, user_state(user, version=2, admin=True))
    assert (await call(app, org, admin_token)).status_code == 200


async def test_a_new_org_works_with_the_token_that_created_it() -> None:
    mint, state = TokenMint(), caught_up_state()
    user, org = uuid.uuid4(), uuid.uuid4()
    token = mint.token(user_id=user, orgs={})  # signed in before the org existed
    state.apply(user, user_state(user, version=1))
    app = org_app(state, mint)

    async def membership_arrives() -> None:
        await asyncio.sleep(0.15)  # the outbox relay and one fetch
        state.apply(user, user_state(user, version=2, roles={org: "owner"}))

    arrival = asyncio.create_task(membership_arrives())
    answered = await call(app, org, token)
    await arrival
    assert answered.status_code == 200


async def test_stale_versions_and_redelivered_records_change_nothing() -> None:
    state = caught_up_state()
    user, org = uuid.uuid4(), uuid.uuid4()
    assert state.apply(user, user_state(user, version=5, roles={org: "owner"}))
    assert not state.apply(user, user_state(user, version=4, roles={}))
    assert not state.apply(user, user_state(user, version=5, roles={}))
    assert state.users[user].roles == {org: Role.owner}


async def test_records_are_decoded_and_bad_records_skipped() -> None:
    state = caught_up_state()
    user, org = uuid.uuid4(), uuid.uuid4()
    value = encode(new_event(user_state(user, version=1, roles={org: "viewer"}), source="t/t/t"))
    state.apply_record(record(str(user).encode(), value, offset=0))
    state.apply_record(record(b"not-a-uuid", value, offset=1))
    state.apply_record(record(str(uuid.uuid4()).encode(), b"{garbage", offset=2))
    assert list(state.users) == [user]
    state.apply_record(record(str(user).encode(), None, offset=3))  # tombstone
    assert state.users == {}


async def test_nothing_is_decided_before_the_state_is_replayed() -> None:
    mint = TokenMint()
    user, org = uuid.uuid4(), uuid.uuid4()
    answered = await call(
        org_app(IdentityState(), mint), org, mint.token(user_id=user, orgs={org: "owner"})
    )
    assert answered.status_code == 503
    assert answered.json()["type"].endswith("/identity-replaying")


async def test_without_a_replayed_state_the_token_decides() -> None:
    mint = TokenMint()
    user, org = uuid.uuid4(), uuid.uuid4()
    token = mint.token(user_id=user, orgs={org: "developer"})
    assert (await call(org_app(None, mint), org, token)).status_code == 200


def record(key: bytes | None, value: bytes | None, *, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        topic="tollgate.accounts.users.v1",
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=key,
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=(),
    )
