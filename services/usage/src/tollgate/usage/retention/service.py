"""Retention rules: which day partitions must exist and which are past retention.

Never commits; the caller (the ingest consumer or the maintenance job) owns the
transaction. Partition DDL runs under an advisory lock, so replicas never race.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.usage.retention import repository
from tollgate.usage.retention.repository import PARTITIONED_TABLES

log = logging.getLogger(__name__)

DAYS_AHEAD = 2
"""Partitions exist from today to this many days ahead before any event needs them."""


@dataclass
class PartitionDays:
    """Which day partitions this process knows to exist (a cache, so the hot path
    issues DDL only for a day it has not seen)."""

    known: dict[str, set[date]] = field(
        default_factory=lambda: {table: set() for table in PARTITIONED_TABLES}
    )

    def missing(self, days: Iterable[date]) -> set[date]:
        """Days some partitioned table has no known partition for."""
        wanted = set(days)
        return {day for day in wanted for table in self.known if day not in self.known[table]}


async def ensure_partitions(
    session: AsyncSession, days: Iterable[date], cache: PartitionDays
) -> None:
    """Create the day partitions of the log and minute aggregates for `days`."""
    wanted = set(days)
    if not wanted:
        return
    await repository.lock_partitions(session)
    for table in PARTITIONED_TABLES:
        existing = await repository.existing_partition_days(session, table)
        for day in sorted(wanted - existing):
            await repository.create_day_partition(session, table, day)
            log.info("partition created", extra={"table": table, "day": day.isoformat()})
        cache.known[table] = existing | wanted


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of data is kept, in days."""

    request_log_days: int
    minute_days: int
    hour_days: int
    quota_days: int = 62  # a month of daily counters plus last month's total


def oldest_kept_day(now: datetime, days: int) -> date:
    """The oldest day a table kept for `days` days still holds at `now`."""
    return (now - timedelta(days=days)).date()


def _minutes_kept_since(now: datetime, policy: RetentionPolicy) -> datetime:
    """The start of the oldest day whose minute rows are still kept (whole days go)."""
    return datetime.combine(oldest_kept_day(now, policy.minute_days), time(0), tzinfo=UTC)


def complete_days_since(now: datetime, policy: RetentionPolicy) -> datetime:
    """The start of the oldest UTC day whose minute and hour rows are all still kept at
    `now`: before it retention has dropped the minutes (whole days) or some hours, so a
    day's total can no longer be taken apart into its hours and minutes."""
    minutes = _minutes_kept_since(now, policy)
    hour_cutoff = now - timedelta(days=policy.hour_days)
    hours = datetime.combine(hour_cutoff.date(), time(0), tzinfo=UTC)
    if hours < hour_cutoff:  # that day lost its first hours: the next one is whole
        hours += timedelta(days=1)
    return max(minutes, hours)


async def enforce_retention(
    session: AsyncSession, policy: RetentionPolicy, now: datetime, cache: PartitionDays
) -> dict[str, int]:
    """Drop the day partitions whose whole day is older than their retention, delete
    old hourly rows and quota counters. Returns what was dropped, per table."""
    await repository.lock_partitions(session)
    dropped: dict[str, int] = {}
    keep = {"request_log": policy.request_log_days, "usage_minute": policy.minute_days}
    for table, days in keep.items():
        oldest_kept = oldest_kept_day(now, days)
        existing = await repository.existing_partition_days(session, table)
        old = sorted(day for day in existing if day < oldest_kept)
        for day in old:
            await repository.drop_day_partition(session, table, day)
        cache.known[table] = existing - set(old)
        dropped[table] = len(old)
    dropped["usage_hour"] = await repository.delete_hours_before(
        session, now - timedelta(days=policy.hour_days)
    )
    # The org rollups keep what their keyed tables keep (minutes: whole days).
    for table, cutoff in (
        ("usage_org_minute", _minutes_kept_since(now, policy)),
        ("usage_org_hour", now - timedelta(days=policy.hour_days)),
        ("usage_key_hour", now - timedelta(days=policy.hour_days)),
        # a day row goes with the last of its hours
        ("usage_key_day", now - timedelta(days=policy.hour_days) - timedelta(days=1)),
    ):
        dropped[table] = await repository.delete_org_rollups_before(table, session, cutoff)
    dropped["quota_usage"] = await repository.delete_quota_usage_before(
        session, (now - timedelta(days=policy.quota_days)).date()
    )
    return dropped


def days_ahead(now: datetime) -> set[date]:
    """Today and the next `DAYS_AHEAD` days (UTC)."""
    today = now.date()
    return {today + timedelta(days=n) for n in range(DAYS_AHEAD + 1)}
