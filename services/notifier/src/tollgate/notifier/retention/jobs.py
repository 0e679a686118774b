"""The retention job: a background task of the service process (its transport).

Every `retention_interval_seconds` it deletes what is past retention, table by
table, in batches of `retention_batch_size` rows, each batch in its own short
transaction so that no long lock or huge transaction competes with the workers.
Failures are logged and retried with back-off (the kit's `every` loop). Several
replicas may run it at once: batches skip rows another transaction holds.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter

from tollgate.kit.db import SessionMaker
from tollgate.kit.jobs import every
from tollgate.notifier.clock import Clock
from tollgate.notifier.config import Settings
from tollgate.notifier.retention.service import (
    RetentionPolicy,
    delete_expired_batch,
    expired,
)

log = logging.getLogger(__name__)

DELETED = Counter(
    "tollgate_notifier_retention_deleted_total", "rows deleted by retention", ["table"]
)


def policy_from(settings: Settings) -> RetentionPolicy:
    """The retention policy configured in settings."""
    return RetentionPolicy(
        webhook_days=settings.webhook_retention_days,
        email_days=settings.email_retention_days,
        sms_days=settings.sms_retention_days,
        dedup_days=settings.dedup_retention_days,
        batch_size=settings.retention_batch_size,
    )


class RetentionJob:
    """Deletes rows past retention, one bounded batch per transaction."""

    def __init__(
        self,
        *,
        sessions: SessionMaker,
        clock: Clock,
        policy: RetentionPolicy,
        interval_seconds: float = 3600.0,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._policy = policy
        self._interval = interval_seconds

    async def run_once(self) -> dict[str, int]:
        """One round over every table; returns how many rows went, per table."""
        deleted: dict[str, int] = {}
        for rows in expired(self._policy, self._clock.now()):
            total = 0
            while True:
                async with self._sessions() as session, session.begin():
                    count = await delete_expired_batch(session, rows, self._policy.batch_size)
                total += count
                DELETED.labels(rows.table).inc(count)
                if count < self._policy.batch_size:
                    break
                await asyncio.sleep(0)  # let the workers in between batches
            deleted[rows.table] = total
        if any(deleted.values()):
            log.info("retention enforced", extra={"deleted": deleted})
        return deleted

    async def run(self) -> None:
        """Enforce retention until cancelled."""

        async def step() -> None:
            await self.run_once()

        await every(self._interval, step, name="notifier retention")
