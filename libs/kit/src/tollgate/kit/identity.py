"""Who may do what right now: the users and memberships replayed from accounts.

Accounts publishes every user's complete authorisation state (active, platform admin,
memberships with roles, sessions revoked at, single sessions ended lately) on the compacted
`tollgate.accounts.users.v1` topic. Each service replays it into an `IdentityState`
(`follow_identity` starts the reader) and authorises every request against it: the
access token still proves who the caller is (verified locally, as before), but what
the caller may do comes from the current state, not the roles the token was issued
with. A role change, removal, deactivation or sign-out applies one fetch round trip after
accounts published it; nothing on the request path calls another service.

Decisions, and their security trade-offs:

- Before the replay has reached the high watermark once, requests get 503
  `identity-replaying` (and `/readyz` says not ready, so a load balancer sends none).
  Falling back to the token's roles would be more available but would let a
  deactivated user act at a restarting replica for the token's lifetime.
- A user the state does not know is judged by its token, as before this state
  existed (counted in `tollgate_identity_token_fallbacks_total`). Accounts publishes
  every user in the transaction that creates it, before any token exists, and again at
  every start, so only a user whose record is still in flight (registered a moment
  ago: its token lists no org) or a token from another issuer of the same keys (test
  harnesses) gets here. Deactivation, removal and role changes concern known users
  and are always decided by the state. The risk accepted: if the topic were lost and
  accounts not restarted (or `republish` not run), users would fall back to their
  tokens' snapshots until it is.
- A caller who asks for an org the state does not list for it may have just created
  that org (or accepted the invitation) and its membership may still be on its way
  (accounts' outbox relay, then one fetch). Such a request waits until the state has
  changed for that user or the reader has synced past `MISS_GRACE` after the request
  arrived (at most `MISS_WAIT`) before it is refused, so a new org works at once with
  the token that created it. The price: a refusal for a foreign org takes ~0.3 s. A
  membership the token lists but a state newer than the one the token was issued from
  (its `sv` claim) lacks was removed: refused without a wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka.structs import ConsumerRecord
from prometheus_client import Counter
from pydantic import ValidationError

from tollgate.contracts import topics
from tollgate.contracts.decoding import decode_as
from tollgate.contracts.events.identity import UserState
from tollgate.kit.auth import Principal, Role, VerifiedToken, unauthorized
from tollgate.kit.problems import ServiceUnavailable
from tollgate.kit.replay import StateFollower, record_key
from tollgate.kit.settings import ServiceSettings

log = logging.getLogger(__name__)

MISS_GRACE = 0.3
"""Seconds after a request arrived by which a membership accounts committed before it
has reached this replica (outbox relay ~50 ms, fetch ~100 ms), with a margin."""
MISS_WAIT = 1.0
"""Upper bound (seconds) on how long a request for an unlisted org waits."""

IDENTITY_RECORDS = Counter(
    "tollgate_identity_records_total",
    "users.v1 records applied to the replayed identity state",
    ["outcome"],
)


TOKEN_FALLBACKS = Counter(
    "tollgate_identity_token_fallbacks_total",
    "requests of users the replayed state does not know, judged by their token",
)


@dataclass(frozen=True)
class UserAccess:
    """What one user may do, as accounts last published it."""

    active: bool
    is_admin: bool
    roles: Mapping[uuid.UUID, Role] = field(default_factory=dict)
    sessions_revoked_at: datetime | None = None
    ended_sessions: frozenset[uuid.UUID] = frozenset()
    version: int = 0
    updated_at: datetime | None = None


class IdentityState:
    """The replayed users, by id; written by the reader, read on every request."""

    def __init__(self) -> None:
        self.users: dict[uuid.UUID, UserAccess] = {}
        self.caught_up = False
        self.synced_at = 0.0
        self._changed: dict[uuid.UUID, asyncio.Event] = {}

    def apply(self, user_id: uuid.UUID, state: UserState | None) -> bool:
        """Apply one record (None: a tombstone, the user is gone); False when it is
        not newer than what is held."""
        held = self.users.get(user_id)
        if state is None:
            self.users.pop(user_id, None)
        elif held is not None and state.version <= held.version:
            return False
        else:
            self.users[user_id] = UserAccess(
                active=state.active,
                is_admin=state.is_admin,
                roles={m.org_id: Role(m.role.value) for m in state.memberships},
                sessions_revoked_at=state.sessions_revoked_at,
                ended_sessions=frozenset(state.ended_sessions),
                version=state.version,
                updated_at=state.updated_at,
            )
        waiter = self._changed.pop(user_id, None)
        if waiter is not None:
            waiter.set()
        return True

    def mark_synced(self, at: float) -> None:
        """Everything published before monotonic time `at` has been applied."""
        self.synced_at = at
        self.caught_up = True

    def apply_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Apply a raw `users.v1` record; an unreadable one is logged and skipped."""
        key = record_key(record)
        try:
            user_id = uuid.UUID(key) if key is not None else None
            state = None if record.value is None else decode_as(record.value, UserState).data
        except (ValidationError, ValueError):
            user_id = None
        if user_id is None:
            IDENTITY_RECORDS.labels("skipped").inc()
            log.error(
                "skipped an unreadable identity record",
                extra={"partition": record.partition, "offset": record.offset},
            )
            return
        outcome = "applied" if self.apply(user_id, state) else "stale"
        IDENTITY_RECORDS.labels(outcome).inc()

    async def current(
        self,
        token: VerifiedToken,
        *,
        wanted_org: uuid.UUID | None = None,
        arrived: float | None = None,
    ) -> Principal:
        """The caller as the current state knows it (roles, admin flag); 401 for a
        deactivated user, a token issued before its sessions were revoked or of a session
        ended since (sign-out of one session), 503 while
        the state is still being replayed; an unknown user as its token says. With `wanted_org`
        (the org the request names) an unlisted membership is waited for briefly."""
        if not self.caught_up:
            raise ServiceUnavailable(
                "identity-replaying", "Authorisation state is still loading; retry shortly."
            )
        token_principal, issued_at = token.principal, token.issued_at
        user_id = token_principal.user_id
        arrived = time.monotonic() if arrived is None else arrived
        access = self.users.get(user_id)
        if (access is None and _token_misses(token_principal, wanted_org)) or (
            access is not None
            and _misses(access, wanted_org)
            and _may_be_in_flight(access, token, wanted_org)
        ):
            access = await self._wait_for(user_id, wanted_org, arrived)
        if access is None:
            TOKEN_FALLBACKS.inc()
            return token_principal
        if not access.active:
            raise unauthorized("User deactivated.")
        revoked = access.sessions_revoked_at
        if revoked is not None and issued_at < int(revoked.timestamp()):
            raise unauthorized("Session revoked; sign in again.")
        if token.session_id is not None and token.session_id in access.ended_sessions:
            raise unauthorized("Session ended; sign in again.")
        return Principal(
            user_id=user_id,
            email=token_principal.email,
            is_admin=access.is_admin,
            org_roles=dict(access.roles),
        )

    async def _wait_for(
        self, user_id: uuid.UUID, wanted_org: uuid.UUID | None, arrived: float
    ) -> UserAccess | None:
        deadline = arrived + MISS_WAIT
        while True:
            access = self.users.get(user_id)
            if access is not None and not _misses(access, wanted_org):
                return access
            now = time.monotonic()
            if now >= deadline or self.synced_at >= arrived + MISS_GRACE:
                return access
            waiter = self._changed.setdefault(user_id, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), timeout=min(0.05, deadline - now))


def _misses(access: UserAccess, wanted_org: uuid.UUID | None) -> bool:
    return wanted_org is not None and not access.is_admin and wanted_org not in access.roles


def _token_misses(token: Principal, wanted_org: uuid.UUID | None) -> bool:
    return wanted_org is not None and not token.is_admin and token.role_in(wanted_org) is None


def _may_be_in_flight(
    access: UserAccess, token: VerifiedToken, wanted_org: uuid.UUID | None
) -> bool:
    """Whether a membership the state lacks may still be on its way: one the token does
    not know of (a new org), or one the token knows of while the state held is not
    newer than the one the token was issued from. A membership the token lists but a
    newer state lacks was removed: refused at once."""
    if wanted_org is None or token.principal.role_in(wanted_org) is None:
        return True
    if token.state_version is not None:
        return access.version <= token.state_version
    # A token without `sv`: `iat` has whole seconds, only a later second is surely newer.
    return access.updated_at is None or access.updated_at.timestamp() < token.issued_at + 1


class IdentityFollower:
    """Replays `tollgate.accounts.users.v1` into an `IdentityState` and follows it."""

    def __init__(self, settings: ServiceSettings, *, client: str) -> None:
        self.state = IdentityState()
        self._follower = StateFollower(
            settings,
            client=f"{client}-identity",
            appliers={topics.ACCOUNTS_USERS: self.state.apply_record},
            on_sync=self.state.mark_synced,
        )

    async def ready(self) -> bool:
        """Readiness check: the users topic has been replayed to its high watermark."""
        return self.state.caught_up

    async def run(self) -> None:
        """Replay and follow until cancelled."""
        await self._follower.run()
