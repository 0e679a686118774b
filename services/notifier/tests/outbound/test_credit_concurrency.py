"""A prepaid org's credit check under concurrent sends from two notifier replicas on
one Postgres: the guarantee is the database's (the lock on the org's row of charges,
taken last and held to the commit), not one process's, so the replicas together never
accept more than the credits cover, and a refused send leaves nothing behind."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from sqlalchemy import func, select

from tollgate.notifier.models import SmsConversation, SmsOrgCharges, SmsOutbound

from ..factories import api_client
from .test_send import NUMBER_A, ORG_A, caller, environment, outbox_types
from .test_send_rules import publish_balance


async def test_fifty_concurrent_sends_on_two_replicas_spend_exactly_the_credits(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        notifier = env.app.state.notifier
        publish_balance(env, ORG_A, 100, 1, at=env.clock.now())  # +4179: 5 per segment
        async with api_client(notifier.settings, env.mint, env.clock) as (other, other_app):
            other_app.state.notifier.sms_balances.apply(notifier.sms_balances.of(ORG_A))
            replicas = (env.client, other)

            async def send(i: int) -> int:
                body = {"to": f"+41791234{i:03d}", "from": NUMBER_A, "text": "hi"}
                response = await replicas[i % 2].post(
                    "/v1/sms/messages", json=body, headers=caller(ORG_A)
                )
                return response.status_code

            statuses = Counter(await asyncio.gather(*(send(i) for i in range(50))))

        assert statuses == {202: 20, 402: 30}
        events = Counter(type(e).__name__ for e in await outbox_types(env.sessions))
        assert events == {"SmsCharged": 20, "SmsStatusChanged": 20}
        charged = [e for e in await outbox_types(env.sessions) if type(e).__name__ == "SmsCharged"]
        assert sum(c.amount for c in charged) == 100
        assert len({c.charge_id for c in charged}) == 20
        async with env.sessions() as session:  # refused sends rolled back all they wrote
            assert await session.scalar(select(func.count()).select_from(SmsOutbound)) == 20
            assert await session.scalar(select(SmsOrgCharges.charged)) == 100
            assert await session.scalar(select(func.count()).select_from(SmsConversation)) == 20
