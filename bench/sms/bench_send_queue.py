"""Throughput of the notifier's SMS send queue (`outbound/worker.py`) in one process.

Seeds N queued messages over a few orgs in a fresh notifier database, then runs the
send worker's rounds against the loopback fake Twilio until every message is `sent`,
and prints a table per round size (`sms_send_concurrency`): messages per second and
database statements per message (counted on the engine: an executemany is one).
With `--webhooks`, every org has an endpoint subscribed to SMS status events, so each
status change also queues a webhook delivery.

    .venv/bin/python bench/sms/bench_send_queue.py [--messages 2000] [--orgs 10]
        [--rounds 16,64] [--webhooks]

Postgres: BENCH_DATABASE_URL (server-level URL) when set, else the local one on
127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.migrations import upgrade_head
from tollgate.kit.sealing import Sealer, new_sealing_key
from tollgate.notifier.config import Settings
from tollgate.notifier.models import SmsOutbound, SmsProvider, WebhookEndpoint
from tollgate.notifier.outbound.fake_twilio import FakeTwilio
from tollgate.notifier.outbound.worker import SmsSendWorker

SERVER = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


async def _create_database(name: str) -> str:
    admin = create_async_engine(SERVER, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return SERVER.rsplit("/", 1)[0] + f"/{name}"


async def _drop_database(name: str) -> None:
    admin = create_async_engine(SERVER, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


def _message(org: uuid.UUID, i: int, now: datetime) -> SmsOutbound:
    return SmsOutbound(
        id=uuid.uuid4(),
        org_id=org,
        key_id=uuid.uuid4(),
        from_number="+41445550100",
        to_number=f"+4179{i:07d}",
        body=f"Your code is {i:06d}",
        encoding="gsm7",
        segments=1,
        destination_prefix="+41",
        price_per_segment=7,
        amount=7,
        charge_id=uuid.uuid4(),
        client_reference=str(i),
        status_callback=True,
        status="queued",
        send_state="pending",
        attempts=0,
        next_attempt_at=now,
        refunded=False,
        queued_at=now,
        updated_at=now,
    )


async def run_one(messages: int, orgs: int, round_size: int, webhooks: bool) -> dict[str, Any]:
    name = f"bench_sms_{uuid.uuid4().hex[:10]}"
    url = await _create_database(name)
    fake = FakeTwilio(auto_callbacks=False)
    await fake.start()
    try:
        await asyncio.to_thread(upgrade_head, "tollgate.notifier", url)
        key = new_sealing_key()
        settings = Settings(
            database_url=url,
            sealing_keys=key,
            kafka_bootstrap_servers="127.0.0.1:1",
            instance_id="bench",
            sms_public_url="https://notifier.example.com",
            sms_send_concurrency=round_size,
        )
        sealer = Sealer(key)
        engine = create_engine(url, pool_size=5)
        sessions = session_maker(engine)
        now = datetime.now(UTC)
        org_ids = [uuid.uuid4() for _ in range(orgs)]
        async with sessions() as session, session.begin():
            session.add(
                SmsProvider(
                    id=uuid.uuid4(),
                    name="fake",
                    kind="twilio",
                    config={"base_url": fake.base_url, "account_sid": fake.account_sid},
                    credentials_sealed=sealer.seal(json.dumps({"auth_token": fake.auth_token})),
                    rate_per_second=100_000,
                    priority=1,
                    enabled=True,
                    created_at=now,
                )
            )
            if webhooks:
                for org in org_ids:
                    session.add(
                        WebhookEndpoint(
                            id=uuid.uuid4(),
                            org_id=org,
                            url="https://hooks.example.com/sms",
                            description="",
                            event_types=["tollgate.notifier.sms.status.v1"],
                            enabled=True,
                            secret_sealed=sealer.seal("whsec_" + "x" * 32),
                            created_at=now,
                            updated_at=now,
                        )
                    )
            session.add_all(_message(org_ids[i % orgs], i, now) for i in range(messages))

        statements = 0

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        worker = SmsSendWorker(sessions=sessions, sealer=sealer, clock=_Clock(), settings=settings)
        started = time.perf_counter()
        try:
            while await worker.run_once():
                pass
        finally:
            await worker.close()
        seconds = time.perf_counter() - started
        event.remove(engine.sync_engine, "before_cursor_execute", count)
        async with sessions() as session:
            sent = await session.scalar(select(func.count()).where(SmsOutbound.status == "sent"))
        await engine.dispose()
        assert sent == messages == len(fake.messages), (sent, len(fake.messages))
        return {
            "round": round_size,
            "seconds": seconds,
            "per_second": messages / seconds,
            "statements": statements / messages,
        }
    finally:
        await fake.stop()
        await _drop_database(name)


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--orgs", type=int, default=10)
    parser.add_argument("--rounds", default="16,64", help="round sizes (sms_send_concurrency)")
    parser.add_argument("--webhooks", action="store_true", help="every org has an endpoint")
    args = parser.parse_args()
    rows = [
        await run_one(args.messages, args.orgs, int(size), args.webhooks)
        for size in args.rounds.split(",")
    ]
    print(
        f"\nSMS send queue: {args.messages} messages, {args.orgs} orgs, "
        f"webhooks {'on' if args.webhooks else 'off'}\n"
    )
    print(f"{'round size':>10} | {'seconds':>8} | {'messages/s':>10} | {'statements/msg':>14}")
    print(f"{'-' * 10}-+-{'-' * 8}-+-{'-' * 10}-+-{'-' * 14}")
    for r in rows:
        print(
            f"{r['round']:>10} | {r['seconds']:>8.2f} | {r['per_second']:>10.0f} | "
            f"{r['statements']:>14.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
