"""The usage service's FastAPI app: lifespan wiring and routers, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tollgate.contracts import topics
from tollgate.kit.auth import JwtVerifier
from tollgate.kit.runtime import service_runtime
from tollgate.kit.service import create_app as create_service_app
from tollgate.usage.analytics.api import router as analytics_router
from tollgate.usage.analytics.live import LiveStreams
from tollgate.usage.config import Settings
from tollgate.usage.deprecations.api import router as deprecations_router
from tollgate.usage.deprecations.consumers import api_consumers
from tollgate.usage.ingest.consumers import ingest_consumers
from tollgate.usage.models import outbox
from tollgate.usage.quotas.consumers import key_consumers
from tollgate.usage.requestlog.api import router as requestlog_router
from tollgate.usage.retention.jobs import run_maintenance
from tollgate.usage.retention.service import PartitionDays

TOPICS = (topics.USAGE_EVENTS, topics.GATEWAY_REQUESTS, topics.ACCOUNTS_KEYS, topics.ACCOUNTS_APIS)


def create_app(
    settings: Settings,
    *,
    jwt_verifier: JwtVerifier | None = None,
    consume: bool = True,
) -> FastAPI:
    """Build the app; nothing connects until the lifespan starts. `consume=False` serves
    the API without the Kafka consumers (tests of the API alone)."""
    partitions = PartitionDays()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(
            app,
            settings,
            service="usage",
            database_url=settings.database_url,
            topics=TOPICS,
            outbox=outbox,
            consumers=(
                ingest_consumers(settings, partitions),
                key_consumers(settings),
                api_consumers(settings),
            )
            if consume
            else (),
            jwt_verifier=jwt_verifier,
            background=(lambda sessions: run_maintenance(sessions, settings, partitions),),
        ):
            yield

    app = create_service_app(
        service="usage",
        title="Tollgate usage",
        description="Tollgate usage: request stream to rollups, percentiles and a request log.",
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        settings=settings,
    )
    app.state.live_streams = LiveStreams(
        limit=settings.live_max_streams,
        per_org=settings.live_max_streams_per_org,
        per_user=settings.live_max_streams_per_user,
    )
    app.include_router(analytics_router, prefix="/v1")
    app.include_router(requestlog_router, prefix="/v1")
    app.include_router(deprecations_router, prefix="/v1")
    return app
