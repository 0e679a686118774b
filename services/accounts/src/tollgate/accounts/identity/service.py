"""Identity rules: registration, sign-in with throttling and 2FA, rotating refresh
tokens, password reset, email verification, TOTP enrolment, platform admins and their
user administration.

Services never commit: the HTTP handler owns the transaction. Outcomes that must be
recorded even though the request fails (a failed login leaves an `auth.login_failed`
audit entry; a reused refresh token revokes its family) are returned as values, so the
handler commits first and answers with the problem afterwards: raising inside the
transaction would roll those writes back.

Every password or one-time-code check first takes a throttle slot (`throttle.take`) in a
transaction of its own, before the check runs: see `throttle` for the counters. The
check's outcome then settles the slot: a success gives it back, a failure leaves it
counted, and so does a check whose transaction rolls back (a raised problem, a crash).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.audit.service import record
from tollgate.accounts.caller import Actor
from tollgate.accounts.config import Settings
from tollgate.accounts.identity import passwords, throttle, totp
from tollgate.accounts.identity import repository as repo
from tollgate.accounts.identity.signing import SigningKeyring
from tollgate.accounts.identity.state import publish_user_state
from tollgate.accounts.identity.tokens import new_secret, secret_hash
from tollgate.accounts.models import User
from tollgate.accounts.sealed import sealer, sealing_configured
from tollgate.contracts.events.accounts import (
    EmailVerificationRequested,
    PasswordResetRequested,
    UserRegistered,
)
from tollgate.contracts.ids import uuid7
from tollgate.kit.audit import changed_fields
from tollgate.kit.auth import Principal, Role, access_claims
from tollgate.kit.outbox import emit
from tollgate.kit.problems import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Unprocessable,
)

log = logging.getLogger(__name__)

MAX_RESETS_PER_HOUR = 3


def normalise_email(email: str) -> str:
    return email.strip().lower()


def deliverable_email(email: str) -> str:
    """`email` normalised, or a 422 `invalid-email` when no mail could be delivered to it
    (the documents state its shape only: deliverability is not a JSON Schema matter)."""
    try:
        address = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise Unprocessable("invalid-email", f"Invalid email address: {exc}") from exc
    return normalise_email(address)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


@dataclass(frozen=True)
class LoginRefused:
    """Why a sign-in (or a refresh) was refused."""

    reason: str
    mfa_required: bool = False


async def register(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    *,
    email: str,
    password: str,
    name: str,
    locale: str,
    is_admin: bool = False,
) -> User:
    """Create a user (409 when the email is taken) and announce it. Callers check what
    only the HTTP API must (`deliverable_email`): operators may seed `admin@x.local`.
    A platform admin (seeded by the operator) counts as verified; anyone else is sent a
    verification link."""
    email = normalise_email(email)
    passwords.check_new_password(password)
    if await repo.get_user_by_email(session, email) is not None:
        raise Conflict("email-taken", "A user with this email exists.")
    user = await repo.insert_user(
        session,
        id=uuid7(),
        email=email,
        name=name,
        locale=locale,
        password_hash=await passwords.hash_password(password, settings.bcrypt_rounds),
        is_admin=is_admin,
        is_active=True,
        email_verified=is_admin,
        totp_enabled=False,
    )
    await publish_user_state(session, user.id)
    await emit(
        session,
        UserRegistered(
            user_id=user.id, email=email, locale=locale, registered_at=datetime.now(UTC)
        ),
        subject=str(user.id),
    )
    await record(
        session,
        actor,
        "user.register",
        target_type="user",
        target_id=user.id,
        diff={"email": email, "is_admin": is_admin},
    )
    if is_admin:
        return user
    if sealing_configured(settings):
        await _send_verification(session, settings, user)
    else:
        # Registration stays open; the user asks for the link once keys are configured.
        log.warning("no verification email sent: sealing keys are not configured")
    return user


async def _send_verification(session: AsyncSession, settings: Settings, user: User) -> None:
    """A new single-use verification token for `user`, sealed for the notifier."""
    raw, hashed = new_secret()
    expires = datetime.now(UTC) + timedelta(seconds=settings.email_verification_ttl_seconds)
    await repo.insert_email_verification(
        session, id=uuid7(), user_id=user.id, token_hash=hashed, expires_at=expires
    )
    await emit(
        session,
        EmailVerificationRequested(
            user_id=user.id,
            email=user.email,
            locale=user.locale,
            verification_token_sealed=sealer(settings).seal(raw),
            expires_at=expires,
        ),
        subject=str(user.id),
    )


async def resend_verification(session: AsyncSession, settings: Settings, actor: Actor) -> None:
    """Email the caller a new verification link (earlier ones keep working until they
    expire or one is used). 409 when already verified; at most
    `email_verification_resend_max` per user per window (429 + Retry-After)."""
    assert actor.principal is not None
    user = await repo.lock_user(session, actor.principal.user_id)
    assert user is not None
    if user.email_verified:
        raise Conflict("already-verified", "Your email address is already verified.")
    await throttle.take_or_refuse(
        session,
        throttle.Counter(
            throttle.VERIFY_RESEND, str(user.id), settings.email_verification_resend_max
        ),
        settings.email_verification_resend_window_seconds,
        slug="verification-resend-throttled",
        detail="Too many verification emails asked for; try again later.",
        limit="account",
    )
    await _send_verification(session, settings, user)
    await record(
        session, actor, "auth.email_verification_resend", target_type="user", target_id=user.id
    )


async def verify_email(session: AsyncSession, actor: Actor, *, token: str) -> None:
    """Mark the token's user verified and burn every verification token it has; 400
    `invalid-token` for an unknown, used or expired token (whoever presents it: the
    link may be opened signed out, on another device)."""
    now = datetime.now(UTC)
    verification = await repo.lock_email_verification(session, secret_hash(token))
    if verification is None or verification.used_at is not None or verification.expires_at <= now:
        raise BadRequest("invalid-token", "Invalid or expired verification link.")
    await repo.use_all_email_verifications(session, verification.user_id, now)
    user = await repo.lock_user(session, verification.user_id)
    assert user is not None
    await mark_email_verified(session, actor_as(actor, user), user, proof="link")


async def mark_email_verified(
    session: AsyncSession, actor: Actor, user: User, *, proof: str
) -> None:
    """Record that `user` proved its address (`proof`: the verification link, a
    password reset or an invitation, each sent to that address); nothing when it had."""
    if user.email_verified:
        return
    await repo.update_user(session, user.id, email_verified=True)
    user.email_verified = True
    await record(
        session,
        actor,
        "auth.email_verified",
        target_type="user",
        target_id=user.id,
        diff={
            **changed_fields({"email_verified": False}, {"email_verified": True}),
            "proof": proof,
        },
    )


async def require_verified_email(
    session: AsyncSession, settings: Settings, actor: Actor, what: str
) -> None:
    """403 `email-unverified` when the caller has not verified its address and
    `email_verification_required` is on (platform admins are exempt). `what` says
    what was refused."""
    principal = actor.principal
    if not settings.email_verification_required or principal is None or principal.is_admin:
        return
    user = await repo.get_user(session, principal.user_id)
    if user is not None and not user.email_verified:
        raise Forbidden(
            "email-unverified",
            f"Verify your email address before you {what}: use the link we emailed you, "
            "or ask for a new one.",
        )


async def ensure_admin(
    session: AsyncSession, settings: Settings, actor: Actor, *, email: str, password: str
) -> tuple[User, bool]:
    """Create the platform admin, or promote an existing user; True when created.

    An existing user is promoted only when it proved the address (`email_verified`) or
    knows `password`: anyone may register an address (unverified) before the operator
    names it, and must not become an admin by it (409 `admin-unproven` instead)."""
    existing = await repo.get_user_by_email(session, normalise_email(email), for_update=True)
    if existing is not None:
        if not existing.is_admin:
            if not existing.email_verified and not await passwords.verify_password(
                password, existing.password_hash, settings.bcrypt_rounds
            ):
                raise Conflict(
                    "admin-unproven",
                    f"{existing.email} was registered by someone who never proved the "
                    "address and does not know the admin password: not promoted. "
                    "Verify the address (or reset its password) first.",
                )
            await repo.update_user(session, existing.id, is_admin=True)
            existing.is_admin = True
            await publish_user_state(session, existing.id)
            await record(
                session, actor, "user.promote_admin", target_type="user", target_id=existing.id
            )
        return existing, False
    user = await register(
        session,
        settings,
        actor,
        email=email,
        password=password,
        name="Platform admin",
        locale="en",
        is_admin=True,
    )
    return user, True


def _client(actor: Actor) -> str:
    return throttle.address_subject(actor.ip)


async def take_registration_slot(session: AsyncSession, settings: Settings, actor: Actor) -> None:
    """Count a registration from the client's address (in a transaction of its own, so
    one refused as `email-taken` counts too: that answer tells whether an address has an
    account); 429 past `registration_max_per_ip`."""
    await throttle.take_or_refuse(
        session,
        throttle.Counter(throttle.REGISTER_IP, _client(actor), settings.registration_max_per_ip),
        settings.password_reset_window_seconds,
        slug="registration-throttled",
        detail="Too many registrations from this address; try again later.",
        limit="ip",
    )


async def take_sign_in_slot(
    session: AsyncSession, settings: Settings, actor: Actor, *, email: str
) -> throttle.Slot | throttle.Throttled:
    """Count a sign-in attempt before its password is checked (in a transaction of its
    own). A throttled attempt is counted nowhere and is audited as `throttled`."""
    email = normalise_email(email)[:320]
    counters = throttle.credential_counters(settings, email, _client(actor))
    outcome = await throttle.take(session, counters, settings.login_window_seconds)
    if isinstance(outcome, throttle.Throttled):
        user = await repo.get_user_by_email(session, email)
        await _audit_failed_login(session, actor, email, user, "throttled", limit=outcome.limit)
    return outcome


async def take_verification_slot(
    session: AsyncSession, settings: Settings, actor: Actor
) -> throttle.Slot | throttle.Throttled:
    """Count a signed-in user's password or code check (TOTP verify and disable) in the
    same counters as sign-in: one budget of guesses per account, whatever the route."""
    assert actor.principal is not None
    counters = throttle.credential_counters(settings, actor.principal.email, _client(actor))
    return await throttle.take(session, counters, settings.login_window_seconds)


async def _audit_failed_login(
    session: AsyncSession,
    actor: Actor,
    email: str,
    user: User | None,
    reason: str,
    *,
    limit: str | None = None,
) -> None:
    # Admin-only reading (org_id is null): the reason may say what the HTTP answer must
    # not (unknown user vs wrong password). Never the password or the code. A typed
    # "email" without an @ is often a password in the wrong field: it is not kept.
    diff: dict[str, object] = {"reason": reason}
    if limit is not None:
        diff["limit"] = limit
    if user is not None or "@" in email:
        diff["email"] = email
    await record(
        session,
        actor,
        "auth.login_failed",
        target_type="user",
        target_id=user.id if user is not None else None,
        diff=diff,
    )


async def _second_factor_ok(
    session: AsyncSession, settings: Settings, user: User, code: str
) -> bool:
    if user.totp_secret_sealed is None:
        return False
    secret = sealer(settings).unseal(user.totp_secret_sealed).decode()
    step = totp.matching_step(secret, code, user.totp_last_step)
    if step is not None:
        # Conditional: `user` was read without a lock, and a concurrent sign-in may have
        # used this code since (a code is good for one sign-in).
        return await repo.take_totp_step(session, user.id, step)
    return await repo.use_recovery_code(
        session, user.id, totp.recovery_code_hash(code), datetime.now(UTC)
    )


async def login(
    session: AsyncSession,
    settings: Settings,
    keyring: SigningKeyring,
    actor: Actor,
    *,
    email: str,
    password: str,
    otp: str | None,
    slot: throttle.Slot,
) -> TokenPair | LoginRefused:
    """Check credentials (and the second factor) and open a session. `slot` is the
    attempt's throttle slot (`take_sign_in_slot`): a failure leaves it counted."""
    email = normalise_email(email)[:320]
    user = await repo.get_user_by_email(session, email)
    ok = await passwords.verify_password(
        password, user.password_hash if user else None, settings.bcrypt_rounds
    )
    if user is None or not ok or not user.is_active:
        # One answer for all three: a deactivated account is not told apart either.
        reason = "unknown_user" if user is None else "wrong_password" if not ok else "inactive"
        await _audit_failed_login(session, actor, email, user, reason)
        return LoginRefused("Invalid email or password.")
    if user.totp_enabled:
        if not otp:
            # The normal first step of a 2FA sign-in: not a failure, and not a success
            # either (it must not forget failed codes).
            await throttle.give_back(session, slot)
            await _audit_failed_login(session, actor, email, user, "otp_missing")
            return LoginRefused("A one-time code is required.", mfa_required=True)
        if not await _second_factor_ok(session, settings, user, otp):
            await _audit_failed_login(session, actor, email, user, "otp_invalid")
            return LoginRefused("Invalid one-time code.", mfa_required=True)
    await throttle.succeeded(session, slot)
    pair = await open_session(session, settings, keyring, user, family_id=uuid7())
    await record(
        session, actor_as(actor, user), "auth.login", target_type="user", target_id=user.id
    )
    return pair


def actor_as(actor: Actor, user: User) -> Actor:
    """The same request attributed to `user` (who just proved who they are)."""
    return Actor(Principal(user_id=user.id, email=user.email), actor.ip, actor.request_id)


async def open_session(
    session: AsyncSession,
    settings: Settings,
    keyring: SigningKeyring,
    user: User,
    *,
    family_id: uuid.UUID,
) -> TokenPair:
    """A new access token and a new refresh token in `family_id`."""
    roles = await repo.roles_of(session, user.id)
    claims = access_claims(
        user_id=user.id,
        email=user.email,
        is_admin=user.is_admin,
        org_roles={org: Role(role) for org, role in roles.items()},
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=settings.access_token_ttl_seconds,
    )
    claims["sid"] = str(family_id)  # lets accounts end access tokens with their session
    # The state version the roles above come from: other services tell a removal (a
    # newer state without the org) from a membership still on its way (kit.identity).
    claims["sv"] = user.state_version
    access = keyring.sign(claims)
    raw, hashed = new_secret()
    await repo.insert_refresh_token(
        session,
        id=uuid7(),
        family_id=family_id,
        user_id=user.id,
        token_hash=hashed,
        expires_at=datetime.now(UTC) + timedelta(seconds=settings.refresh_token_ttl_seconds),
    )
    return TokenPair(
        access_token=access,
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=raw,
        refresh_expires_in=settings.refresh_token_ttl_seconds,
    )


async def refresh(
    session: AsyncSession, settings: Settings, keyring: SigningKeyring, raw: str
) -> TokenPair | LoginRefused:
    """Rotate a refresh token. Presenting an already rotated token means it leaked:
    the whole family is revoked (the thief and the owner both sign in again), unless it
    comes within `refresh_reuse_grace_seconds` of its rotation: then it is the same
    session refreshed twice at once (two console replicas, two tabs, each holding the
    same cookie) and gets a pair of its own in the same family, as Auth0's reuse interval
    and Okta's grace period allow. The window does not slide: it runs from the first use.

    The user's row is locked first, as every path that ends all of a user's sessions
    does: a rotation and "sign out everywhere" (or a password reset) run one after the
    other, so the new token is either seen and revoked, or never issued."""
    hashed = secret_hash(raw)
    owner = await repo.refresh_token_owner(session, hashed)
    if owner is None:
        return LoginRefused("Invalid refresh token.")
    user = await repo.lock_user(session, owner)
    now = datetime.now(UTC)
    token = await repo.lock_refresh_token(session, hashed)
    if token is None or token.revoked_at is not None or token.expires_at <= now:
        return LoginRefused("Invalid refresh token.")
    if await repo.family_revoked(session, token.family_id):
        return LoginRefused("Invalid refresh token.")  # its session was ended
    grace = timedelta(seconds=settings.refresh_reuse_grace_seconds)
    if token.used_at is not None and now - token.used_at > grace:
        await repo.revoke_family(session, token.family_id, now)
        await publish_user_state(session, token.user_id)  # its access tokens die too
        return LoginRefused("Refresh token reuse detected; the session was revoked.")
    if user is None or not user.is_active:
        return LoginRefused("Invalid refresh token.")
    if token.used_at is None:
        await repo.mark_refresh_used(session, token.id, now)
    return await open_session(session, settings, keyring, user, family_id=token.family_id)


async def logout(session: AsyncSession, actor: Actor, *, raw: str, everywhere: bool) -> None:
    """End the session of `raw` (only the caller's own), or all of the caller's sessions.
    A token that names no live session of the caller ends nothing: 400 `invalid-token`
    (the same for unknown, ended and other users' tokens)."""
    assert actor.principal is not None
    now = datetime.now(UTC)
    user_id = actor.principal.user_id
    if everywhere:
        await repo.lock_user(session, user_id)  # after any rotation in progress
        await repo.revoke_user_refresh_tokens(session, user_id, now)
        await repo.update_user(session, user_id, sessions_revoked_at=now)
        await publish_user_state(session, user_id)
    else:
        await repo.lock_user(session, user_id)  # before the token, as `refresh` does
        token = await repo.lock_refresh_token(session, secret_hash(raw))
        if (
            token is None
            or token.user_id != user_id
            or await repo.family_revoked(session, token.family_id)
        ):
            raise BadRequest(
                "invalid-token",
                "This refresh token belongs to no session of yours that is still open; "
                "nothing was ended.",
            )
        await repo.revoke_family(session, token.family_id, now)
        await publish_user_state(session, user_id)  # its access tokens die everywhere
    await record(
        session,
        actor,
        "auth.logout",
        target_type="user",
        target_id=user_id,
        diff={"everywhere": everywhere},
    )


async def request_password_reset(
    session: AsyncSession, settings: Settings, actor: Actor, *, email: str
) -> None:
    """Send a reset token when the user exists; silently nothing otherwise. Every
    request counts towards its client IP's limit (429 + Retry-After past it), whether
    or not the email belongs to a user, so the answer still tells nothing."""
    email = deliverable_email(email)
    seal = sealer(settings)  # fail the same way whether or not the user exists
    now = datetime.now(UTC)
    ip = _client(actor)
    await throttle.take_or_refuse(
        session,
        throttle.Counter(throttle.RESET_IP, ip, settings.password_reset_max_per_ip),
        settings.password_reset_window_seconds,
        slug="password-reset-throttled",
        detail="Too many password reset requests from this address; try again later.",
        limit="ip",
    )
    user = await repo.get_user_by_email(session, email)
    if user is None or not user.is_active:
        return
    if await repo.count_resets_since(session, user.id, now - timedelta(hours=1)) >= (
        MAX_RESETS_PER_HOUR
    ):
        return
    raw, hashed = new_secret()
    expires = now + timedelta(seconds=settings.password_reset_ttl_seconds)
    await repo.insert_password_reset(
        session, id=uuid7(), user_id=user.id, token_hash=hashed, expires_at=expires
    )
    await emit(
        session,
        PasswordResetRequested(
            user_id=user.id,
            email=user.email,
            locale=user.locale,
            reset_token_sealed=seal.seal(raw),
            expires_at=expires,
        ),
        subject=str(user.id),
    )
    await record(
        session, actor, "auth.password_reset_requested", target_type="user", target_id=user.id
    )


async def confirm_password_reset(
    session: AsyncSession, settings: Settings, actor: Actor, *, token: str, new_password: str
) -> None:
    """Set the new password, burn the token and end every session of the user."""
    passwords.check_new_password(new_password)
    now = datetime.now(UTC)
    reset = await repo.lock_password_reset(session, secret_hash(token))
    if reset is None or reset.used_at is not None or reset.expires_at <= now:
        raise BadRequest("invalid-token", "Invalid or expired reset token.")
    await repo.lock_user(session, reset.user_id)  # after any rotation in progress
    await repo.update_user(
        session,
        reset.user_id,
        password_hash=await passwords.hash_password(new_password, settings.bcrypt_rounds),
        sessions_revoked_at=now,
    )
    await repo.use_all_password_resets(session, reset.user_id, now)
    await repo.revoke_user_refresh_tokens(session, reset.user_id, now)
    await publish_user_state(session, reset.user_id)
    user = await repo.get_user(session, reset.user_id)
    assert user is not None
    await throttle.forget_account(session, user.email)
    await record(
        session, actor_as(actor, user), "auth.password_reset", target_type="user", target_id=user.id
    )
    # The reset link went to the address: it is proven as well as by a verification link.
    await mark_email_verified(session, actor_as(actor, user), user, proof="password_reset")


async def change_password(
    session: AsyncSession,
    settings: Settings,
    keyring: SigningKeyring,
    actor: Actor,
    *,
    current_password: str,
    new_password: str,
    slot: throttle.Slot,
) -> TokenPair:
    """Set a new password; the current one is required (a wrong one counts towards the
    account's sign-in throttle). Every session ends, and access tokens issued before
    stop working here and, through the published user state, at every service; the
    caller goes on in a new session, whose tokens are returned."""
    assert actor.principal is not None
    user = await repo.lock_user(session, actor.principal.user_id)
    assert user is not None
    if not await passwords.verify_password(
        current_password, user.password_hash, settings.bcrypt_rounds
    ):
        raise BadRequest("invalid-credentials", "Wrong password.")
    now = datetime.now(UTC)
    await repo.update_user(
        session,
        user.id,
        password_hash=await passwords.hash_password(new_password, settings.bcrypt_rounds),
        sessions_revoked_at=now,
    )
    await repo.revoke_user_refresh_tokens(session, user.id, now)
    await repo.use_all_password_resets(session, user.id, now)
    await throttle.succeeded(session, slot)
    await publish_user_state(session, user.id)
    await record(session, actor, "auth.password_change", target_type="user", target_id=user.id)
    fresh = await repo.fresh_user(session, user.id)
    assert fresh is not None
    return await open_session(session, settings, keyring, fresh, family_id=uuid7())


async def list_sessions(
    session: AsyncSession, user_id: uuid.UUID, *, after: uuid.UUID | None, limit: int
) -> list[repo.OpenFamily]:
    """The user's open sessions (neither ended nor expired), oldest first."""
    return await repo.open_families(
        session, user_id, now=datetime.now(UTC), after=after, limit=limit
    )


async def end_session(session: AsyncSession, actor: Actor, session_id: uuid.UUID) -> None:
    """End one of the caller's own sessions (idempotent); 404 for any other id. Its
    refresh token stops working and its access tokens are refused by accounts at once
    and by every other service once the published user state (its `ended_sessions`)
    reaches it."""
    assert actor.principal is not None
    if await repo.family_owner(session, session_id) != actor.principal.user_id:
        raise NotFound("not-found", "No such session.")
    await repo.lock_user(session, actor.principal.user_id)  # first, as `refresh` does
    if await repo.family_revoked(session, session_id):
        return
    await repo.revoke_family(session, session_id, datetime.now(UTC))
    await publish_user_state(session, actor.principal.user_id)
    await record(session, actor, "auth.session_end", target_type="session", target_id=session_id)


async def totp_enroll(session: AsyncSession, settings: Settings, actor: Actor) -> tuple[str, str]:
    """Start (or restart) enrolment: a new seed, inactive until verified."""
    assert actor.principal is not None
    user = await repo.lock_user(session, actor.principal.user_id)
    assert user is not None
    if user.totp_enabled:
        raise Conflict("totp-enabled", "Two-factor is already enabled.")
    secret = totp.new_secret()
    await repo.update_user(
        session, user.id, totp_secret_sealed=sealer(settings).seal(secret), totp_last_step=None
    )
    await record(session, actor, "auth.totp_enroll", target_type="user", target_id=user.id)
    return secret, totp.provisioning_uri(secret, user.email)


async def totp_verify(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    *,
    password: str,
    code: str,
    slot: throttle.Slot,
) -> list[str]:
    """Turn 2FA on with the password and a first valid code; returns fresh recovery
    codes (shown once). `slot` (`take_verification_slot`) stays counted unless this
    succeeds."""
    assert actor.principal is not None
    user = await repo.lock_user(session, actor.principal.user_id)
    assert user is not None
    if user.totp_enabled:
        raise Conflict("totp-enabled", "Two-factor is already enabled.")
    if user.totp_secret_sealed is None:
        raise Conflict("totp-not-enrolled", "Enroll first.")
    if not await passwords.verify_password(password, user.password_hash, settings.bcrypt_rounds):
        raise BadRequest("invalid-credentials", "Wrong password.")
    secret = sealer(settings).unseal(user.totp_secret_sealed).decode()
    step = totp.matching_step(secret, code, user.totp_last_step)
    if step is None:
        raise BadRequest("invalid-code", "Invalid one-time code.")
    codes = totp.new_recovery_codes()
    await repo.replace_recovery_codes(session, user.id, [totp.recovery_code_hash(c) for c in codes])
    await repo.update_user(session, user.id, totp_enabled=True, totp_last_step=step)
    await throttle.succeeded(session, slot)
    await record(session, actor, "auth.totp_enable", target_type="user", target_id=user.id)
    return codes


async def totp_disable(
    session: AsyncSession,
    settings: Settings,
    actor: Actor,
    *,
    password: str,
    code: str,
    slot: throttle.Slot,
) -> None:
    """Turn 2FA off; needs the password and a current code (or a recovery code).
    `slot` (`take_verification_slot`) stays counted unless this succeeds."""
    assert actor.principal is not None
    user = await repo.lock_user(session, actor.principal.user_id)
    assert user is not None
    if not user.totp_enabled:
        raise Conflict("totp-not-enabled", "Two-factor is not enabled.")
    if not await passwords.verify_password(password, user.password_hash, settings.bcrypt_rounds):
        raise BadRequest("invalid-credentials", "Wrong password.")
    if not await _second_factor_ok(session, settings, user, code):
        raise BadRequest("invalid-code", "Invalid one-time code.")
    await repo.update_user(
        session, user.id, totp_enabled=False, totp_secret_sealed=None, totp_last_step=None
    )
    await repo.delete_recovery_codes(session, user.id)
    await throttle.succeeded(session, slot)
    await record(session, actor, "auth.totp_disable", target_type="user", target_id=user.id)


async def me(session: AsyncSession, user_id: uuid.UUID) -> tuple[User, dict[uuid.UUID, str]]:
    user = await repo.get_user(session, user_id)
    if user is None:
        raise NotFound("not-found", "No such user.")
    return user, await repo.roles_of(session, user_id)


# ---- user administration (platform admins; the HTTP layer checks the role)


async def list_users(
    session: AsyncSession,
    *,
    email_prefix: str | None,
    active: bool | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[User]:
    """Users in creation order, optionally those whose email starts with a prefix
    (case-insensitive: emails are stored lower-cased) and/or by active state."""
    return await repo.list_users(
        session,
        email_prefix=email_prefix.lower() if email_prefix is not None else None,
        active=active,
        after=after,
        limit=limit,
    )


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    """One user; 404 when there is none."""
    user = await repo.get_user(session, user_id)
    if user is None:
        raise NotFound("not-found", "No such user.")
    return user


async def set_user_active(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, *, active: bool
) -> User:
    """Deactivate or reactivate a user (idempotent; audited when it changes anything).

    Deactivating ends every session at once: refresh-token families are revoked and
    `sessions_revoked_at` is set, so access tokens issued before stay dead even after a
    reactivation; unused reset tokens are burnt. Sign-in is refused like a wrong
    password. Memberships and the orgs' API keys are left as they are. An admin cannot
    deactivate itself (so at least one active admin always remains).
    """
    assert actor.principal is not None
    if not active and user_id == actor.principal.user_id:
        raise Conflict("cannot-deactivate-self", "You cannot deactivate yourself.")
    user = await repo.lock_user(session, user_id)
    if user is None:
        raise NotFound("not-found", "No such user.")
    if user.is_active == active:
        return user
    now = datetime.now(UTC)
    if active:
        await repo.update_user(session, user_id, is_active=True)
    else:
        await repo.update_user(session, user_id, is_active=False, sessions_revoked_at=now)
        await repo.revoke_user_refresh_tokens(session, user_id, now)
        await repo.use_all_password_resets(session, user_id, now)
    await publish_user_state(session, user_id)
    await record(
        session,
        actor,
        "user.reactivate" if active else "user.deactivate",
        target_type="user",
        target_id=user_id,
        diff=changed_fields({"is_active": not active}, {"is_active": active}),
    )
    return await get_user(session, user_id)


async def set_user_admin(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, *, admin: bool
) -> User:
    """Grant or revoke platform admin (idempotent; audited when it changes anything).

    The new state goes out on `users.v1` in this transaction, so every service applies
    it with the user's next request. An admin cannot revoke itself (so at least one
    admin always remains).
    """
    assert actor.principal is not None
    if not admin and user_id == actor.principal.user_id:
        raise Conflict("cannot-revoke-self", "You cannot revoke your own admin rights.")
    user = await repo.lock_user(session, user_id)
    if user is None:
        raise NotFound("not-found", "No such user.")
    if user.is_admin == admin:
        return user
    await repo.update_user(session, user_id, is_admin=admin)
    await publish_user_state(session, user_id)
    await record(
        session,
        actor,
        "user.promote_admin" if admin else "user.demote_admin",
        target_type="user",
        target_id=user_id,
        diff=changed_fields({"is_admin": not admin}, {"is_admin": admin}),
    )
    return await get_user(session, user_id)
