"""Webhook delivery survives `kill -9` of the notifier: every message reaches the
receiver (lost == 0), each with its stable `webhook-id`; duplicates are counted.

Sized for a shared 2-core machine: CRASH_MESSAGES messages and CRASH_KILLS kills
(the issue's 5,000 / 10 runs the same code with the constants raised).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.billing import CreditsToppedUp
from tollgate.contracts.ids import uuid7
from tollgate.kit.db import session_maker
from tollgate.kit.kafka import make_producer, topic_name
from tollgate.kit.localdeps import free_port
from tollgate.kit.netpolicy import NetworkPolicy, parse_networks
from tollgate.kit.sealing import Sealer, new_sealing_key
from tollgate.kit.testing.loopback import serving
from tollgate.kit.testing.polling import eventually
from tollgate.notifier.config import Settings
from tollgate.notifier.models import WebhookDelivery
from tollgate.notifier.webhooks import service as webhooks

from .services import service_process

pytestmark = pytest.mark.system

# CI size; the full size: NOTIFIER_CRASH_MESSAGES=5000 NOTIFIER_CRASH_KILLS=10.
CRASH_MESSAGES = int(os.environ.get("NOTIFIER_CRASH_MESSAGES", "1200"))
CRASH_KILLS = int(os.environ.get("NOTIFIER_CRASH_KILLS", "6"))


async def test_webhooks_survive_kill_9_of_the_notifier(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    sealing_key = new_sealing_key()
    database_url = database_factory("notifier")
    notifier = service_process(
        "notifier",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_url,
        extra={
            "SEALING_KEYS": sealing_key,
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
            "WEBHOOK_TIMEOUT_SECONDS": "2",
            "WEBHOOK_CONCURRENCY": "16",
            "WEBHOOK_ORG_CONCURRENCY": "16",
            "WEBHOOK_POLL_SECONDS": "0.1",
            "EMAIL_DIR": str(tmp_path / "mail"),
        },
    )
    seen: Counter[str] = Counter()

    async def receive(request: web.Request) -> web.StreamResponse:
        await request.read()
        seen[request.headers["webhook-id"]] += 1
        await asyncio.sleep(0.03)  # a receiver doing some work, so kills land mid-stream
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    port = free_port()
    async with serving(app, port):
        engine = create_async_engine(database_url)
        org = uuid.uuid4()
        try:
            async with session_maker(engine)() as session, session.begin():
                await webhooks.create_endpoint(
                    session,
                    Sealer(sealing_key),
                    org,
                    url=f"http://127.0.0.1:{port}/hook",
                    description="crash test receiver",
                    event_types=[],
                    enabled=True,
                    now=datetime.now(UTC),
                    policy=NetworkPolicy(allowed=parse_networks("127.0.0.1/32")),
                )
            settings = Settings(
                kafka_bootstrap_servers=kafka_bootstrap,
                kafka_topic_prefix=topic_prefix,
                kafka_enable_idempotence=False,
            )
            producer = make_producer(settings, client="crash-test")
            await producer.start()
            expected: set[str] = set()
            topic = topic_name(topics.BILLING_EVENTS, settings)
            try:
                for _ in range(CRASH_MESSAGES):
                    event = new_event(
                        CreditsToppedUp(
                            org_id=org,
                            amount=1,
                            balance=1,
                            ledger_entry_id=uuid7(),
                            occurred_at=datetime.now(UTC),
                        ),
                        source="tollgate/billing/test",
                    )
                    expected.add(f"msg_{uuid.UUID(event.id).hex}")
                    await producer.send(topic, encode(event), key=str(org).encode())
                await producer.flush()
            finally:
                await producer.stop()

            notifier.start()

            # Kill only once every message is queued and deliveries flow (consumer-group
            # joins take seconds on Tansu; the kills are aimed at the delivery worker).
            async def queued() -> int:
                async with engine.connect() as conn:
                    return int(await conn.scalar(select(func.count(WebhookDelivery.id))) or 0)

            await eventually(queued, lambda n: n >= CRASH_MESSAGES, within=60)
            await eventually(lambda: asyncio.sleep(0, len(seen)), lambda n: n >= 50, within=30)
            delivered_at_kill: list[int] = []
            for _ in range(CRASH_KILLS):
                await asyncio.sleep(1.0)
                delivered_at_kill.append(len(seen))
                notifier.kill9()
                # In a thread: the receiver lives on this loop and must keep answering.
                await asyncio.to_thread(notifier.start)
            seen_all = await eventually(
                lambda: asyncio.sleep(0, dict(seen)),
                lambda s: expected <= s.keys(),
                within=90,
                interval=0.5,
            )
            lost = expected - seen_all.keys()

            async def states_now() -> dict[str, int]:
                async with engine.connect() as conn:
                    query = select(WebhookDelivery.state, func.count()).group_by(
                        WebhookDelivery.state
                    )
                    return {row[0]: int(row[1]) for row in (await conn.execute(query)).all()}

            # A send whose outcome died with the process is re-sent after its lease.
            states = await eventually(
                states_now, lambda s: s == {"succeeded": CRASH_MESSAGES}, within=30, interval=0.5
            )
        finally:
            notifier.stop()
            await engine.dispose()
    # The kills must land while deliveries are in progress, or they prove nothing.
    in_progress = [n for n in delivered_at_kill if 0 < n < CRASH_MESSAGES]
    assert len(in_progress) >= CRASH_KILLS // 2, delivered_at_kill
    assert not lost, f"{len(lost)} webhooks lost"
    assert states == {"succeeded": CRASH_MESSAGES}
    total = sum(seen.values())
    duplicates = total - len(seen)
    print(
        f"\n{CRASH_MESSAGES} webhooks through {CRASH_KILLS} kill -9s of the notifier: "
        f"0 lost, {duplicates} duplicate deliveries ({duplicates / CRASH_MESSAGES:.2%}); "
        f"delivered when each kill landed: {delivered_at_kill}"
    )
