"""Every SQL statement on users, sessions, login failures, resets and recovery codes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import (
    LoginFailure,
    PasswordReset,
    RecoveryCode,
    RefreshToken,
    ResetRequest,
    User,
)

# ---- users


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
    stmt = select(RefreshToken).where(RefreshToken.token_hash == token_hash).with_for_update()
    return (await session.scalars(stmt)).one_or_none()


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


# ---- login failures


async def insert_login_failure(session: AsyncSession, email: str, ip: str) -> None:
    session.add(LoginFailure(email=email, ip=ip))
    await session.flush()


async def recent_failures(
    session: AsyncSession,
    *,
    since: datetime,
    limit: int,
    email: str | None = None,
    ip: str | None = None,
) -> list[datetime]:
    """Failure times newest first (at most `limit`) for an email or an IP."""
    stmt = select(LoginFailure.at).where(LoginFailure.at >= since)
    if email is not None:
        stmt = stmt.where(LoginFailure.email == email)
    if ip is not None:
        stmt = stmt.where(LoginFailure.ip == ip)
    stmt = stmt.order_by(LoginFailure.at.desc()).limit(limit)
    return list((await session.scalars(stmt)).all())


async def clear_login_failures(session: AsyncSession, email: str) -> None:
    await session.execute(delete(LoginFailure).where(LoginFailure.email == email))


async def purge_login_failures(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(LoginFailure).where(LoginFailure.at < before))


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


async def insert_reset_request(session: AsyncSession, ip: str) -> None:
    session.add(ResetRequest(ip=ip))
    await session.flush()


async def recent_reset_requests(
    session: AsyncSession, *, ip: str, since: datetime, limit: int
) -> list[datetime]:
    """Reset request times of a client IP newest first (at most `limit`)."""
    stmt = (
        select(ResetRequest.at)
        .where(ResetRequest.ip == ip, ResetRequest.at >= since)
        .order_by(ResetRequest.at.desc())
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def purge_reset_requests(session: AsyncSession, before: datetime) -> None:
    await session.execute(delete(ResetRequest).where(ResetRequest.at < before))


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
