"""Billing's money path through crashes: a stream of priced requests across several
orgs, the billing process `kill -9`ed mid-batch again and again (so some kills land
between the database commit and the offset commit), top-ups retried with their
Idempotency-Key across the crashes, then 5 % of the events re-published with the
same ids. Afterwards every credit is debited exactly once.

Size: BILLING_CRASH_EVENTS (default 20 000) events over 5 orgs, at least
BILLING_CRASH_KILLS (default 20) kills; the issue's full size is
`BILLING_CRASH_EVENTS=50000`.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tollgate.contracts import topics
from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.gateway import RejectionReason, RequestCompleted, RequestRejected
from tollgate.contracts.ids import uuid7
from tollgate.kit import localdeps
from tollgate.kit.testing.polling import eventually
from tollgate.kit.testing.tokens import TokenMint

from .services import ServiceProcess, service_process

pytestmark = pytest.mark.system

EVENTS = int(os.environ.get("BILLING_CRASH_EVENTS", "20000"))
MIN_KILLS = int(os.environ.get("BILLING_CRASH_KILLS", "20"))
MAX_KILLS = MIN_KILLS + 20
ORGS = 5
OPENING = 10_000_000


@dataclass(frozen=True)
class Priced:
    """One encoded request event and what it should cost its org."""

    org_id: uuid.UUID
    cost: int
    value: bytes


def priced_events(orgs: Sequence[uuid.UUID], count: int, *, seed: int = 7) -> list[Priced]:
    """`count` completed requests spread over `orgs`, costs 1..9 credits."""
    rng = random.Random(seed)
    apis = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(3)]
    out = []
    for _ in range(count):
        org = rng.choice(orgs)
        cost = rng.randint(1, 9)
        data = RequestCompleted(
            request_id=uuid7(),
            time=datetime.now(UTC),
            org_id=org,
            key_id=uuid.UUID(int=org.int ^ 1),
            api_id=rng.choice(apis),
            route_id=None,
            method="GET",
            path="/v1/things",
            status=200,
            latency_ms=11,
            upstream_latency_ms=9,
            request_bytes=0,
            response_bytes=321,
            client_ip="198.51.100.4",
            cost=cost,
            gateway_instance="gw-bench",
        )
        out.append(Priced(org, cost, encode(new_event(data, source="tollgate/gateway/test"))))
    return out


def rejected_event(org: uuid.UUID) -> bytes:
    """A request the gateway refused (402): never charged."""
    data = RequestRejected(
        request_id=uuid7(),
        time=datetime.now(UTC),
        org_id=org,
        method="GET",
        path="/v1/things",
        status=402,
        reason=RejectionReason.CREDITS_EXHAUSTED,
        latency_ms=0,
        client_ip="198.51.100.4",
        gateway_instance="gw-bench",
    )
    return encode(new_event(data, source="tollgate/gateway/test"))


async def produce(
    producer: AIOKafkaProducer, topic: str, items: Sequence[tuple[uuid.UUID, bytes]]
) -> None:
    """Send (org, value) records keyed by org and wait for every ack."""
    futures = [
        await producer.send(topic, value=value, key=str(org).encode()) for org, value in items
    ]
    for future in futures:
        await future


@contextlib.contextmanager
def jwks_server(jwks: dict[str, Any]) -> Iterator[str]:
    """Serve a JWKS document over HTTP; yields its URL."""
    body = json.dumps(jwks).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    port = localdeps.free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/.well-known/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


async def debited_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM debited_requests")) or 0)


def skipped_redeliveries(service: ServiceProcess) -> int:
    """Sum of the consumer's `redelivered_skipped` log field over all its runs."""
    return sum(int(n) for n in re.findall(r'"redelivered_skipped":(\d+)', service.logs()))


async def top_up(
    client: httpx.AsyncClient, token: dict[str, str], org: uuid.UUID, amount: int, key: str
) -> httpx.Response:
    return await client.post(
        f"/v1/orgs/{org}/credits",
        json={"amount": amount, "reason": "crash test"},
        headers={**token, "Idempotency-Key": key},
    )


async def test_no_lost_or_double_debits_through_kill9(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    rng = random.Random(11)
    orgs = [uuid.uuid4() for _ in range(ORGS)]
    events = priced_events(orgs, EVENTS)
    mint = TokenMint()
    admin = mint.headers(admin=True, ttl_seconds=3600)
    db_url = database_factory("billing")
    topic = topic_prefix + topics.GATEWAY_REQUESTS.name
    with jwks_server(mint.jwks()) as jwks_url:
        billing = service_process(
            "billing",
            tmp_path,
            kafka_bootstrap=kafka_bootstrap,
            topic_prefix=topic_prefix,
            database_url=db_url,
            extra={
                "JWKS_URL": jwks_url,
                "CONSUME_BATCH_MAX": "200",
                "KAFKA_SESSION_TIMEOUT_MS": "1000",
                "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
                "DEFAULT_LOW_THRESHOLD": "0",
            },
        )
        engine = create_async_engine(db_url)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
        started = time.monotonic()
        try:
            await asyncio.to_thread(billing.start)
            await producer.start()
            topped_up = dict.fromkeys(orgs, 0)
            async with httpx.AsyncClient(base_url=billing.url, timeout=30) as client:
                for org in orgs:
                    r = await top_up(client, admin, org, OPENING, f"opening-{org}")
                    assert r.status_code == 201, r.text
                    topped_up[org] += OPENING

                chunks = [events[i :: MAX_KILLS + 1] for i in range(MAX_KILLS + 1)]
                rejected = 0
                kills = 0
                mid_batch_kills = 0
                previous_key: tuple[uuid.UUID, int, str] | None = None
                # Until MIN_KILLS kills landed mid-batch (on a loaded machine some land
                # between batches) and a redelivery was skipped, at most MAX_KILLS kills.
                while kills < MAX_KILLS and (
                    mid_batch_kills < MIN_KILLS or skipped_redeliveries(billing) == 0
                ):
                    # Requests keep arriving while billing restarts: a backlog to chew on.
                    chunk = [(e.org_id, e.value) for e in chunks[kills]]
                    noise = [(org, rejected_event(org)) for org in rng.sample(orgs, 3)]
                    rejected += len(noise)
                    await produce(producer, topic, chunk + noise)

                    # A top-up during the run, and the previous one retried after a crash.
                    org, amount = rng.choice(orgs), rng.randint(1, 1000)
                    key = f"mid-{kills}"
                    assert (await top_up(client, admin, org, amount, key)).status_code == 201
                    topped_up[org] += amount
                    if previous_key is not None:
                        p_org, p_amount, p_key = previous_key
                        replay = await top_up(client, admin, p_org, p_amount, p_key)
                        assert replay.headers.get("idempotent-replayed") == "true"
                    previous_key = (org, amount, key)

                    # Kill at a random moment while the consumer is working through it.
                    before = await debited_count(engine)
                    moving = await eventually(
                        lambda: debited_count(engine),
                        lambda n, before=before: n > before,
                        within=20,
                        interval=0.02,
                    )
                    if moving > before:
                        mid_batch_kills += 1
                    await asyncio.sleep(rng.uniform(0, 0.12))
                    billing.kill9()
                    kills += 1
                    await asyncio.to_thread(billing.start)

                rest = [(e.org_id, e.value) for c in chunks[kills:] for e in c]
                await produce(producer, topic, rest)
                done = await eventually(
                    lambda: debited_count(engine), lambda n: n >= EVENTS, within=120
                )
                assert done == EVENTS, f"{EVENTS - done} events never debited"
                crash_seconds = time.monotonic() - started
                skipped_after_crashes = skipped_redeliveries(billing)

                # 5 % re-published with the same ids, shuffled: no double debits.
                again = rng.sample(events, EVENTS // 20)
                rng.shuffle(again)
                await produce(producer, topic, [(e.org_id, e.value) for e in again])
                skipped = await eventually(
                    lambda: asyncio.sleep(0, skipped_redeliveries(billing)),
                    lambda n: n >= skipped_after_crashes + len(again),
                    within=60,
                )
                balances = {
                    org: (await client.get(f"/v1/orgs/{org}/balance", headers=admin)).json()
                    for org in orgs
                }

            debits = {org: sum(e.cost for e in events if e.org_id == org) for org in orgs}
            async with engine.connect() as conn:
                ledger = {
                    row.org_id: row
                    for row in await conn.execute(
                        text(
                            "SELECT org_id, sum(amount) FILTER (WHERE kind = 'debit') AS debited, "
                            "sum(request_count) AS requests, sum(amount) AS total "
                            "FROM ledger_entries GROUP BY org_id"
                        )
                    )
                }
                ids = await conn.scalar(text("SELECT count(*) FROM debited_requests"))
            assert ids == EVENTS
            assert sum(-ledger[org].debited for org in orgs) == sum(e.cost for e in events)
            assert sum(ledger[org].requests for org in orgs) == EVENTS, "a request charged twice"
            for org in orgs:
                assert -ledger[org].debited == debits[org]
                expected = topped_up[org] - debits[org]
                assert ledger[org].total == expected
                assert balances[org]["balance"] == expected
            assert kills >= MIN_KILLS
            assert mid_batch_kills >= MIN_KILLS
            assert skipped_after_crashes > 0, "no kill landed between DB and offset commit"
            print(
                f"\n{EVENTS} priced events (+{rejected} rejected) over {ORGS} orgs, "
                f"{kills} kill -9 ({mid_batch_kills} mid-batch) in {crash_seconds:.0f}s: "
                f"0 lost, 0 double; {skipped_after_crashes} redeliveries skipped after crashes; "
                f"{len(again)} re-published ids skipped ({skipped - skipped_after_crashes})"
            )
        finally:
            await producer.stop()
            billing.stop()
            await engine.dispose()
