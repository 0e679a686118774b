"""Debit throughput of one billing consumer process.

Produces N priced `request.completed` events over several orgs to a fresh topic
first, then starts one billing process (`python -m tollgate.billing`) and times it
from its first debit to the last: debited events per second, every event charged
exactly once (checked at the end). Prints a table.

    .venv/bin/python bench/billing/bench_debits.py [--events 200000] [--orgs 20]
        [--batch 5000]

Kafka and Postgres: BENCH_KAFKA_BOOTSTRAP / BENCH_DATABASE_URL (server-level URL)
when set; otherwise an embedded Tansu, and the local Postgres on 127.0.0.1:5432 or
an embedded one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tollgate.billing.config import Settings
from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.gateway import RequestCompleted
from tollgate.contracts.ids import uuid7
from tollgate.kit import localdeps
from tollgate.kit.kafka import ensure_topics

LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def dependencies(workdir: Path) -> Iterator[tuple[str, str]]:
    """(kafka bootstrap, server-level postgres url), started here when not given."""
    started: list[localdeps.LocalProcess] = []
    try:
        kafka = os.environ.get("BENCH_KAFKA_BOOTSTRAP")
        if not kafka:
            broker = localdeps.start_tansu(workdir / "tansu")
            started.append(broker)
            kafka = broker.address
        pg = os.environ.get("BENCH_DATABASE_URL")
        if not pg:
            if localdeps.postgres_answers(LOCAL_POSTGRES):
                pg = LOCAL_POSTGRES
            else:
                server = localdeps.start_postgres(workdir / "pg")
                started.append(server)
                pg = f"postgresql+asyncpg://postgres@{server.address}/postgres"
        yield kafka, localdeps.normalise_postgres_url(pg)
    finally:
        for proc in reversed(started):
            proc.stop()


def events(count: int, orgs: list[uuid.UUID]) -> tuple[list[tuple[bytes, bytes]], int]:
    rng = random.Random(1)
    apis = [uuid.uuid4() for _ in range(5)]
    out, total = [], 0
    for _ in range(count):
        org = rng.choice(orgs)
        cost = rng.randint(1, 9)
        total += cost
        data = RequestCompleted(
            request_id=uuid7(),
            time=datetime.now(UTC),
            org_id=org,
            key_id=uuid.UUID(int=org.int ^ 1),
            api_id=rng.choice(apis),
            route_id=None,
            method="GET",
            path="/v1/things/42",
            status=200,
            latency_ms=11,
            upstream_latency_ms=9,
            request_bytes=0,
            response_bytes=321,
            client_ip="198.51.100.4",
            cost=cost,
            gateway_instance="gw-bench",
        )
        out.append((str(org).encode(), encode(new_event(data, source="tollgate/gateway/bench"))))
    return out, total


async def watch_debits(
    engine: AsyncEngine, events: int
) -> tuple[int, tuple[float, int] | None, float]:
    """Poll the debited ids until `events` are in (or 10 minutes passed): (count,
    (time, count) of the first observation with debits, time of the last)."""
    count = 0
    first = None
    async with engine.connect() as conn:
        deadline = time.monotonic() + 600
        while count < events and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            count = int(await conn.scalar(text("SELECT count(*) FROM debited_requests")) or 0)
            await conn.commit()
            if count and first is None:
                first = (time.perf_counter(), count)
    return count, first, time.perf_counter()


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-billing-"))
    with dependencies(workdir) as (kafka, pg):
        db_name = f"bench_billing_{uuid.uuid4().hex[:8]}"
        db_url = localdeps.create_database(pg, db_name)
        prefix = f"bench{uuid.uuid4().hex[:6]}."
        env = {
            **os.environ,
            "TOLLGATE_BILLING_DATABASE_URL": db_url,
            "TOLLGATE_BILLING_KAFKA_BOOTSTRAP_SERVERS": kafka,
            "TOLLGATE_BILLING_KAFKA_TOPIC_PREFIX": prefix,
            "TOLLGATE_BILLING_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "TOLLGATE_BILLING_KAFKA_SESSION_TIMEOUT_MS": "3000",
            "TOLLGATE_BILLING_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            "TOLLGATE_BILLING_CONSUME_BATCH_MAX": str(args.batch),
            "TOLLGATE_BILLING_LOG_LEVEL": "WARNING",
        }
        engine = create_async_engine(db_url)
        billing = None
        try:
            localdeps.run_checked([sys.executable, "-m", "tollgate.billing", "migrate"], env=env)
            settings = Settings(
                kafka_bootstrap_servers=kafka,
                kafka_topic_prefix=prefix,
                kafka_enable_idempotence=False,
            )
            await ensure_topics(settings, [topics.GATEWAY_REQUESTS])
            orgs = [uuid.uuid4() for _ in range(args.orgs)]
            records, total_cost = events(args.events, orgs)
            producer = AIOKafkaProducer(
                bootstrap_servers=kafka, linger_ms=20, max_batch_size=1_048_576
            )
            await producer.start()
            t0 = time.perf_counter()
            futures = [
                await producer.send(prefix + topics.GATEWAY_REQUESTS.name, value=v, key=k)
                for k, v in records
            ]
            await asyncio.gather(*futures)
            await producer.stop()
            produce_s = time.perf_counter() - t0

            port = localdeps.free_port()
            # Watch the debits while the process starts: it consumes before /readyz
            # answers, and the first batches belong in the measurement.
            watching = asyncio.create_task(watch_debits(engine, args.events))
            billing = await asyncio.to_thread(
                localdeps.start_program,
                "billing",
                [sys.executable, "-m", "tollgate.billing"],
                workdir,
                port=port,
                env={**env, "TOLLGATE_BILLING_PORT": str(port)},
                ready_path="/readyz",
                timeout=60,
            )
            count, first, end = await watching
            async with engine.connect() as conn:
                debited = -int(
                    await conn.scalar(text("SELECT coalesce(sum(amount), 0) FROM ledger_entries"))
                    or 0
                )
            assert first is not None, "nothing debited"
            assert count == args.events, f"only {count} debited"
            assert debited == total_cost, (debited, total_cost)
            seconds = end - first[0]
            rate = (args.events - first[1]) / seconds
            rows = [
                ("events", f"{args.events}"),
                ("orgs", f"{args.orgs}"),
                ("batch (max records)", f"{args.batch}"),
                ("produce time (s)", f"{produce_s:.1f}"),
                ("consume time (s)", f"{seconds:.2f}"),
                ("debited events/s", f"{rate:,.0f}"),
                ("credits debited == sum of costs", f"{debited == total_cost}"),
            ]
            width = max(len(k) for k, _ in rows)
            print(f"\n{'metric'.ljust(width)} | value\n{'-' * width}-+-{'-' * 12}")
            for key, value in rows:
                print(f"{key.ljust(width)} | {value}")
        finally:
            if billing is not None:
                billing.stop()
            await engine.dispose()
            localdeps.drop_database(pg, db_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--orgs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=5000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
