"""Usage counts every request exactly once while its consumer is `kill -9`ed mid-stream.

Sized for a shared 2-core machine: 12,000 request events (5 orgs, 15 keys, 6 APIs,
completed and rejected) produced in 10 waves; after each wave starts being consumed
the usage process is killed with SIGKILL at a random moment and restarted, so every
kill lands while a backlog is being taken in; if none has yet hit the window between a
batch's database commit and its offset commit, the last three land with the broker
frozen (SIGSTOP), inside that window. Afterwards: the request log holds exactly one
row per event, every minute and hour aggregate (counts, bytes, credits, latency sum and
histogram) equals a recomputation from the log, and the consumer logs show redelivered
records that were skipped (> 0: the window between the database commit and the Kafka
offset commit was hit).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.gateway import RejectionReason, RequestCompleted, RequestRejected
from tollgate.contracts.ids import uuid7
from tollgate.kit.kafka import make_producer, topic_name
from tollgate.kit.testing import BrokerControl
from tollgate.kit.testing.polling import eventually
from tollgate.usage import histogram
from tollgate.usage.config import Settings

from .services import service_process

pytestmark = pytest.mark.system

# CI size; the full size: USAGE_CRASH_EVENTS=50000.
EVENTS = int(os.environ.get("USAGE_CRASH_EVENTS", "12000"))
WAVES = 10
NIL = uuid.UUID(int=0)


def request_events(count: int, rng: random.Random) -> list[RequestCompleted | RequestRejected]:
    orgs = [uuid.uuid4() for _ in range(5)]
    keys = {org: [uuid.uuid4() for _ in range(3)] for org in orgs}
    apis = [uuid.uuid4() for _ in range(6)]
    routes = [uuid.uuid4() for _ in range(4)]
    start = datetime.now(UTC) - timedelta(minutes=90)
    events: list[RequestCompleted | RequestRejected] = []
    for n in range(count):
        org = rng.choice(orgs)
        moment = start + timedelta(milliseconds=180 * n)
        if rng.random() < 0.1:
            events.append(
                RequestRejected(
                    request_id=uuid7(),
                    time=moment,
                    org_id=org,
                    key_id=rng.choice(keys[org]),
                    api_id=rng.choice(apis),
                    method="GET",
                    path="/v1/things",
                    status=429,
                    reason=RejectionReason.RATE_LIMITED,
                    latency_ms=rng.randint(0, 3),
                    client_ip="198.51.100.4",
                    gateway_instance="gw-1",
                )
            )
            continue
        latency = int(rng.lognormvariate(3.5, 1.0))
        events.append(
            RequestCompleted(
                request_id=uuid7(),
                time=moment,
                org_id=org,
                key_id=rng.choice(keys[org]),
                api_id=rng.choice(apis),
                route_id=rng.choice([*routes, None]),
                method=rng.choice(["GET", "POST"]),
                path=f"/v1/things/{n % 50}",
                status=rng.choice([200, 200, 200, 201, 404, 500]),
                latency_ms=latency,
                upstream_latency_ms=max(latency - 2, 0),
                request_bytes=rng.randint(0, 2000),
                response_bytes=rng.randint(0, 20000),
                client_ip="198.51.100.7",
                cost=rng.randint(0, 5),
                gateway_instance="gw-1",
            )
        )
    return events


async def produce(settings: Settings, events: list[RequestCompleted | RequestRejected]) -> None:
    producer = make_producer(settings, client="crash-test")
    await producer.start()
    try:
        topic = topic_name(topics.GATEWAY_REQUESTS, settings)
        futures = [
            await producer.send(
                topic,
                value=encode(new_event(e, source="tollgate/gateway/test")),
                key=str(e.org_id).encode(),
            )
            for e in events
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def logged(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM request_log")) or 0)


def recompute(rows: list[Any], bucket_of: Callable[[datetime], datetime]) -> dict[Any, list[Any]]:
    expected: dict[Any, list[Any]] = {}
    for r in rows:
        key = (
            bucket_of(r.time),
            r.org_id or NIL,
            r.key_id or NIL,
            r.api_id or NIL,
            r.route_id or NIL,
            r.method,
            r.status,
            r.reason or "",
        )
        values = expected.setdefault(key, [0, 0, 0, 0, 0, {}])
        values[0] += 1
        values[1] += r.request_bytes or 0
        values[2] += r.response_bytes or 0
        values[3] += r.cost
        values[4] += r.latency_ms
        histogram.record(values[5], r.latency_ms)
    return expected


async def stored(engine: AsyncEngine, table: str) -> dict[Any, list[Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(text(f"SELECT * FROM {table}"))).all()
    return {
        (
            r.bucket,
            r.org_id,
            r.key_id,
            r.api_id,
            r.route_id,
            r.method,
            r.status,
            r.reason,
        ): [
            r.requests,
            r.bytes_in,
            r.bytes_out,
            r.credits,
            r.latency_ms_sum,
            histogram.from_json(r.latency_hist),
        ]
        for r in rows
    }


def skipped_redeliveries(logs: str) -> int:
    total = 0
    for line in logs.splitlines():
        if '"redelivered_skipped"' in line:
            total += int(json.loads(line)["redelivered_skipped"])
    return total


async def test_usage_counts_exactly_once_through_repeated_kill9(
    tmp_path: Path,
    kafka_broker: BrokerControl,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    kafka_bootstrap = kafka_broker.bootstrap
    rng = random.Random(2024)
    database_url = database_factory("usage")
    usage = service_process(
        "usage",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_url,
        extra={
            "INGEST_BATCH_MAX_RECORDS": "500",
            # A restarted consumer re-joins once the killed member's session expired:
            # short sessions keep the ten restarts from waiting seconds each.
            "KAFKA_SESSION_TIMEOUT_MS": "1000",
            "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        },
    )
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=topic_prefix,
        kafka_enable_idempotence=False,
    )
    events = request_events(EVENTS, rng)
    wave = EVENTS // WAVES
    engine = create_async_engine(database_url)
    kills = 0
    try:
        usage.start()  # creates the topics
        for n in range(WAVES):
            before = await logged(engine)
            await produce(settings, events[n * wave : (n + 1) * wave])
            # Wait until this life is taking in records, then kill it mid-stream. If no
            # kill has hit the window between a batch's database commit and its offset
            # commit by the last three waves, those kills land with the broker frozen:
            # fetched batches commit to the database while their offset commit cannot
            # reach Kafka, so the window is hit however fast this machine is.
            await eventually(lambda b=before: logged(engine), lambda c, b=before: c > b, within=30)
            await asyncio.sleep(rng.uniform(0.0, 0.3))
            if n >= WAVES - 3 and skipped_redeliveries(usage.logs()) == 0:
                with kafka_broker.paused():
                    await asyncio.sleep(0.5)
                    usage.kill9()
            else:
                usage.kill9()
            kills += 1
            usage.start()
        final = await eventually(lambda: logged(engine), lambda c: c >= EVENTS, within=60)
        await asyncio.sleep(1.0)  # anything double-counted late would show up now
        assert final == EVENTS

        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT * FROM request_log"))).all()
        ids = Counter(r.request_id for r in rows)
        assert len(rows) == EVENTS
        assert set(ids) == {e.request_id for e in events}
        assert max(ids.values()) == 1

        def minute(t: datetime) -> datetime:
            return t.replace(second=0, microsecond=0)

        def hour(t: datetime) -> datetime:
            return t.replace(minute=0, second=0, microsecond=0)

        assert await stored(engine, "usage_minute") == recompute(rows, minute)
        assert await stored(engine, "usage_hour") == recompute(rows, hour)
        usage.stop()
        skipped = skipped_redeliveries(usage.logs())
        print(
            f"\nusage crash test: {EVENTS} events, {kills} kill -9, {skipped} redeliveries skipped"
        )
        assert kills >= 10
        assert skipped > 0, "no kill landed between the database commit and the offset commit"
    finally:
        usage.stop()
        await engine.dispose()
