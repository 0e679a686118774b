"""SQL of retention: day partitions of `request_log` / `usage_minute`, row deletes.

Table names come from `PARTITIONED_TABLES` only and dates are formatted by us, so the
DDL built here never contains caller input.
"""

from __future__ import annotations

import zlib
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.usage.models import (
    QuotaUsage,
    UsageHour,
    UsageKeyDay,
    UsageKeyHour,
    UsageOrgHour,
    UsageOrgMinute,
)

PARTITIONED_TABLES = ("request_log", "usage_minute")
_LOCK_KEY = zlib.crc32(b"tollgate-usage:partitions")


def partition_name(table: str, day: date) -> str:
    """The partition of `table` holding `day` (UTC)."""
    return f"{table}_p{day:%Y%m%d}"


async def lock_partitions(session: AsyncSession) -> None:
    """Serialise partition DDL across replicas until the transaction ends."""
    await session.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))


async def existing_partition_days(session: AsyncSession, table: str) -> set[date]:
    """The days that have a partition of `table`."""
    if table not in PARTITIONED_TABLES:
        raise ValueError(table)
    rows = await session.execute(
        text(
            "SELECT c.relname FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent "
            "WHERE p.relname = :table"
        ),
        {"table": table},
    )
    days = set()
    for (name,) in rows:
        suffix = name.removeprefix(f"{table}_p")
        if len(suffix) == 8 and suffix.isdigit():
            days.add(datetime.strptime(suffix, "%Y%m%d").date())
    return days


async def create_day_partition(session: AsyncSession, table: str, day: date) -> None:
    """Create the partition of `table` for `day` unless it exists."""
    if table not in PARTITIONED_TABLES:
        raise ValueError(table)
    start = f"{day.isoformat()} 00:00:00+00"
    end = f"{(day + timedelta(days=1)).isoformat()} 00:00:00+00"
    await session.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {partition_name(table, day)} PARTITION OF {table} "
            f"FOR VALUES FROM ('{start}') TO ('{end}')"
        )
    )


async def drop_day_partition(session: AsyncSession, table: str, day: date) -> None:
    """Drop the partition of `table` for `day` with all its rows (a cheap metadata drop)."""
    if table not in PARTITIONED_TABLES:
        raise ValueError(table)
    await session.execute(text(f"DROP TABLE IF EXISTS {partition_name(table, day)}"))


async def delete_hours_before(session: AsyncSession, cutoff: datetime) -> int:
    """Delete hourly aggregates older than `cutoff`; returns how many rows went."""
    result = await session.execute(delete(UsageHour).where(UsageHour.bucket < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


async def delete_org_rollups_before(table: str, session: AsyncSession, cutoff: datetime) -> int:
    """Delete rows of a rollup (`usage_org_minute`, `usage_org_hour`, `usage_key_hour`,
    `usage_key_day`) older than `cutoff`; returns how many rows went."""
    model: Any = {
        "usage_org_minute": UsageOrgMinute,
        "usage_org_hour": UsageOrgHour,
        "usage_key_hour": UsageKeyHour,
        "usage_key_day": UsageKeyDay,
    }[table]
    result = await session.execute(delete(model).where(model.bucket < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


async def delete_quota_usage_before(session: AsyncSession, cutoff: date) -> int:
    """Delete quota counters of periods that started before `cutoff`."""
    result = await session.execute(delete(QuotaUsage).where(QuotaUsage.period_start < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
