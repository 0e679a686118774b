"""Background duties of a billing replica: publishing moved balances, starting the
next plan period of orgs whose period ended, and forgetting expired idempotency keys
and debited request ids.

Two jobs on the kit's `every` loop, beside the HTTP server and the consumer; each
round is its own short transaction, and accounts another transaction holds are
skipped, so they never block debits or top-ups. Any number of replicas may run them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from tollgate.billing.balances import service as balances
from tollgate.billing.config import Settings
from tollgate.billing.idempotency import service as idempotency
from tollgate.billing.ledger import service as ledger
from tollgate.billing.plans import service as plans
from tollgate.kit.db import SessionMaker
from tollgate.kit.jobs import every

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 600.0


async def publish_balances(sessions: SessionMaker, settings: Settings) -> None:
    """One round: publish the balances that moved since they were last published."""
    async with sessions() as session, session.begin():
        published = await balances.publish_due_balances(session, settings)
    if published:
        log.debug("balances published", extra={"accounts": published})


async def purge_expired(sessions: SessionMaker, settings: Settings) -> None:
    """One round: forget expired idempotency keys and old debited request ids."""
    async with sessions() as session, session.begin():
        keys = await idempotency.forget_expired(session, settings)
        ids = await ledger.forget_old_request_ids(session, settings)
    log.info("purged", extra={"idempotency_keys": keys, "request_ids": ids})


async def run_balance_publisher(sessions: SessionMaker, settings: Settings) -> None:
    """`publish_balances` about twice per `balance_publish_interval_seconds` (at most
    every second), until cancelled."""
    tick = min(1.0, settings.balance_publish_interval_seconds / 2)

    async def step() -> None:
        await publish_balances(sessions, settings)

    await every(tick, step, name="billing balance publisher")


async def run_purge(sessions: SessionMaker, settings: Settings) -> None:
    """`purge_expired` every ten minutes, until cancelled."""

    async def step() -> None:
        await purge_expired(sessions, settings)

    await every(PURGE_EVERY_SECONDS, step, name="billing purge")


async def roll_plan_periods(sessions: SessionMaker) -> None:
    """One round: start the next period of orgs whose plan period (or trial) ended, and
    suspend past-due orgs whose grace ended."""
    async with sessions() as session, session.begin():
        rolled = await plans.roll_periods(session, datetime.now(UTC))
        suspended = await plans.suspend_after_grace(session, datetime.now(UTC))
    if rolled or suspended:
        log.info("plan periods started", extra={"orgs": rolled, "suspended": suspended})


async def run_period_roller(sessions: SessionMaker, settings: Settings) -> None:
    """`roll_plan_periods` every `plan_period_check_seconds`, until cancelled."""

    async def step() -> None:
        await roll_plan_periods(sessions)

    await every(settings.plan_period_check_seconds, step, name="billing plan periods")
