"""Usage pipeline benchmark: ingest throughput of one consumer process, and the delay
from "event produced" to "visible in the summary API" at a steady 1k events/s.

    .venv/bin/python bench/usage/bench_usage.py [--events 100000] [--rate 1000] [--seconds 20]

Uses Postgres from BENCH_POSTGRES_ADMIN_URL (default: local postgres on 5432) and the
Kafka broker at BENCH_KAFKA_BOOTSTRAP (default: an embedded Tansu started here). The
usage service runs as a real process (`python -m tollgate.usage`) with default
settings, exactly as deployed; tokens come from a throwaway JWKS served here.
Prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.gateway import RequestCompleted
from tollgate.contracts.ids import uuid7
from tollgate.kit import localdeps
from tollgate.kit.kafka import ensure_topics, make_producer, topic_name
from tollgate.kit.testing.tokens import TokenMint
from tollgate.usage.config import Settings

ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


def event_bytes(org: uuid.UUID, key: uuid.UUID, api: uuid.UUID, n: int) -> bytes:
    data = RequestCompleted(
        request_id=uuid7(),
        time=datetime.now(UTC),
        org_id=org,
        key_id=key,
        api_id=api,
        route_id=None,
        method="GET",
        path=f"/items/{n % 100}",
        status=200 if n % 10 else 500,
        latency_ms=5 + n % 300,
        upstream_latency_ms=4 + n % 300,
        request_bytes=120,
        response_bytes=2048,
        client_ip="203.0.113.1",
        cost=1,
        gateway_instance="bench",
    )
    return encode(new_event(data, source="tollgate/gateway/bench"))


def serve_jwks(jwks: dict[str, object]) -> str:
    body = json.dumps(jwks).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", localdeps.free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/jwks.json"


async def produce_backlog(settings: Settings, count: int) -> float:
    orgs = [uuid.uuid4() for _ in range(20)]
    keys = {org: [uuid.uuid4() for _ in range(5)] for org in orgs}
    apis = [uuid.uuid4() for _ in range(10)]
    producer = make_producer(settings, client="bench")
    await producer.start()
    started = time.perf_counter()
    try:
        topic = topic_name(topics.GATEWAY_REQUESTS, settings)
        pending = []
        for n in range(count):
            org = orgs[n % len(orgs)]
            pending.append(
                await producer.send(
                    topic,
                    value=event_bytes(org, keys[org][n % 5], apis[n % 10], n),
                    key=str(org).encode(),
                )
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def ingest_rate(database_url: str, count: int) -> tuple[float, float]:
    engine = create_async_engine(database_url)
    try:
        first_at = None
        while True:
            async with engine.connect() as conn:
                done = int(
                    await conn.scalar(
                        text(
                            "SELECT coalesce(sum(next_offset), 0) FROM consumer_positions "
                            "WHERE group_id = 'usage'"
                        )
                    )
                    or 0
                )
            now = time.perf_counter()
            if done and first_at is None:
                first_at, first_done = now, done
            if done >= count:
                assert first_at is not None
                elapsed = now - first_at
                return (done - first_done) / elapsed if elapsed > 0 else float("inf"), elapsed
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


async def end_to_end(
    settings: Settings, url: str, token: str, rate: int, seconds: float
) -> list[float]:
    producer = make_producer(settings, client="bench-e2e")
    await producer.start()
    topic = topic_name(topics.GATEWAY_REQUESTS, settings)
    background = uuid.uuid4()
    keys = [uuid.uuid4() for _ in range(10)]
    api = uuid.uuid4()
    delays: list[float] = []
    stop = asyncio.Event()

    async def steady() -> None:
        n = 0
        tick = time.perf_counter()
        while not stop.is_set():
            for _ in range(rate // 100):
                await producer.send(
                    topic,
                    value=event_bytes(background, keys[n % 10], api, n),
                    key=str(background).encode(),
                )
                n += 1
            tick += 0.01
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))

    async def probe(client: httpx.AsyncClient) -> None:
        org = uuid.uuid4()
        sent = time.perf_counter()
        await producer.send(
            topic, value=event_bytes(org, uuid.uuid4(), api, 1), key=str(org).encode()
        )
        while time.perf_counter() - sent < 30:
            response = await client.get(
                "/v1/usage/summary",
                params={"org_id": str(org)},
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code == 200 and response.json()["requests"] == 1:
                delays.append(time.perf_counter() - sent)
                return
            await asyncio.sleep(0.02)
        delays.append(float("inf"))

    runner = asyncio.create_task(steady())
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                await probe(client)
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await runner
        await producer.stop()
    return delays


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.999999) - 1))]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-usage-"))
    broker = None
    bootstrap = os.environ.get("BENCH_KAFKA_BOOTSTRAP")
    if not bootstrap:
        broker = localdeps.start_tansu(workdir)
        bootstrap = broker.url
    db_name = f"bench_usage_{secrets.token_hex(4)}"
    database_url = await asyncio.to_thread(localdeps.create_database, ADMIN_URL, db_name)
    mint = TokenMint()
    jwks_url = serve_jwks(mint.jwks())
    prefix = f"b{secrets.token_hex(4)}."
    settings = Settings(
        database_url=database_url,
        kafka_bootstrap_servers=bootstrap,
        kafka_topic_prefix=prefix,
        kafka_enable_idempotence=False,
    )
    env = {
        **os.environ,
        "TOLLGATE_USAGE_DATABASE_URL": database_url,
        "TOLLGATE_USAGE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "TOLLGATE_USAGE_KAFKA_TOPIC_PREFIX": prefix,
        "TOLLGATE_USAGE_KAFKA_ENABLE_IDEMPOTENCE": "false",
        "TOLLGATE_USAGE_JWKS_URL": jwks_url,
        "TOLLGATE_USAGE_LOG_LEVEL": "WARNING",
    }
    usage = None
    try:
        localdeps.run_checked([sys.executable, "-m", "tollgate.usage", "migrate"], env=env)
        await ensure_topics(
            settings, [topics.GATEWAY_REQUESTS, topics.ACCOUNTS_KEYS, topics.USAGE_EVENTS]
        )
        produce_seconds = await produce_backlog(settings, args.events)
        port = localdeps.free_port()
        env["TOLLGATE_USAGE_PORT"] = str(port)
        # Watch the positions while the process starts: it consumes before /readyz
        # answers, and a rate over only the tail would miss most of the backlog.
        measuring = asyncio.create_task(ingest_rate(database_url, args.events))
        usage = await asyncio.to_thread(
            localdeps.start_program,
            "usage",
            [sys.executable, "-m", "tollgate.usage"],
            workdir,
            port=port,
            env=env,
            ready_path="/readyz",
            timeout=60,
        )
        rate, ingest_seconds = await measuring
        delays = await end_to_end(
            settings, f"http://127.0.0.1:{port}", mint.token(admin=True), args.rate, args.seconds
        )
    finally:
        if usage is not None:
            usage.stop()
        if broker is not None:
            broker.stop()
        await asyncio.to_thread(localdeps.drop_database, ADMIN_URL, db_name)

    rows = [
        ("backlog produced", f"{args.events} events in {produce_seconds:.1f} s"),
        ("ingest, one consumer process", f"{rate:,.0f} events/s ({ingest_seconds:.1f} s)"),
        (f"e2e delay at {args.rate}/s, probes", str(len(delays))),
        ("e2e delay p50", f"{percentile(delays, 0.5) * 1000:.0f} ms"),
        ("e2e delay p99", f"{percentile(delays, 0.99) * 1000:.0f} ms"),
        ("e2e delay max", f"{max(delays) * 1000:.0f} ms"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'metric':<{width}} | value")
    print(f"{'-' * width}-+-{'-' * 30}")
    for name, value in rows:
        print(f"{name:<{width}} | {value}")
    print(f"(end-to-end mean {statistics.mean(delays) * 1000:.0f} ms)")


if __name__ == "__main__":
    asyncio.run(main())
