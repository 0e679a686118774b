"""Shared helpers of the gateway system tests (this module holds no tests).

The gateway reads what accounts and billing publish; these tests publish those
records themselves (`KeyUpserted`, `ApiUpserted`, `BalanceState`) on a per-test
topic prefix, run the gateway as a real process (`python -m tollgate.gateway`)
in front of the demo upstream (infra/demo_upstream.py), and read the request
events back from the real broker.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from tollgate.contracts import topics
from tollgate.contracts.envelope import EventData, encode, new_event
from tollgate.contracts.events.accounts import ApiStatus, ApiUpserted, KeyUpserted
from tollgate.contracts.events.billing import BalanceMode, BalanceState, BalanceStatus
from tollgate.kit import apikeys, localdeps
from tollgate.kit.kafka import ensure_topics, make_producer, topic_name
from tollgate.kit.settings import ServiceSettings

from .services import ServiceProcess, service_process

ROOT = Path(__file__).resolve().parents[2]
PEPPER = "test-pepper-for-gateway"


def kafka_settings(bootstrap: str, prefix: str) -> ServiceSettings:
    return ServiceSettings(
        kafka_bootstrap_servers=bootstrap,
        kafka_topic_prefix=prefix,
        kafka_enable_idempotence=False,
    )


def now() -> datetime:
    return datetime.now(UTC)


def key_event(
    org_id: uuid.UUID, raw: str, *, key_id: uuid.UUID | None = None, version: int = 1, **fields: Any
) -> KeyUpserted:
    return KeyUpserted.model_validate(
        {
            "key_id": key_id or uuid.uuid4(),
            "org_id": org_id,
            "key_hash": apikeys.hash_key(raw, PEPPER),
            "prefix": apikeys.display_prefix(raw),
            "last4": raw[-4:],
            "name": "test key",
            "environment": "live",
            "enabled": True,
            "version": version,
            "updated_at": now(),
            **fields,
        }
    )


def api_event(
    slug: str,
    upstream_url: str,
    *,
    api_id: uuid.UUID | None = None,
    version: int = 1,
    **fields: Any,
) -> ApiUpserted:
    return ApiUpserted.model_validate(
        {
            "api_id": api_id or uuid.uuid4(),
            "slug": slug,
            "name": slug,
            "api_version": "v1",
            "upstream_url": upstream_url,
            "status": ApiStatus.ACTIVE,
            "timeout_ms": 2000,
            "price": 1,
            "charge_failed_calls": False,
            "version": version,
            "updated_at": now(),
            **fields,
        }
    )


def balance_event(
    org_id: uuid.UUID,
    status: BalanceStatus,
    *,
    version: int,
    mode: BalanceMode = BalanceMode.PREPAID,
) -> BalanceState:
    return BalanceState(
        org_id=org_id,
        balance=0 if status is BalanceStatus.EXHAUSTED else 1000,
        status=status,
        mode=mode,
        low_threshold=10,
        version=version,
        as_of=now(),
    )


_TOPIC_OF: dict[type[EventData], topics.Topic] = {
    KeyUpserted: topics.ACCOUNTS_KEYS,
    ApiUpserted: topics.ACCOUNTS_APIS,
    BalanceState: topics.BILLING_BALANCES,
}


class StatePublisher:
    """Publishes state records as accounts/billing would (one producer, kept open)."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.settings = kafka_settings(bootstrap, prefix)
        self.producer = make_producer(self.settings, client="gateway-test")

    async def __aenter__(self) -> StatePublisher:
        await ensure_topics(self.settings, topics.ALL_TOPICS)
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def publish(self, *events: EventData) -> None:
        for data in events:
            topic = topic_name(_TOPIC_OF[type(data)], self.settings)
            value = encode(new_event(data, source="tollgate/test/1"))
            await self.producer.send(topic, value=value, key=(data.kafka_key() or "").encode())
        await self.producer.flush()

    async def tombstone(self, topic: topics.Topic, key: str) -> None:
        await self.producer.send_and_wait(
            topic_name(topic, self.settings), value=None, key=key.encode()
        )


def start_upstream(workdir: Path) -> localdeps.LocalProcess:
    port = localdeps.free_port()
    return localdeps.start_program(
        "upstream",
        [sys.executable, str(ROOT / "infra" / "demo_upstream.py"), "--port", str(port)],
        workdir,
        port=port,
        ready_path="/healthz",
    )


def gateway(
    workdir: Path, bootstrap: str, prefix: str, extra: dict[str, str] | None = None
) -> ServiceProcess:
    spool = workdir / f"spool-{uuid.uuid4().hex[:6]}"
    return service_process(
        "gateway",
        workdir,
        kafka_bootstrap=bootstrap,
        topic_prefix=prefix,
        extra={
            "KEY_PEPPER": PEPPER,
            "SPOOL_DIR": str(spool),
            "LOG_JSON": "true",
            "EVENTS_SPILL_AFTER_MS": "1000",
            # The demo upstream listens on loopback.
            "ALLOW_PRIVATE_UPSTREAMS": "true",
            # The tests read metrics on the public port; each gateway its own ops port.
            "PUBLIC_OPS": "all",
            "OPS_PORT": str(localdeps.free_port()),
            # One process unless a test asks for more (the default follows the cores).
            "WORKERS": "1",
            # Tests that trace expect every request's span (the default samples 1 %).
            "TRACE_SAMPLE_RATIO": "1",
            **(extra or {}),
        },
    )


async def request_events(bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    """Every event on the request topic (read to the high watermark), as JSON."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        name = prefix + topics.GATEWAY_REQUESTS.name
        await consumer.topics()
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        events: list[dict[str, Any]] = []
        while True:
            batches = await consumer.getmany(timeout_ms=300, max_records=10_000)
            for records in batches.values():
                events.extend(orjson.loads(r.value) for r in records if r.value is not None)
            positions = [await consumer.position(tp) for tp in partitions]
            highs = [consumer.highwater(tp) for tp in partitions]
            if all(h is not None and p >= h for p, h in zip(positions, highs, strict=True)):
                return events
    finally:
        await consumer.stop()


async def wait_events(
    bootstrap: str, prefix: str, count: int, within: float = 15.0
) -> list[dict[str, Any]]:
    """The request events once at least `count` are on the topic (or at the deadline)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        events = await request_events(bootstrap, prefix)
        if len(events) >= count or asyncio.get_running_loop().time() > deadline:
            return events
        await asyncio.sleep(0.3)


async def raw_request(
    port: int,
    target: str,
    headers: dict[str, str] | None = None,
    *,
    method: str = "GET",
    source: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request with `target` sent byte for byte (no client-side path
    normalisation, unlike httpx), on a new connection from `source` (an address)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(source, 0) if source else None
    )
    try:
        lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        answer: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                answer[name.strip().lower()] = value.strip()
        body = await reader.read()
        return int(status_line.split()[1]), answer, body
    finally:
        writer.close()
