"""Who is calling: the verified human behind a request, with roles read fresh.

Accounts verifies its own access tokens with its own keyring, then reloads the user
and its memberships from the database, so a removed member, a demoted owner, a
deactivated user, or a session that ended (logout, refresh-token reuse, password
reset; the token's `sid` names its session) loses access at once here, not when the
token expires. Other services authorise against the same state replayed from
`tollgate.accounts.users.v1` (`tollgate.kit.identity`), a fraction of a second later.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from tollgate.accounts.identity import repository as users
from tollgate.accounts.identity.signing import SigningKeyring
from tollgate.kit.auth import BearerToken, Principal, Role, unauthorized
from tollgate.kit.clientip import PROXY_SECRET_HEADER, TrustedProxies
from tollgate.kit.db import SessionMaker
from tollgate.kit.logs import request_id_var


@dataclass(frozen=True)
class Actor:
    """The caller of a mutating request, as the audit log records it."""

    principal: Principal | None
    ip: str | None
    request_id: str | None

    @property
    def user_id(self) -> uuid.UUID | None:
        return self.principal.user_id if self.principal else None


def client_ip(request: Request) -> str | None:
    """The client address for throttles and the audit log: the TCP peer, or behind a
    proxy listed in `trusted_proxies` or sending one of `proxy_secrets` (the console,
    whose address a deployment rarely knows in advance) the nearest untrusted
    `X-Forwarded-For` hop."""
    if request.client is None:
        return None
    proxies: TrustedProxies = request.app.state.trusted_proxies
    secrets: tuple[bytes, ...] = request.app.state.proxy_secrets
    offered = request.headers.get(PROXY_SECRET_HEADER, "").encode()
    vouched = bool(offered) and any(hmac.compare_digest(offered, s) for s in secrets)
    # Repeated headers are one list (RFC 9110 §5.3); the proxy appended to the last.
    forwarded_for = ",".join(request.headers.getlist("x-forwarded-for"))
    return proxies.client_ip(request.client.host, forwarded_for, vouched=vouched)


async def _caller(request: Request, token: BearerToken) -> Principal:
    keyring: SigningKeyring = request.app.state.keyring
    claims = keyring.verify(token)
    try:
        user_id = uuid.UUID(str(claims["sub"]))
        family_id = uuid.UUID(str(claims["sid"])) if "sid" in claims else None
    except (KeyError, ValueError) as exc:
        raise unauthorized("Invalid token claims.") from exc
    sessions: SessionMaker = request.app.state.sessions
    async with sessions() as session, session.begin():
        user = await users.get_user(session, user_id)
        roles = await users.roles_of(session, user_id) if user is not None else {}
        ended = family_id is not None and await users.family_revoked(session, family_id)
    if user is None or not user.is_active:
        raise unauthorized("Unknown or inactive user.")
    if ended:
        raise unauthorized("Session ended; sign in again.")
    revoked = user.sessions_revoked_at
    if revoked is not None and int(claims.get("iat", 0)) < int(revoked.timestamp()):
        raise unauthorized("Session revoked; sign in again.")
    request.state.session_id = family_id  # which of its sessions is "current"
    return Principal(
        user_id=user.id,
        email=user.email,
        is_admin=user.is_admin,
        org_roles={org: Role(role) for org, role in roles.items()},
    )


CurrentCaller = Annotated[Principal, Depends(_caller)]
"""FastAPI dependency: the verified caller with roles from the database."""


async def _actor(request: Request, principal: CurrentCaller) -> Actor:
    return Actor(principal=principal, ip=client_ip(request), request_id=request_id_var.get())


CurrentActor = Annotated[Actor, Depends(_actor)]
"""FastAPI dependency: the caller plus what the audit log needs (IP, request id)."""


def current_session(request: Request) -> uuid.UUID | None:
    """The session (`sid`) of the caller's access token, once `CurrentCaller` ran."""
    session_id: uuid.UUID | None = getattr(request.state, "session_id", None)
    return session_id


def anonymous_actor(request: Request) -> Actor:
    """The actor of an unauthenticated call (register, login, password reset)."""
    return Actor(principal=None, ip=client_ip(request), request_id=request_id_var.get())
