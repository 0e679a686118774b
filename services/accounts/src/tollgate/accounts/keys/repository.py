"""Every SQL statement on API keys and their retired secrets."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.accounts.models import ApiKey, RetiredKeySecret


async def insert_key(session: AsyncSession, **values: Any) -> ApiKey:
    key = ApiKey(**values)
    session.add(key)
    await session.flush()
    return key


async def get_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def lock_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    stmt = select(ApiKey).where(ApiKey.id == key_id).with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def get_key_by_hash(session: AsyncSession, key_hash: str) -> ApiKey | None:
    return (await session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash))).first()


async def update_key(session: AsyncSession, key_id: uuid.UUID, **values: Any) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(**values))


async def delete_key(session: AsyncSession, key_id: uuid.UUID) -> None:
    await session.execute(delete(ApiKey).where(ApiKey.id == key_id))


async def list_keys(
    session: AsyncSession,
    org_id: uuid.UUID,
    *,
    after: uuid.UUID | None,
    limit: int,
    status: str | None = None,
    api_id: uuid.UUID | None = None,
    name_contains: str | None = None,
    now: datetime | None = None,
) -> list[ApiKey]:
    """The org's keys in id order after the cursor, optionally only those in one
    status (`active`, `disabled`, `expired`, `revoked`; a revoked key is only
    `revoked`, an expired one only `expired`), those that may call `api_id` (no API
    restriction, or that API listed), and those whose name contains `name_contains`
    (case-insensitive; `%` and `_` are literal)."""
    stmt = select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.id).limit(limit)
    if after is not None:
        stmt = stmt.where(ApiKey.id > after)
    if status is not None:
        moment = now or datetime.now(UTC)
        live = ApiKey.revoked_at.is_(None)
        unexpired = or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > moment)
        stmt = stmt.where(
            {
                "revoked": ApiKey.revoked_at.is_not(None),
                "expired": and_(live, ApiKey.expires_at <= moment),
                "disabled": and_(live, unexpired, ApiKey.enabled.is_(False)),
                "active": and_(live, unexpired, ApiKey.enabled.is_(True)),
            }[status]
        )
    if api_id is not None:
        stmt = stmt.where(
            or_(
                func.cardinality(ApiKey.allowed_api_ids) == 0,
                ApiKey.allowed_api_ids.contains([api_id]),
            )
        )
    if name_contains:
        stmt = stmt.where(ApiKey.name.icontains(name_contains, autoescape=True))
    return list((await session.scalars(stmt)).all())


async def list_all_key_ids(session: AsyncSession) -> list[uuid.UUID]:
    return list((await session.scalars(select(ApiKey.id).order_by(ApiKey.id))).all())


async def insert_retired_secret(
    session: AsyncSession, key_id: uuid.UUID, key_hash: str, expires_at: datetime
) -> None:
    session.add(RetiredKeySecret(key_id=key_id, key_hash=key_hash, expires_at=expires_at))
    await session.flush()


async def live_retired_secrets(
    session: AsyncSession, key_ids: list[uuid.UUID], now: datetime
) -> dict[uuid.UUID, list[RetiredKeySecret]]:
    """Unexpired retired secrets per key."""
    rows = await session.scalars(
        select(RetiredKeySecret)
        .where(RetiredKeySecret.key_id.in_(key_ids), RetiredKeySecret.expires_at > now)
        .order_by(RetiredKeySecret.expires_at)
    )
    found: dict[uuid.UUID, list[RetiredKeySecret]] = {}
    for row in rows:
        found.setdefault(row.key_id, []).append(row)
    return found


async def purge_retired_secrets(session: AsyncSession, key_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        delete(RetiredKeySecret).where(
            RetiredKeySecret.key_id == key_id, RetiredKeySecret.expires_at <= now
        )
    )


async def lock_keys_expiring_unwarned(
    session: AsyncSession, before: datetime, limit: int
) -> list[ApiKey]:
    """Live keys expiring before `before` whose owners were not warned yet; rows another
    replica is working on are skipped."""
    stmt = (
        select(ApiKey)
        .where(
            ApiKey.expires_at.is_not(None),
            ApiKey.expires_at < before,
            ApiKey.expiry_warned_at.is_(None),
            ApiKey.revoked_at.is_(None),
        )
        .order_by(ApiKey.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.scalars(stmt)).all())


async def keys_with_lapsed_secrets(
    session: AsyncSession, now: datetime, limit: int
) -> list[uuid.UUID]:
    stmt = (
        select(RetiredKeySecret.key_id)
        .where(RetiredKeySecret.expires_at <= now)
        .distinct()
        .limit(limit)
    )
    return list((await session.scalars(stmt)).all())


async def lock_key_skip_locked(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    stmt = select(ApiKey).where(ApiKey.id == key_id).with_for_update(skip_locked=True)
    return (await session.scalars(stmt)).one_or_none()
