"""The lifespan every HTTP service runs: database, outbox relay, consumers, verifier.

`service_runtime(app, ...)` is an async context manager used as (the body of) a
FastAPI lifespan. It starts, in order: the database engine and session maker
(`app.state.sessions`), the JWT verifier (`app.state.jwt_verifier`) with the replayed
identity state it authorises against (`tollgate.kit.identity`; readiness waits for
its replay), the contract
topics the service touches, the Kafka producer and outbox relay (when the service
has an outbox), the FastStream broker with the service's subscribers (`consumers=`: the
service's `KafkaRouter`s, included behind the topic prefix), and the service's
background jobs (`background=`: maintenance loops and the like). Shutdown
runs in reverse after uvicorn has drained in-flight requests: consumers stop (and
commit), the relay publishes what is pending, the producer flushes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from faststream.kafka import KafkaBroker, KafkaRouter
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from tollgate.contracts.topics import ACCOUNTS_USERS, Topic
from tollgate.kit.auth import JwtVerifier
from tollgate.kit.db import SessionMaker, create_engine, ping, session_maker
from tollgate.kit.identity import IdentityFollower
from tollgate.kit.kafka import ensure_topics, make_broker, make_producer, start_broker
from tollgate.kit.outbox import OutboxRelay, bind_instance
from tollgate.kit.service import add_ready_check
from tollgate.kit.settings import ServiceSettings

log = logging.getLogger(__name__)

BackgroundJob = Callable[[SessionMaker], Coroutine[Any, Any, None]]
"""A long-running job of the service (maintenance, schedulers), given the sessions."""


@dataclass
class Runtime:
    """What a running service holds; also at `app.state.runtime`."""

    engine: AsyncEngine | None = None
    sessions: SessionMaker | None = None
    producer: AIOKafkaProducer | None = None
    relay: OutboxRelay | None = None
    broker: KafkaBroker | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def service_runtime(
    app: FastAPI,
    settings: ServiceSettings,
    *,
    service: str,
    database_url: str | None,
    topics: Sequence[Topic],
    outbox: Table | None = None,
    consumers: Sequence[KafkaRouter] = (),
    jwt_verifier: JwtVerifier | None = None,
    background: Sequence[BackgroundJob] = (),
    follow_identity: bool = True,
) -> AsyncIterator[Runtime]:
    """Start a service's plumbing, yield it, and stop it cleanly."""
    rt = Runtime()
    app.state.runtime = rt
    app.state.jwt_verifier = jwt_verifier or JwtVerifier(
        issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks_url=settings.jwks_url
    )
    try:
        if database_url:
            rt.engine = create_engine(database_url, pool_size=settings.database_pool_size)
            rt.sessions = session_maker(rt.engine)
            bind_instance(rt.sessions, settings.instance_id)
            app.state.sessions = rt.sessions
            engine = rt.engine

            async def database_ready() -> bool:
                return await ping(engine)

            add_ready_check(app, "database", database_ready)
        # A verifier given by the caller (accounts' own keyring, a test's token mint)
        # keeps judging by the token: only the runtime's own verifier follows identity.
        follow_identity = follow_identity and jwt_verifier is None
        if settings.kafka_create_topics and (topics or follow_identity):
            await ensure_topics(settings, [*topics, *([ACCOUNTS_USERS] if follow_identity else [])])
        if follow_identity:
            identity = IdentityFollower(settings, client=service)
            app.state.jwt_verifier.identity = identity.state
            rt.tasks.append(asyncio.create_task(identity.run(), name=f"{service}-identity"))
            add_ready_check(app, "identity", identity.ready)
        if outbox is not None:
            if rt.sessions is None:
                raise ValueError("an outbox needs a database")
            rt.producer = make_producer(settings, client=service)
            await rt.producer.start()
            rt.relay = OutboxRelay(
                sessions=rt.sessions, table=outbox, producer=rt.producer, settings=settings
            )
            rt.tasks.append(asyncio.create_task(rt.relay.run(), name=f"{service}-outbox"))
        if consumers:
            if rt.sessions is None:
                raise ValueError("consumers need a database")
            rt.broker = make_broker(
                settings, client=service, sessions=rt.sessions, routers=consumers
            )
            await start_broker(rt.broker)
            broker = rt.broker

            async def consumers_ready() -> bool:
                return await broker.ping(timeout=1.0)

            add_ready_check(app, "kafka", consumers_ready)
        if background:
            if rt.sessions is None:
                raise ValueError("background jobs need a database")
            rt.tasks.extend(asyncio.create_task(job(rt.sessions)) for job in background)
        yield rt
    finally:
        await _stop(rt)


async def _stop(rt: Runtime) -> None:
    if rt.broker is not None:
        await rt.broker.stop()
    for task in rt.tasks:
        task.cancel()
    for task in rt.tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if rt.relay is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(rt.relay.relay_once(), timeout=5)
    if rt.producer is not None:
        await rt.producer.stop()
    if rt.engine is not None:
        await rt.engine.dispose()
