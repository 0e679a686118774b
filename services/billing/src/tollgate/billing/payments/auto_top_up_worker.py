"""The auto top-up worker: charges queued top-ups on the kit's `every` loop.

Each round takes one due charge (SKIP LOCKED) in its own transaction, so several
workers per replica, and any number of replicas, share the queue; a round that found
one runs again at once, an idle one waits `auto_top_up_poll_seconds`. It polls only the
queue of charges, never the orgs.
"""

from __future__ import annotations

import asyncio

from tollgate.billing.config import Settings
from tollgate.billing.payments import auto_top_up as service
from tollgate.billing.payments.providers import PaymentProvider, payment_provider
from tollgate.kit.db import SessionMaker
from tollgate.kit.jobs import every


async def charge_round(
    sessions: SessionMaker, provider: PaymentProvider, settings: Settings
) -> bool:
    """One round: charge one due top-up; True when one was found (more may wait)."""
    async with sessions() as session, session.begin():
        return await service.charge_next(session, provider, settings) is not None


async def run_auto_top_up(sessions: SessionMaker, settings: Settings) -> None:
    """`auto_top_up_workers` charge loops, until cancelled."""
    if settings.auto_top_up_workers == 0:
        return
    provider = payment_provider(settings)

    async def step() -> bool:
        return await charge_round(sessions, provider, settings)

    try:
        async with asyncio.TaskGroup() as group:
            for number in range(settings.auto_top_up_workers):
                group.create_task(
                    every(settings.auto_top_up_poll_seconds, step, name=f"auto top-up {number}")
                )
    finally:
        await provider.aclose()
