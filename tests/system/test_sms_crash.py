"""`kill -9` of the notifier while customers send SMS through the gateway: no message
sent twice to the provider beyond what its idempotency absorbs, none lost, none billed
twice. Prints the numbers.

While the notifier is down the gateway answers 502 and the customer sends again (a
502 may hide a message the notifier had already accepted: such a message exists twice
because the customer sent it twice, and is charged twice, as two messages; it is
counted apart as `customer resends`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tollgate.notifier.outbound.fake_twilio import FakeTwilio

from .services import start_all
from .test_sms_e2e import (
    Outage,
    WebhookSink,
    balance,
    customer,
    make_stack,
    send_all,
    texts,
    wait_for,
)

pytestmark = pytest.mark.system

CRASH_MESSAGES = int(os.environ.get("SMS_CRASH_MESSAGES", "150"))
CRASH_KILLS = int(os.environ.get("SMS_CRASH_KILLS", "3"))


async def rows(url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in (await conn.execute(text(sql))).all()]
    finally:
        await engine.dispose()


async def test_kill_9_of_the_notifier_while_sending(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    fake = FakeTwilio(callback_delay=0.01)
    await fake.start()
    stack = make_stack(tmp_path, kafka_bootstrap, topic_prefix, database_factory, fake)
    sink = WebhookSink()
    credits = 1_000_000
    try:
        start_all(stack.all)
        async with sink.running(), customer(stack, sink, credits) as c:
            batch = texts(CRASH_MESSAGES, seed=9)
            outage = Outage()
            sending = asyncio.create_task(send_all(c, batch, outage=outage))
            started = time.monotonic()
            kills = 0
            while kills < CRASH_KILLS and not sending.done():
                await asyncio.sleep(1.0)
                outage.down = True
                stack.notifier.kill9()
                kills += 1
                await asyncio.sleep(0.3)
                # In a thread: the fake provider and the senders live on this loop.
                await asyncio.to_thread(stack.notifier.start)
                outage.down, outage.back_at = False, time.monotonic()
            accepted, failed_calls = await sending
            # The queue drains after the last restart; leases of the killed sender expire.
            sql_url = stack.notifier_db

            async def settled() -> bool:
                (pending,) = await rows(
                    sql_url,
                    "SELECT count(*) FROM sms_outbound WHERE status NOT IN "
                    "('delivered', 'undelivered', 'failed')",
                )
                return pending[0] == 0

            settle_seconds = await wait_for(settled, 180, "every message delivered")
            stored = await rows(
                sql_url, "SELECT id::text, client_reference, status, amount FROM sms_outbound"
            )
            per_reference = Counter(str(r[1]) for r in stored)
            customer_resends = sum(n - 1 for n in per_reference.values())
            assert set(per_reference) == {str(i) for i in range(CRASH_MESSAGES)}
            assert set(accepted) <= {str(r[0]) for r in stored}
            lost = sum(1 for r in stored if r[2] != "delivered")
            at_provider = Counter(m.token for m in fake.messages.values())
            sent_twice = sum(n - 1 for n in at_provider.values())
            resent_to_provider = sum(n - 1 for n in fake.posts_by_token.values())
            assert {str(r[0]) for r in stored} == set(at_provider)
            expected_total = sum(int(str(r[3])) for r in stored)

            async def billed() -> bool:
                return await balance(c) == credits - expected_total

            await wait_for(billed, 60, "billing to settle")
            (debits,) = await rows(
                stack.billing_db,
                "SELECT count(*), count(DISTINCT idempotency_key) FROM ledger_entries "
                "WHERE actor = 'notifier:sms' AND kind = 'debit'",
            )
            billed_twice = int(str(debits[0])) - len(stored)
            assert lost == 0
            assert sent_twice == 0
            assert billed_twice == 0
            assert await balance(c) == credits - expected_total
        print(
            f"\nkill -9 x{kills} of the notifier during {CRASH_MESSAGES} sends "
            f"({time.monotonic() - started:.1f} s, settled {settle_seconds:.1f} s after the "
            f"last send): lost {lost}, sent twice to the provider {sent_twice} "
            f"(re-sent with the same idempotency token {resent_to_provider}), billed twice "
            f"{billed_twice}; gateway 502s retried by the customer {failed_calls}, messages "
            f"the customer created twice that way {customer_resends}"
        )
    finally:
        for svc in reversed(stack.all):
            svc.stop()
        await fake.stop()
