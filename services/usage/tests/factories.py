"""Plain factories for usage tests: migrated databases and request events."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

from tollgate.contracts.envelope import encode, new_event
from tollgate.contracts.events.gateway import RejectionReason, RequestCompleted, RequestRejected
from tollgate.contracts.ids import uuid7
from tollgate.kit.testing.databases import ensure_migrated


async def migrated(url: str) -> str:
    """The usage schema at head in a test database (a copy of the migrated template
    already is; anything else is migrated); returns its URL."""
    await asyncio.to_thread(ensure_migrated, "tollgate.usage", url)
    return url


def completed(
    *,
    org_id: uuid.UUID,
    key_id: uuid.UUID,
    api_id: uuid.UUID,
    route_id: uuid.UUID | None = None,
    status: int = 200,
    latency_ms: int = 20,
    time: datetime | None = None,
    cost: int = 1,
    path: str = "/items",
    method: str = "GET",
) -> RequestCompleted:
    """A completed request event."""
    return RequestCompleted(
        request_id=uuid7(),
        time=time or datetime.now(UTC),
        org_id=org_id,
        key_id=key_id,
        api_id=api_id,
        route_id=route_id,
        method=method,
        path=path,
        status=status,
        latency_ms=latency_ms,
        upstream_latency_ms=max(latency_ms - 1, 0),
        request_bytes=100,
        response_bytes=1000,
        client_ip="203.0.113.7",
        cost=cost,
        gateway_instance="gw-test",
    )


def rejected(
    *,
    org_id: uuid.UUID | None,
    key_id: uuid.UUID | None,
    api_id: uuid.UUID | None,
    reason: RejectionReason = RejectionReason.RATE_LIMITED,
    status: int = 429,
    time: datetime | None = None,
) -> RequestRejected:
    """A rejected request event."""
    return RequestRejected(
        request_id=uuid7(),
        time=time or datetime.now(UTC),
        org_id=org_id,
        key_id=key_id,
        api_id=api_id,
        method="GET",
        path="/items",
        status=status,
        reason=reason,
        latency_ms=1,
        client_ip="203.0.113.9",
        gateway_instance="gw-test",
    )


def encoded(event: RequestCompleted | RequestRejected) -> bytes:
    """The Kafka value the gateway would send."""
    return encode(new_event(event, source="tollgate/gateway/test"))


def long_tail_latency(rng: random.Random) -> int:
    """Latencies with a long tail: mostly tens of ms, some seconds, rare tens of seconds."""
    roll = rng.random()
    if roll < 0.9:
        return int(rng.lognormvariate(3.2, 0.6))
    if roll < 0.99:
        return int(rng.lognormvariate(6.5, 0.8))
    return int(rng.paretovariate(1.2) * 2000)


def minutes_ago(n: int) -> datetime:
    """A time `n` minutes ago (UTC)."""
    return datetime.now(UTC) - timedelta(minutes=n)
