"""Plain async factories for notifier tests: a migrated database, the API in
process, a controllable clock, and a real HTTP receiver that records requests."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiohttp import web
from fastapi import FastAPI

from tollgate.kit.db import SessionMaker, create_engine, session_maker
from tollgate.kit.localdeps import free_port
from tollgate.kit.netpolicy import NetworkPolicy, parse_networks
from tollgate.kit.sealing import Sealer, new_sealing_key
from tollgate.kit.testing.databases import ensure_migrated
from tollgate.kit.testing.loopback import serving
from tollgate.kit.testing.tokens import TokenMint
from tollgate.notifier.app import create_app
from tollgate.notifier.config import Settings
from tollgate.notifier.models import WebhookEndpoint
from tollgate.notifier.webhooks import service as webhooks
from tollgate.notifier.webhooks.sender import WebhookSender
from tollgate.notifier.webhooks.worker import DeliveryWorker

SEALING_KEY = new_sealing_key()


async def migrated(url: str) -> str:
    """The notifier schema at head in a test database (a copy of the migrated template
    already is; anything else is migrated); returns its url."""
    await asyncio.to_thread(ensure_migrated, "tollgate.notifier", url)
    return url


def settings_for(database_url: str, **overrides: Any) -> Settings:
    """Notifier settings for a test: own database, loopback allowed for receivers."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap_servers": "127.0.0.1:1",
        "kafka_enable_idempotence": False,
        "kafka_session_timeout_ms": 3000,
        "kafka_heartbeat_interval_ms": 1000,
        "instance_id": "notifier-test",
        "sealing_keys": SEALING_KEY,
        "webhook_allowed_networks": "127.0.0.1/32",
        **overrides,
    }
    return Settings(**values)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@contextlib.asynccontextmanager
async def database(url: str) -> AsyncIterator[SessionMaker]:
    """Sessions on a test database, disposed afterwards."""
    engine = create_engine(url, pool_size=20)
    try:
        yield session_maker(engine)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def api_client(
    settings: Settings, mint: TokenMint, clock: FakeClock | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The notifier HTTP API in process on a real database, without the lifespan
    (no Kafka, no workers: tests drive the workers themselves)."""
    app = create_app(settings, clock=clock)
    engine = create_engine(settings.database_url, pool_size=20)
    app.state.sessions = session_maker(engine)
    app.state.jwt_verifier = mint.verifier()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as client:
            yield client, app
    finally:
        await engine.dispose()


@dataclass
class Captured:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _ok(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 recording every request."""

    port: int
    captured: list[Captured] = field(default_factory=list)
    respond: Responder = _ok

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> list[str]:
        return [c.headers["webhook-id"] for c in self.captured]


@contextlib.asynccontextmanager
async def receiver(host: str = "127.0.0.1") -> AsyncIterator[Receiver]:
    """Run a Receiver for the duration of the block."""
    rec = Receiver(port=free_port())

    async def handle(request: web.Request) -> web.StreamResponse:
        rec.captured.append(Captured(request.path, dict(request.headers), await request.read()))
        return await rec.respond(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with serving(app, rec.port, host):
        yield rec


async def make_endpoint(
    sessions: SessionMaker,
    org_id: uuid.UUID,
    url: str,
    *,
    event_types: list[str] | None = None,
    now: datetime | None = None,
) -> tuple[WebhookEndpoint, str]:
    """An enabled endpoint and its secret."""
    async with sessions() as session, session.begin():
        return await webhooks.create_endpoint(
            session,
            Sealer(SEALING_KEY),
            org_id,
            url=url,
            description="test",
            event_types=event_types or [],
            enabled=True,
            now=now or datetime.now(UTC),
            policy=NetworkPolicy(allowed=parse_networks("127.0.0.1/32")),
        )


def delivery_worker(
    sessions: SessionMaker,
    clock: Any,
    *,
    allowlist: str = "127.0.0.1/32",
    concurrency: int = 16,
    org_concurrency: int = 4,
    timeout_seconds: float = 5.0,
) -> tuple[DeliveryWorker, WebhookSender]:
    """A delivery worker (and its sender, to close) the test drives with run_once."""
    sender = WebhookSender(
        timeout_seconds=timeout_seconds, policy=NetworkPolicy(allowed=parse_networks(allowlist))
    )
    worker = DeliveryWorker(
        sessions=sessions,
        sender=sender,
        sealer=Sealer(SEALING_KEY),
        clock=clock,
        concurrency=concurrency,
        org_concurrency=org_concurrency,
        timeout_seconds=timeout_seconds,
        disable_after=timedelta(days=5),
        poll_seconds=0.05,
    )
    return worker, sender
