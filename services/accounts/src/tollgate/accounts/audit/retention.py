"""The audit log's retention: entries older than `audit_retention_days` are deleted,
in batches, by a background job every replica runs (the kit's `every`; concurrent
purges only find less to delete). The table is otherwise append-only (a trigger
refuses UPDATE, DELETE and TRUNCATE; see migration 0010). Owns its transactions.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from tollgate.accounts.audit import repository
from tollgate.accounts.config import Settings
from tollgate.kit.db import SessionMaker
from tollgate.kit.jobs import every

log = logging.getLogger(__name__)

PURGE_BATCH = 5000


async def purge_once(sessions: SessionMaker, settings: Settings, now: datetime) -> int:
    """Delete one batch of expired entries (none when retention is 0: kept forever);
    returns how many."""
    if settings.audit_retention_days == 0:
        return 0
    cutoff = now - timedelta(days=settings.audit_retention_days)
    async with sessions() as session, session.begin():
        return await repository.purge_before(session, cutoff, PURGE_BATCH)


async def run_forever(sessions: SessionMaker, settings: Settings) -> None:
    """`purge_once` every `audit_purge_interval_seconds` (at once again while full
    batches go) until cancelled."""

    async def step() -> bool:
        purged = await purge_once(sessions, settings, datetime.now(UTC))
        if purged:
            log.info("audit entries past retention purged", extra={"purged": purged})
        return purged == PURGE_BATCH

    await every(settings.audit_purge_interval_seconds, step, name="audit retention")
