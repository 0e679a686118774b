"""Plain async factories for billing tests: a migrated database, an app, events."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tollgate.billing.app import create_app
from tollgate.billing.config import Settings
from tollgate.billing.ledger import service as ledger
from tollgate.contracts.events.gateway import RequestCompleted
from tollgate.contracts.ids import uuid7
from tollgate.kit.db import SessionMaker, create_engine, session_maker
from tollgate.kit.testing.databases import ensure_migrated
from tollgate.kit.testing.tokens import TokenMint


async def migrated(url: str) -> str:
    """The billing schema at head in a test database (a copy of the migrated template
    already is; anything else is migrated); returns its url."""
    await asyncio.to_thread(ensure_migrated, "tollgate.billing", url)
    return url


def settings_for(
    database_url: str,
    *,
    kafka_bootstrap: str = "127.0.0.1:1",
    topic_prefix: str = "",
    **overrides: Any,
) -> Settings:
    """Billing settings for a test: its own database and topics, Tansu-friendly."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "kafka_topic_prefix": topic_prefix,
        "kafka_enable_idempotence": False,
        "kafka_session_timeout_ms": 3000,
        "kafka_heartbeat_interval_ms": 1000,
        "instance_id": "billing-test",
        **overrides,
    }
    return Settings(**values)


@contextlib.asynccontextmanager
async def api_client(
    settings: Settings, mint: TokenMint
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The billing HTTP API in process on a real database, without Kafka (no lifespan:
    the outbox is checked in the database)."""
    app = create_app(settings)
    engine = create_engine(settings.database_url, pool_size=20)
    app.state.sessions = session_maker(engine)
    app.state.jwt_verifier = mint.verifier()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://billing") as client:
            yield client, app
    finally:
        await engine.dispose()


def request_event(
    org_id: uuid.UUID,
    *,
    cost: int,
    api_id: uuid.UUID | None = None,
    request_id: uuid.UUID | None = None,
) -> RequestCompleted:
    """A completed request as the gateway publishes it."""
    return RequestCompleted(
        request_id=request_id or uuid7(),
        time=datetime.now(UTC),
        org_id=org_id,
        key_id=uuid.uuid4(),
        api_id=api_id or uuid.UUID(int=1),
        route_id=None,
        method="GET",
        path="/pets/42",
        status=200,
        latency_ms=12,
        upstream_latency_ms=10,
        request_bytes=0,
        response_bytes=512,
        client_ip="203.0.113.7",
        cost=cost,
        gateway_instance="gw-test",
    )


async def outbox_types(engine: AsyncEngine, topic: str) -> list[str]:
    """Event types waiting in (or sent from) the outbox for a contract topic, in order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT value FROM outbox WHERE topic = :t ORDER BY id"), {"t": topic}
        )
        return [orjson.loads(row.value)["type"] for row in rows]


async def fund(sessions: SessionMaker, settings: Settings, org_id: uuid.UUID, amount: int) -> None:
    """Open the org's account with an admin top-up of `amount` credits."""
    async with sessions() as session, session.begin():
        await ledger.add_credits(
            session,
            org_id,
            settings,
            kind="top_up",
            amount=amount,
            actor="admin:t",
            reason="opening",
            idempotency_key=f"opening-{org_id}",
        )


async def ledger_total(session: AsyncSession, org_id: uuid.UUID) -> int:
    """Sum of an org's ledger amounts."""
    value = await session.scalar(
        text("SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE org_id = :o"),
        {"o": org_id},
    )
    return int(value or 0)


async def outbox_data(engine: AsyncEngine, topic: str) -> list[dict[str, Any]]:
    """The `data` of every event waiting in (or sent from) the outbox for a contract
    topic, in order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT value FROM outbox WHERE topic = :t ORDER BY id"), {"t": topic}
        )
        return [orjson.loads(row.value)["data"] for row in rows]
