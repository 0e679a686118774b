"""Quota rules: count admitted requests per key and period; announce 80 % and 100 %.

A key's limits come from `tollgate.accounts.keys.v1` (`limits.per_day` against the
UTC calendar day, `limits.per_month` against the UTC calendar month; the gateway
enforces the same numbers as sliding windows, so an alert is the customer's warning,
not the enforcement). Only admitted requests count
(`RequestCompleted`): rejected ones never reached the upstream. Counting and
announcing happen in the ingest transaction, together with the consumed offsets, and
each (key, period, threshold) is recorded in `quota_alerts` before its event goes to
the outbox, so a redelivery or a replay never announces twice. Never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from tollgate.contracts.events.accounts import KeyUpserted
from tollgate.contracts.events.usage import UsagePeriod, UsageThresholdCrossed
from tollgate.kit.db import BIGINT_MAX
from tollgate.kit.outbox import emit
from tollgate.usage.quotas import repository

THRESHOLDS = (80, 100)
"""Percentages of a limit announced, once each per key and period."""


def _storable(limit: int | None) -> int | None:
    """A limit as a bigint holds it: the contract bounds none, and one past 2^63 - 1 would
    fail the registry's batch on every retry. No count reaches 2^63 - 1, so capping it
    changes no alert."""
    return None if limit is None else min(limit, BIGINT_MAX)


async def apply_key_state(session: AsyncSession, key: KeyUpserted) -> bool:
    """Take in a key's latest state (stale versions are ignored); True when stored."""
    return await repository.upsert_key(
        session,
        key_id=key.key_id,
        org_id=key.org_id,
        per_day=_storable(key.limits.per_day),
        per_month=_storable(key.limits.per_month),
        version=key.version,
        updated_at=key.updated_at,
    )


async def forget_key(session: AsyncSession, key_id: uuid.UUID) -> None:
    """A key was deleted (tombstone): drop its limits and ownership."""
    await repository.delete_key(session, key_id)


def _month_start(day: date) -> date:
    return day.replace(day=1)


async def count_admitted(
    session: AsyncSession,
    admitted: Mapping[tuple[uuid.UUID, date], tuple[int, datetime]],
) -> list[UsageThresholdCrossed]:
    """Count newly ingested admitted requests against their keys' quotas and enqueue a
    `UsageThresholdCrossed` for every threshold reached for the first time.

    `admitted` maps (key, UTC day) to how many requests of that key were admitted that
    day and the latest of their times (reported as `crossed_at`).
    """
    counts: dict[tuple[uuid.UUID, str, date], int] = {}
    latest: dict[tuple[uuid.UUID, str, date], datetime] = {}
    for (key_id, day), (count, last) in admitted.items():
        for period, start in ((UsagePeriod.DAY, day), (UsagePeriod.MONTH, _month_start(day))):
            slot = (key_id, period.value, start)
            counts[slot] = counts.get(slot, 0) + count
            if slot not in latest or latest[slot] < last:
                latest[slot] = last
    if not counts:
        return []
    slots = sorted(counts)
    standings = await repository.add_usage(
        session,
        [slot[0] for slot in slots],
        [slot[1] for slot in slots],
        [slot[2] for slot in slots],
        [counts[slot] for slot in slots],
        near_percent=min(THRESHOLDS),
    )
    announced = []
    for standing in standings:
        crossed_at = latest[(standing.key_id, standing.period, standing.period_start)]
        for threshold in THRESHOLDS:
            if standing.used * 100 < threshold * standing.limit:
                continue
            if not await repository.record_alert(session, standing, threshold, crossed_at):
                continue
            crossed = UsageThresholdCrossed(
                org_id=standing.org_id,
                key_id=standing.key_id,
                period=UsagePeriod(standing.period),
                period_start=standing.period_start,
                threshold_percent=threshold,
                limit=standing.limit,
                used=standing.used,
                crossed_at=crossed_at,
            )
            await emit(session, crossed, subject=str(standing.key_id))
            announced.append(crossed)
    return announced
