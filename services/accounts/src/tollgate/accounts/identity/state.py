"""Publishing who may do what: every user's authorisation state on `users.v1`.

Every other service authorises requests against the replayed
`tollgate.accounts.users.v1` topic (`tollgate.kit.identity`), so every transaction
that changes what a user may do (registration, admin flag, activity, sessions revoked
or one session ended, a membership created, changed or removed) calls
`publish_user_state` before it commits: the user's row is locked, its `state_version`
increased, and its complete state (memberships read inside the same transaction, and
the sessions ended one by one in the last day, so their access tokens are refused
everywhere) written to the outbox. Two
concurrent changes of one user are serialised by the row lock, so the later version
always carries the later state. `republish_all` writes every user's current state
again without changing versions: at start-up, so a fresh broker (or a lost topic)
gets the whole state, and from `python -m tollgate.accounts republish`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.identity import repository as repo
from tollgate.accounts.models import User
from tollgate.contracts.events.accounts import OrgRole
from tollgate.contracts.events.identity import OrgMembership, UserState
from tollgate.kit.db import SessionMaker
from tollgate.kit.outbox import emit
from tollgate.kit.problems import Problem

log = logging.getLogger(__name__)

REPUBLISH_BATCH = 500
ENDED_SESSIONS_WINDOW = timedelta(seconds=86_400)
"""How long an ended session stays listed: the longest an access token can live
(`access_token_ttl_seconds` is at most a day)."""
MAX_ENDED_SESSIONS = 100
"""The most recently ended sessions listed per user (a bound on the record's size)."""


async def publish_user_state(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Bump the user's state version and write its complete state to the outbox, in
    the caller's transaction (nothing when the user does not exist)."""
    await session.flush()  # memberships added through the ORM must be visible to roles_of
    version = await repo.bump_state_version(session, user_id)
    if version is None:
        return
    user = await repo.fresh_user(session, user_id)
    assert user is not None
    await _emit_state(session, user, version)


async def _emit_state(session: AsyncSession, user: User, version: int) -> None:
    roles = await repo.roles_of(session, user.id)
    # Sessions ended together with all others (sign-out everywhere, password reset,
    # deactivation) are covered by `sessions_revoked_at`; list the ones ended alone.
    since = datetime.now(UTC) - ENDED_SESSIONS_WINDOW
    if user.sessions_revoked_at is not None:
        since = max(since, user.sessions_revoked_at)
    ended = await repo.families_ended_since(session, user.id, since, MAX_ENDED_SESSIONS)
    await emit(
        session,
        UserState(
            user_id=user.id,
            active=user.is_active,
            is_admin=user.is_admin,
            memberships=[
                OrgMembership(org_id=org_id, role=OrgRole(role))
                for org_id, role in sorted(roles.items())
            ],
            sessions_revoked_at=user.sessions_revoked_at,
            ended_sessions=ended,
            version=version,
            updated_at=datetime.now(UTC),
        ),
        subject=str(user.id),
    )


async def republish_all(sessions: SessionMaker) -> int:
    """Write every user's current state to the outbox again (versions unchanged, so
    consumers that hold it ignore it); one transaction per batch. Returns the count."""
    count = 0
    after: uuid.UUID | None = None
    while True:
        async with sessions() as session, session.begin():
            batch = await repo.list_users(
                session, email_prefix=None, active=None, after=after, limit=REPUBLISH_BATCH
            )
            for user in batch:
                try:
                    await _emit_state(session, user, user.state_version)
                except Problem as refused:  # too large to publish: written before the cap
                    log.error(
                        "user state not republished",
                        extra={"user_id": str(user.id), "detail": refused.detail},
                    )
        count += len(batch)
        if len(batch) < REPUBLISH_BATCH:
            return count
        after = batch[-1].id
