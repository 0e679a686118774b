"""SQL of quotas: the key registry, per-period counters and announced thresholds."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.usage.models import ApiKey, QuotaAlert, QuotaUsage


async def upsert_key(
    session: AsyncSession,
    *,
    key_id: uuid.UUID,
    org_id: uuid.UUID,
    per_day: int | None,
    per_month: int | None,
    version: int,
    updated_at: datetime,
) -> bool:
    """Store a key's state unless a newer version is held; True when stored."""
    stmt = insert(ApiKey).values(
        key_id=key_id,
        org_id=org_id,
        per_day=per_day,
        per_month=per_month,
        version=version,
        updated_at=updated_at,
    )
    upsert = stmt.on_conflict_do_update(
        index_elements=[ApiKey.key_id],
        set_={
            "org_id": stmt.excluded.org_id,
            "per_day": stmt.excluded.per_day,
            "per_month": stmt.excluded.per_month,
            "version": stmt.excluded.version,
            "updated_at": stmt.excluded.updated_at,
        },
        where=ApiKey.version < stmt.excluded.version,
    ).returning(ApiKey.key_id)
    return (await session.scalar(upsert)) is not None


async def delete_key(session: AsyncSession, key_id: uuid.UUID) -> None:
    """Forget a deleted key."""
    await session.execute(delete(ApiKey).where(ApiKey.key_id == key_id))


async def key_org(session: AsyncSession, key_id: uuid.UUID) -> uuid.UUID | None:
    """The org owning a known key, or None."""
    found: uuid.UUID | None = await session.scalar(
        select(ApiKey.org_id).where(ApiKey.key_id == key_id)
    )
    return found


@dataclass(frozen=True)
class QuotaStanding:
    """A key's usage in a period against its limit, after the latest batch."""

    key_id: uuid.UUID
    org_id: uuid.UUID
    period: str
    period_start: date
    used: int
    limit: int


async def add_usage(
    session: AsyncSession,
    key_ids: Sequence[uuid.UUID],
    periods: Sequence[str],
    period_starts: Sequence[date],
    counts: Sequence[int],
    *,
    near_percent: int,
) -> list[QuotaStanding]:
    """Add admitted requests to the per-period counters; return the counters that are
    now at or above `near_percent` of their key's limit."""
    if not key_ids:
        return []
    rows = await session.execute(
        text(
            """
            WITH counted AS (
                INSERT INTO quota_usage AS q (key_id, period, period_start, used)
                SELECT * FROM unnest(
                    CAST(:key_id AS uuid[]), CAST(:period AS text[]),
                    CAST(:period_start AS date[]), CAST(:used AS bigint[])
                )
                ON CONFLICT (key_id, period, period_start)
                DO UPDATE SET used = q.used + excluded.used
                RETURNING key_id, period, period_start, used
            )
            SELECT c.key_id, k.org_id, c.period, c.period_start, c.used,
                   CASE c.period WHEN 'day' THEN k.per_day ELSE k.per_month END AS lim
            FROM counted AS c JOIN api_keys AS k ON k.key_id = c.key_id
            WHERE c.used::numeric * 100 >= :near_percent
                * CASE c.period WHEN 'day' THEN k.per_day ELSE k.per_month END::numeric
            """
        ),
        {
            "key_id": list(key_ids),
            "period": list(periods),
            "period_start": list(period_starts),
            "used": list(counts),
            "near_percent": near_percent,
        },
    )
    return [
        QuotaStanding(
            key_id=row.key_id,
            org_id=row.org_id,
            period=row.period,
            period_start=row.period_start,
            used=int(row.used),
            limit=int(row.lim),
        )
        for row in rows
    ]


async def record_alert(
    session: AsyncSession, standing: QuotaStanding, threshold_percent: int, crossed_at: datetime
) -> bool:
    """Record that a threshold was announced; False when it already was."""
    stmt = (
        insert(QuotaAlert)
        .values(
            key_id=standing.key_id,
            period=standing.period,
            period_start=standing.period_start,
            threshold_percent=threshold_percent,
            org_id=standing.org_id,
            limit=standing.limit,
            used=standing.used,
            crossed_at=crossed_at,
        )
        .on_conflict_do_nothing()
        .returning(QuotaAlert.key_id)
    )
    return (await session.scalar(stmt)) is not None


async def alerts_for_key(session: AsyncSession, key_id: uuid.UUID) -> list[QuotaAlert]:
    """Thresholds announced for a key, oldest first."""
    rows = await session.scalars(
        select(QuotaAlert).where(QuotaAlert.key_id == key_id).order_by(QuotaAlert.crossed_at)
    )
    return list(rows)


async def key_limits(session: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    """The key's registry row (owner and limits), or None."""
    found: ApiKey | None = await session.get(ApiKey, key_id)
    return found


async def used_in(session: AsyncSession, key_id: uuid.UUID, period: str, start: date) -> int:
    """Admitted requests of a key in one period (0 when none)."""
    used = await session.scalar(
        select(QuotaUsage.used).where(
            QuotaUsage.key_id == key_id,
            QuotaUsage.period == period,
            QuotaUsage.period_start == start,
        )
    )
    return int(used or 0)
