"""`python -m tollgate.billing top-up --org ORG --amount N --key KEY [--reason TEXT]`:
credits added to an org in billing's database, once per key, without the HTTP API
(which needs accounts running and an admin token). `make up` funds the demo org with it
before any service runs, so billing never announces that org exhausted.

The ledger entry is keyed as the credits route keys an `Idempotency-Key`
(`ledger.service.credit_key`): a top-up made one way is not made again the other way.
The balance state and `CreditsToppedUp` go through the outbox, sent when billing runs.
Prints `topped up N credits` or `already topped up`.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

from tollgate.billing.config import Settings
from tollgate.billing.ledger import repository, service
from tollgate.billing.ledger.schemas import MAX_AMOUNT
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.logs import configure_logging

ACTOR = "cli"


def top_up(settings: Settings, args: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tollgate.billing top-up")
    parser.add_argument("--org", required=True, type=uuid.UUID)
    parser.add_argument("--amount", required=True, type=int)
    parser.add_argument("--key", required=True, help="applied once per key")
    parser.add_argument("--reason", default="top-up")
    ns = parser.parse_args(args)
    if not 1 <= ns.amount <= MAX_AMOUNT:
        parser.error(f"--amount must be 1 to {MAX_AMOUNT}")
    configure_logging("billing", settings.log_level, json=settings.log_json)
    key = service.credit_key(ns.org, ns.key)

    async def run() -> bool:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with session_maker(engine)() as session, session.begin():
                if await repository.has_entry_keyed(session, key):
                    return False
                await service.add_credits(
                    session,
                    ns.org,
                    settings,
                    kind="top_up",
                    amount=ns.amount,
                    actor=ACTOR,
                    reason=ns.reason,
                    idempotency_key=key,
                )
            return True
        finally:
            await engine.dispose()

    print(f"topped up {ns.amount} credits" if asyncio.run(run()) else "already topped up")
    return 0
