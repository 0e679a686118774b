"""HTTP transport of `/v1/auth/*`, `/.well-known/jwks.json` and the admins' `/v1/users`:
validate, authorize, delegate, own the transaction."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.caller import (
    CurrentActor,
    CurrentCaller,
    anonymous_actor,
    current_session,
)
from tollgate.accounts.config import CurrentSettings
from tollgate.accounts.identity import passwords, service, throttle
from tollgate.accounts.identity.schemas import (
    AcceptedOut,
    AdminUserOut,
    EmailVerifyIn,
    LogoutIn,
    MeOut,
    OrgRoleOut,
    PasswordChangeIn,
    PasswordResetConfirmIn,
    PasswordResetIn,
    RecoveryCodesOut,
    RefreshIn,
    RegisterIn,
    SessionOut,
    TokenOut,
    TotpDisableIn,
    TotpEnableIn,
    TotpEnrollOut,
    UserOut,
)
from tollgate.accounts.identity.signing import SigningKeyring
from tollgate.kit.auth import require_admin, unauthorized
from tollgate.kit.db import DbSession
from tollgate.kit.pagination import (
    DEFAULT_PAGE_SIZE,
    Cursor,
    Page,
    PageSize,
    next_cursor_of,
    uuid_cursor,
)
from tollgate.kit.problems import Forbidden, Problem, ServiceUnavailable, TooManyRequests
from tollgate.kit.requests import NUL_FREE

router = APIRouter(prefix="/auth", tags=["auth"])
jwks_router = APIRouter(tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"])

RESET_ACCEPTED = "If the address belongs to an account, a reset link is on its way."
VERIFICATION_SENT = "A new verification link is on its way to your email address."


def _keyring(request: Request) -> SigningKeyring:
    keyring: SigningKeyring = request.app.state.keyring
    if not keyring.available:
        raise ServiceUnavailable("signing-unavailable", "No token signing key is configured.")
    return keyring


_THROTTLED_DETAIL = {
    throttle.PAIR: "Too many failed attempts for this account from your address; try again later.",
    throttle.ACCOUNT: "Too many failed attempts for this account; try again later.",
    throttle.IP: "Too many failed attempts from your address; try again later.",
}


def _throttled(refused: throttle.Throttled, slug: str) -> Problem:
    """429 naming the full limit (`ip_account`, `account` or `ip`) and when to retry."""
    return TooManyRequests(
        slug,
        _THROTTLED_DETAIL[refused.limit],
        headers={"Retry-After": str(refused.retry_after)},
        limit=refused.limit,
        retry_after=refused.retry_after,
    )


def _token_out(pair: service.TokenPair | service.LoginRefused) -> TokenOut:
    if isinstance(pair, service.LoginRefused):
        problem = unauthorized(pair.reason)
        if pair.mfa_required:
            problem.extensions["mfa_required"] = True
        raise problem
    return TokenOut(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
    )


@jwks_router.get("/.well-known/jwks.json")
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    """The public keys that verify access tokens (current and recently retired)."""
    keyring: SigningKeyring = request.app.state.keyring
    response.headers["Cache-Control"] = "public, max-age=60"
    return keyring.jwks()


@router.post("/register", status_code=201, response_model=UserOut)
async def register(
    settings: CurrentSettings, body: RegisterIn, request: Request, db: DbSession
) -> UserOut:
    """Create a user account (`registration_max_per_ip` per client address and window,
    429 + Retry-After past it)."""
    if not settings.registration_open:
        raise Forbidden("registration-closed", "Registration is closed.")
    async with db.begin():
        await service.take_registration_slot(db, settings, anonymous_actor(request))
    async with db.begin():
        user = await service.register(
            db,
            settings,
            anonymous_actor(request),
            email=service.deliverable_email(body.email),
            password=body.password,
            name=body.name,
            locale=body.locale,
        )
    return UserOut.model_validate(user)


@router.post("/token", response_model=TokenOut)
async def token(
    settings: CurrentSettings,
    request: Request,
    db: DbSession,
    # NUL-free (in the document too): PostgreSQL cannot store it, no email contains it.
    username: Annotated[
        str, Form(min_length=1, max_length=320, pattern=NUL_FREE, description="email")
    ],
    password: Annotated[str, Form(min_length=1, max_length=200, pattern=NUL_FREE)],
    grant_type: Annotated[str, Form(pattern="^password$")] = "password",
    otp: Annotated[
        str,
        Form(max_length=20, pattern=NUL_FREE, description="TOTP or recovery code when 2FA is on"),
    ] = "",
    scope: Annotated[str, Form(max_length=200, pattern=NUL_FREE)] = "",
) -> TokenOut:
    """OAuth2 password grant: email + password (+ one-time code) → access + refresh token.
    Failed attempts are throttled per (client IP, account), per account and per client
    IP: 429 with Retry-After, `limit` naming the one reached."""
    keyring = _keyring(request)
    actor = anonymous_actor(request)
    # The attempt is counted (and committed) before the password is looked at, so a
    # concurrent burst cannot get more checks than the limit.
    async with db.begin():
        slot = await service.take_sign_in_slot(db, settings, actor, email=username)
    if isinstance(slot, throttle.Throttled):
        raise _throttled(slot, "login-throttled")
    # A refusal is a value: its audit entry commits with this block, and only then does
    # `_token_out` raise the 401.
    async with db.begin():
        outcome = await service.login(
            db, settings, keyring, actor, email=username, password=password, otp=otp, slot=slot
        )
    return _token_out(outcome)


@router.post("/refresh", response_model=TokenOut)
async def refresh(
    settings: CurrentSettings, body: RefreshIn, request: Request, db: DbSession
) -> TokenOut:
    """Exchange a refresh token for a new pair; the old refresh token stops working."""
    keyring = _keyring(request)
    async with db.begin():
        outcome = await service.refresh(db, settings, keyring, body.refresh_token)
    return _token_out(outcome)


@router.post("/logout", status_code=204)
async def logout(body: LogoutIn, actor: CurrentActor, db: DbSession) -> Response:
    """End this session (its refresh token family), or every session of the caller.
    A refresh token of no open session of the caller ends nothing: 400."""
    async with db.begin():
        await service.logout(db, actor, raw=body.refresh_token, everywhere=body.everywhere)
    return Response(status_code=204)


async def _me(db: AsyncSession, caller: CurrentCaller) -> MeOut:
    async with db.begin():
        user, roles = await service.me(db, caller.user_id)
    return MeOut(
        **UserOut.model_validate(user).model_dump(),
        orgs=[OrgRoleOut(org_id=org, role=role) for org, role in sorted(roles.items())],
    )


@router.get("/me", response_model=MeOut)
async def me(caller: CurrentCaller, db: DbSession) -> MeOut:
    """The signed-in user and its org roles."""
    return await _me(db, caller)


@router.post("/password-reset", status_code=202, response_model=AcceptedOut)
async def password_reset(
    settings: CurrentSettings, body: PasswordResetIn, request: Request, db: DbSession
) -> AcceptedOut:
    """Email a single-use reset link. Answers the same whether or not the email exists;
    too many requests from one client IP get 429 with Retry-After."""
    async with db.begin():
        await service.request_password_reset(
            db, settings, anonymous_actor(request), email=body.email
        )
    return AcceptedOut(detail=RESET_ACCEPTED)


@router.post("/password-reset/confirm", status_code=204)
async def password_reset_confirm(
    settings: CurrentSettings, body: PasswordResetConfirmIn, request: Request, db: DbSession
) -> Response:
    """Set a new password with a reset token; every session of the user ends."""
    async with db.begin():
        await service.confirm_password_reset(
            db,
            settings,
            anonymous_actor(request),
            token=body.token,
            new_password=body.new_password,
        )
    return Response(status_code=204)


@router.post("/verify-email", status_code=204)
async def verify_email(body: EmailVerifyIn, request: Request, db: DbSession) -> Response:
    """Confirm the account's email address with the emailed token (single use; it
    expires after `email_verification_ttl_seconds`). No sign-in needed: the token is the
    proof. 400 `invalid-token` for an unknown, used or expired token."""
    async with db.begin():
        await service.verify_email(db, anonymous_actor(request), token=body.token)
    return Response(status_code=204)


@router.post("/verify-email/resend", status_code=202, response_model=AcceptedOut)
async def resend_verification(
    settings: CurrentSettings, request: Request, actor: CurrentActor, db: DbSession
) -> AcceptedOut:
    """Email the caller a new verification link. 409 `already-verified`; a few per hour
    per user (429 `verification-resend-throttled` with Retry-After)."""
    async with db.begin():
        await service.resend_verification(db, settings, actor)
    return AcceptedOut(detail=VERIFICATION_SENT)


@router.post("/totp/enroll", response_model=TotpEnrollOut)
async def totp_enroll(
    settings: CurrentSettings, request: Request, actor: CurrentActor, db: DbSession
) -> TotpEnrollOut:
    """Start two-factor enrolment: scan the URI, then confirm with `verify`."""
    async with db.begin():
        secret, uri = await service.totp_enroll(db, settings, actor)
    return TotpEnrollOut(secret=secret, otpauth_uri=uri)


@router.post("/totp/verify", response_model=RecoveryCodesOut)
async def totp_verify(
    settings: CurrentSettings,
    body: TotpEnableIn,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> RecoveryCodesOut:
    """Turn two-factor on with the password and a first code (a stolen token alone
    cannot lock the owner out); returns recovery codes, shown once. Wrong passwords
    and codes count towards the sign-in throttle of the account (429 + Retry-After)."""
    async with db.begin():
        slot = await service.take_verification_slot(db, settings, actor)
    if isinstance(slot, throttle.Throttled):
        raise _throttled(slot, "verification-throttled")
    async with db.begin():
        codes = await service.totp_verify(
            db, settings, actor, password=body.password, code=body.code, slot=slot
        )
    return RecoveryCodesOut(recovery_codes=codes)


@router.post("/password", response_model=TokenOut)
async def change_password(
    settings: CurrentSettings,
    body: PasswordChangeIn,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> TokenOut:
    """Change the caller's password (the current one required; a wrong one counts
    towards the account's sign-in throttle, 429 + Retry-After). Every other session
    ends, everywhere; the answer holds the tokens of the caller's new session."""
    keyring = _keyring(request)
    passwords.check_new_password(body.new_password)  # before a throttle slot is taken
    async with db.begin():
        slot = await service.take_verification_slot(db, settings, actor)
    if isinstance(slot, throttle.Throttled):
        raise _throttled(slot, "verification-throttled")
    async with db.begin():
        pair = await service.change_password(
            db,
            settings,
            keyring,
            actor,
            current_password=body.current_password,
            new_password=body.new_password,
            slot=slot,
        )
    return _token_out(pair)


@router.get("/sessions", response_model=Page[SessionOut])
async def list_sessions(
    request: Request,
    caller: CurrentCaller,
    db: DbSession,
    cursor: Cursor = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
) -> Page[SessionOut]:
    """The caller's open sessions (signed in and not ended or expired), oldest first."""
    current = current_session(request)
    async with db.begin():
        rows = await service.list_sessions(
            db, caller.user_id, after=uuid_cursor(cursor), limit=limit + 1
        )
    page, nxt = next_cursor_of(rows, limit, "id")
    return Page[SessionOut](
        items=[
            SessionOut(
                id=row.id,
                started_at=row.started_at,
                last_refreshed_at=row.last_refreshed_at,
                expires_at=row.expires_at,
                current=row.id == current,
            )
            for row in page
        ],
        next_cursor=nxt,
    )


@router.delete("/sessions/{session_id}", status_code=204)
async def end_session(session_id: uuid.UUID, actor: CurrentActor, db: DbSession) -> Response:
    """End one of the caller's sessions (this one too); another user's id is a 404."""
    async with db.begin():
        await service.end_session(db, actor, session_id)
    return Response(status_code=204)


@router.post("/totp/disable", status_code=204)
async def totp_disable(
    settings: CurrentSettings,
    body: TotpDisableIn,
    request: Request,
    actor: CurrentActor,
    db: DbSession,
) -> Response:
    """Turn two-factor off (password and a current or recovery code required). Wrong
    ones count towards the sign-in throttle of the account (429 + Retry-After)."""
    async with db.begin():
        slot = await service.take_verification_slot(db, settings, actor)
    if isinstance(slot, throttle.Throttled):
        raise _throttled(slot, "verification-throttled")
    async with db.begin():
        await service.totp_disable(
            db, settings, actor, password=body.password, code=body.code, slot=slot
        )
    return Response(status_code=204)


@users_router.get("", response_model=Page[AdminUserOut])
async def list_users(
    caller: CurrentCaller,
    db: DbSession,
    email_prefix: Annotated[
        str | None,
        Query(min_length=1, max_length=320, pattern=NUL_FREE, description="case-insensitive"),
    ] = None,
    active: Annotated[bool | None, Query(description="only active (or deactivated) users")] = None,
    cursor: Cursor = None,
    limit: PageSize = DEFAULT_PAGE_SIZE,
) -> Page[AdminUserOut]:
    """Every user, oldest first (platform admins only)."""
    require_admin(caller)
    async with db.begin():
        rows = await service.list_users(
            db, email_prefix=email_prefix, active=active, after=uuid_cursor(cursor), limit=limit + 1
        )
    page, nxt = next_cursor_of(rows, limit, "id")
    return Page[AdminUserOut](items=[AdminUserOut.model_validate(u) for u in page], next_cursor=nxt)


@users_router.get("/{user_id}", response_model=AdminUserOut)
async def get_user(user_id: uuid.UUID, caller: CurrentCaller, db: DbSession) -> AdminUserOut:
    """One user (platform admins only)."""
    require_admin(caller)
    async with db.begin():
        return AdminUserOut.model_validate(await service.get_user(db, user_id))


@users_router.post("/{user_id}/deactivate", response_model=AdminUserOut)
async def deactivate_user(user_id: uuid.UUID, actor: CurrentActor, db: DbSession) -> AdminUserOut:
    """Stop a user from signing in and end its sessions at once (platform admins only;
    not oneself). Deactivating a deactivated user changes nothing."""
    assert actor.principal is not None
    require_admin(actor.principal)
    async with db.begin():
        user = await service.set_user_active(db, actor, user_id, active=False)
        return AdminUserOut.model_validate(user)


@users_router.post("/{user_id}/reactivate", response_model=AdminUserOut)
async def reactivate_user(user_id: uuid.UUID, actor: CurrentActor, db: DbSession) -> AdminUserOut:
    """Let a deactivated user sign in again (its old sessions stay ended; platform admins
    only)."""
    assert actor.principal is not None
    require_admin(actor.principal)
    async with db.begin():
        user = await service.set_user_active(db, actor, user_id, active=True)
        return AdminUserOut.model_validate(user)


@users_router.post("/{user_id}/grant-admin", response_model=AdminUserOut)
async def grant_admin(user_id: uuid.UUID, actor: CurrentActor, db: DbSession) -> AdminUserOut:
    """Make a user a platform admin (platform admins only; idempotent)."""
    assert actor.principal is not None
    require_admin(actor.principal)
    async with db.begin():
        return AdminUserOut.model_validate(
            await service.set_user_admin(db, actor, user_id, admin=True)
        )


@users_router.post("/{user_id}/revoke-admin", response_model=AdminUserOut)
async def revoke_admin(user_id: uuid.UUID, actor: CurrentActor, db: DbSession) -> AdminUserOut:
    """Take platform admin back from a user (platform admins only; not from oneself: 409;
    idempotent)."""
    assert actor.principal is not None
    require_admin(actor.principal)
    async with db.begin():
        return AdminUserOut.model_validate(
            await service.set_user_admin(db, actor, user_id, admin=False)
        )
