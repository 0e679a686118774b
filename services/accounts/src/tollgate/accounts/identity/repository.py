"""Every SQL statement on users, sessions, throttle counters, resets and recovery codes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import (
    EmailVerification,
    Membership,
    PasswordReset,
    RecoveryCode,
    RefreshToken,
    ThrottleCounter,
    User,
)

# ---- users


async def roles_of(session: AsyncSession, user_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await session.execute(
        select(Membership.org_id, Membership.role).where(Membership.user_id == user_id)
    )
    return {row.org_id: row.role for row in rows}


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(
    session: AsyncSession, email: str, *, for_update: bool = False
) -> User | None:
    stmt = select(User).where(User.email == email)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def lock_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    stmt = select(User).where(User.id == user_id).with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def insert_user(session: AsyncSession, **values: Any) -> User:
    user = User(**values)
    session.add(user)
    await session.flush()
    return user


async def update_user(session: AsyncSession, user_id: uuid.UUID, **values: Any) -> None:
    await session.execute(update(User).where(User.id == user_id).values(**values))


async def take_totp_step(session: AsyncSession, user_id: uuid.UUID, step: int) -> bool:
    """Record `step` as the user's last accepted TOTP step unless it (or a later one)
    was accepted already; False then. One conditional statement: of concurrent sign-ins
    with one code, the others wait for the row and then find the step taken."""
    stmt = (
        update(User)
        .where(
            User.id == user_id,
            (User.totp_last_step.is_(None)) | (User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .returning(User.id)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(stmt)).first() is not None


async def fresh_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    """The user as the database holds it now (attributes reloaded even when the
    session already holds the object)."""
    stmt = select(User).where(User.id == user_id).execution_options(populate_existing=True)
    return (await session.scalars(stmt)).one_or_none()


async def bump_state_version(session: AsyncSession, user_id: uuid.UUID) -> int | None:
    """Increase the user's published-state version under its row lock; the new
    version, or None when there is no such user."""
    stmt = (
        update(User)
        .where(User.id == user_id)
        .values(state_version=User.state_version + 1)
        .returning(User.state_version)
        .execution_options(synchronize_session=False)
    )
    version: int | None = (await session.execute(stmt)).scalar_one_or_none()
    return version


async def list_users(
    session: AsyncSession,
    *,
    email_prefix: str | None,
    active: bool | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[User]:
    """Users in id (= creation) order after the cursor; `%` and `_` in the prefix are
    literal characters, not wildcards."""
    stmt = select(User).order_by(User.id).limit(limit)
    if email_prefix is not None:
        stmt = stmt.where(User.email.startswith(email_prefix, autoescape=True))
    if active is not None:
        stmt = stmt.where(User.is_active.is_(active))
    if after is not None:
        stmt = stmt.where(User.id > after)
    return list((await session.scalars(stmt)).all())


# ---- refresh tokens


async def insert_refresh_token(session: AsyncSession, **values: Any) -> None:
    session.add(RefreshToken(**values))
    await session.flush()


async def lock_refresh_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    stmt = (
        select(RefreshToken)
        .where(RefreshToken.token_hash == token_hash)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def refresh_token_owner(session: AsyncSession, token_hash: str) -> uuid.UUID | None:
    stmt = select(RefreshToken.user_id).where(RefreshToken.token_hash == token_hash)
    return await session.scalar(stmt)


async def mark_refresh_used(session: AsyncSession, token_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(RefreshToken).where(RefreshToken.id == token_id).values(used_at=at)
    )


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=at)
    )


async def families_ended_since(
    session: AsyncSession, user_id: uuid.UUID, since: datetime, limit: int
) -> list[uuid.UUID]:
    """The user's sessions (refresh-token families) ended after `since`, latest first."""
    ended = func.max(RefreshToken.revoked_at)
    stmt = (
        select(RefreshToken.family_id)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at > since)
        .group_by(RefreshToken.family_id)
        .order_by(ended.desc())
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


@dataclass(frozen=True)
class OpenFamily:
    """A session (refresh-token family) that can still be renewed."""

    id: uuid.UUID
    started_at: datetime
    last_refreshed_at: datetime
    expires_at: datetime


async def open_families(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    now: datetime,
    after: uuid.UUID | None,
    limit: int,
) -> list[OpenFamily]:
    """The user's sessions that are neither ended nor expired, in id (start) order."""
    stmt = (
        select(
            RefreshToken.family_id,
            func.min(RefreshToken.created_at),
            func.max(RefreshToken.created_at),
            func.max(RefreshToken.expires_at),
        )
        .where(RefreshToken.user_id == user_id)
        .group_by(RefreshToken.family_id)
        .having(func.count(RefreshToken.revoked_at) == 0)
        .having(func.max(RefreshToken.expires_at) > now)
        .order_by(RefreshToken.family_id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(RefreshToken.family_id > after)
    rows = (await session.execute(stmt)).all()
    return [OpenFamily(*row) for row in rows]


async def family_owner(session: AsyncSession, family_id: uuid.UUID) -> uuid.UUID | None:
    """The user a session family belongs to (None: no such family)."""
    stmt = select(RefreshToken.user_id).where(RefreshToken.family_id == family_id).limit(1)
    owner: uuid.UUID | None = await session.scalar(stmt)
    return owner


async def family_revoked(session: AsyncSession, family_id: uuid.UUID) -> bool:
    """True when the session family was ended (logout, reuse, password reset)."""
    stmt = (
        select(RefreshToken.id)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_not(None))
        .limit(1)
    )
    return (await session.scalar(stmt)) is not None


async def revoke_user_refresh_tokens(
    session: AsyncSession, user_id: uuid.UUID, at: datetime
) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=at)
    )


# ---- throttle counters


async def take_throttle_slot(
    session: AsyncSession, *, scope: str, subject: str, window_start: datetime, limit: int
) -> bool:
    """Count one attempt in the window unless `limit` are counted already; False when
    full. One statement: concurrent callers queue on the row, so the limit is exact."""
    stmt = (
        pg_insert(ThrottleCounter)
        .values(scope=scope, subject=subject, window_start=window_start, count=1)
        .on_conflict_do_update(
            index_elements=["scope", "subject", "window_start"],
            set_={"count": ThrottleCounter.count + 1},
            where=ThrottleCounter.count < limit,
        )
        .returning(ThrottleCounter.count)
    )
    return (await session.execute(stmt)).first() is not None


async def give_back_throttle_slot(
    session: AsyncSession, *, scope: str, subject: str, window_start: datetime
) -> None:
    """Uncount one attempt (it succeeded, or another limit refused it)."""
    await session.execute(
        update(ThrottleCounter)
        .where(
            ThrottleCounter.scope == scope,
            ThrottleCounter.subject == subject,
            ThrottleCounter.window_start == window_start,
            ThrottleCounter.count > 0,
        )
        .values(count=ThrottleCounter.count - 1)
    )


async def drop_throttle_count(
    session: AsyncSession, *, scope: str, subject: str, window_start: datetime
) -> None:
    """Forget every attempt counted for one subject in one window."""
    await session.execute(
        delete(ThrottleCounter).where(
            ThrottleCounter.scope == scope,
            ThrottleCounter.subject == subject,
            ThrottleCounter.window_start == window_start,
        )
    )


async def drop_throttle_counts(
    session: AsyncSession, *, scope: str, subject: str | None = None, subject_prefix: str = ""
) -> None:
    """Forget every count, every window, of `subject` (or of every subject starting with
    `subject_prefix`). Rows are locked in subject order first (takers lock them one at a
    time), so two such calls cannot deadlock each other."""
    rows = (
        select(ThrottleCounter.subject, ThrottleCounter.window_start)
        .where(
            ThrottleCounter.scope == scope,
            ThrottleCounter.subject == subject
            if subject is not None
            else ThrottleCounter.subject.startswith(subject_prefix, autoescape=True),
        )
        .order_by(ThrottleCounter.subject, ThrottleCounter.window_start)
        .with_for_update()
    )
    locked = (await session.execute(rows)).all()
    if locked:
        await session.execute(
            delete(ThrottleCounter).where(
                ThrottleCounter.scope == scope,
                tuple_(ThrottleCounter.subject, ThrottleCounter.window_start).in_(
                    [tuple(row) for row in locked]
                ),
            )
        )


async def purge_throttle_counters(session: AsyncSession, before: datetime) -> None:
    """Delete counts of windows that ended, skipping rows someone holds (never waits)."""
    stale = (
        select(ThrottleCounter.scope, ThrottleCounter.subject, ThrottleCounter.window_start)
        .where(ThrottleCounter.window_start < before)
        .limit(1000)
        .with_for_update(skip_locked=True)
    )
    await session.execute(
        delete(ThrottleCounter).where(
            tuple_(
                ThrottleCounter.scope, ThrottleCounter.subject, ThrottleCounter.window_start
            ).in_(stale)
        )
    )


# ---- password resets


async def insert_password_reset(session: AsyncSession, **values: Any) -> None:
    session.add(PasswordReset(**values))
    await session.flush()


async def count_resets_since(session: AsyncSession, user_id: uuid.UUID, since: datetime) -> int:
    stmt = select(func.count()).where(
        PasswordReset.user_id == user_id, PasswordReset.created_at >= since
    )
    return int(await session.scalar(stmt) or 0)


async def lock_password_reset(session: AsyncSession, token_hash: str) -> PasswordReset | None:
    stmt = select(PasswordReset).where(PasswordReset.token_hash == token_hash).with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def use_all_password_resets(session: AsyncSession, user_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user_id, PasswordReset.used_at.is_(None))
        .values(used_at=at)
    )


# ---- email verification


async def insert_email_verification(session: AsyncSession, **values: Any) -> None:
    session.add(EmailVerification(**values))
    await session.flush()


async def lock_email_verification(
    session: AsyncSession, token_hash: str
) -> EmailVerification | None:
    stmt = (
        select(EmailVerification)
        .where(EmailVerification.token_hash == token_hash)
        .with_for_update()
    )
    return (await session.scalars(stmt)).one_or_none()


async def use_all_email_verifications(
    session: AsyncSession, user_id: uuid.UUID, at: datetime
) -> None:
    await session.execute(
        update(EmailVerification)
        .where(EmailVerification.user_id == user_id, EmailVerification.used_at.is_(None))
        .values(used_at=at)
    )


# ---- recovery codes


async def replace_recovery_codes(
    session: AsyncSession, user_id: uuid.UUID, hashes: list[str]
) -> None:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    session.add_all([RecoveryCode(user_id=user_id, code_hash=h) for h in hashes])
    await session.flush()


async def use_recovery_code(
    session: AsyncSession, user_id: uuid.UUID, code_hash: str, at: datetime
) -> bool:
    """Mark an unused code used; False when there is none such."""
    result = await session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == code_hash,
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=at)
        .returning(RecoveryCode.id)
    )
    return result.first() is not None


async def delete_recovery_codes(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
