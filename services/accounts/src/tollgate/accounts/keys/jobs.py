"""The keys' background job, run by every replica (rows are claimed with SKIP LOCKED,
so replicas never double-send): warn owners of keys about to expire, and republish
keys whose rotation grace has ended. Owns its transactions, like a consumer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from tollgate.accounts.config import Settings
from tollgate.accounts.keys import service
from tollgate.kit.db import SessionMaker
from tollgate.kit.jobs import every

log = logging.getLogger(__name__)


async def run_once(sessions: SessionMaker, settings: Settings) -> tuple[int, int]:
    """One pass; returns (keys warned, keys republished without lapsed secrets)."""
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        warned = await service.warn_expiring_keys(session, settings, now=now)
    async with sessions() as session, session.begin():
        tidied = await service.drop_lapsed_secrets(session, settings, now=now)
    return warned, tidied


async def run_forever(sessions: SessionMaker, settings: Settings) -> None:
    """`run_once` every `key_job_interval_seconds` until cancelled (the kit's `every`:
    errors are logged and retried with back-off)."""

    async def step() -> None:
        warned, tidied = await run_once(sessions, settings)
        if warned or tidied:
            log.info("key job", extra={"warned": warned, "republished": tidied})

    await every(settings.key_job_interval_seconds, step, name="key job")
