"""Background duties of a billing replica: publishing moved balances and forgetting
expired idempotency keys and debited request ids.

Runs beside the HTTP server and the consumer; each round is its own short
transaction, and accounts another transaction holds are skipped, so it never blocks
debits or top-ups. Any number of replicas may run it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tollgate.billing.balances import service as balances
from tollgate.billing.config import Settings
from tollgate.billing.idempotency import service as idempotency
from tollgate.billing.ledger import service as ledger
from tollgate.kit.db import SessionMaker

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 600.0


async def run_maintenance(sessions: SessionMaker, settings: Settings) -> None:
    """Loop until cancelled; errors are logged and retried next round."""
    tick = min(1.0, settings.balance_publish_interval_seconds / 2)
    next_purge = time.monotonic()
    while True:
        try:
            async with sessions() as session, session.begin():
                published = await balances.publish_due_balances(session, settings)
            if published:
                log.debug("balances published", extra={"accounts": published})
            if time.monotonic() >= next_purge:
                async with sessions() as session, session.begin():
                    keys = await idempotency.forget_expired(session, settings)
                    ids = await ledger.forget_old_request_ids(session, settings)
                log.info("purged", extra={"idempotency_keys": keys, "request_ids": ids})
                next_purge = time.monotonic() + PURGE_EVERY_SECONDS
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("billing maintenance failed; retrying", exc_info=True)
        await asyncio.sleep(tick)
