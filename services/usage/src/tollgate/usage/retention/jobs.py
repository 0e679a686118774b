"""The maintenance job: a background task of the service process (its transport).

Every `maintenance_interval_seconds` (the kit's `every` loop) it creates the day
partitions ahead and enforces retention, each in its own transaction. Failures are
logged and retried with back-off; they never stop ingestion (which creates a missing
partition itself).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from tollgate.kit.db import SessionMaker
from tollgate.kit.jobs import every
from tollgate.usage.config import Settings
from tollgate.usage.retention.service import (
    PartitionDays,
    RetentionPolicy,
    days_ahead,
    enforce_retention,
    ensure_partitions,
)

log = logging.getLogger(__name__)


def policy_from(settings: Settings) -> RetentionPolicy:
    """The retention policy configured in settings."""
    return RetentionPolicy(
        request_log_days=settings.request_log_retention_days,
        minute_days=settings.minute_retention_days,
        hour_days=settings.hour_retention_days,
    )


async def maintain_once(sessions: SessionMaker, settings: Settings, cache: PartitionDays) -> None:
    """One round: partitions ahead, then retention."""
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        await ensure_partitions(session, days_ahead(now), cache)
    async with sessions() as session, session.begin():
        dropped = await enforce_retention(session, policy_from(settings), now, cache)
    if any(dropped.values()):
        log.info("retention enforced", extra={"dropped": dropped})


async def run_maintenance(sessions: SessionMaker, settings: Settings, cache: PartitionDays) -> None:
    """Maintain until cancelled."""

    async def step() -> None:
        await maintain_once(sessions, settings, cache)

    await every(settings.maintenance_interval_seconds, step, name="usage maintenance")
