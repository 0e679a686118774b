"""The billing service's FastAPI app: lifespan wiring and routers, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tollgate.billing.balances.api import router as balances_router
from tollgate.billing.config import Settings
from tollgate.billing.ledger.api import router as ledger_router
from tollgate.billing.ledger.consumers import ledger_consumers
from tollgate.billing.maintenance import run_balance_publisher, run_period_roller, run_purge
from tollgate.billing.models import outbox
from tollgate.billing.payments.api import router as payments_router
from tollgate.billing.payments.auto_top_up_api import router as auto_top_up_router
from tollgate.billing.payments.auto_top_up_worker import run_auto_top_up
from tollgate.billing.payments.providers import PaymentProvider
from tollgate.billing.plans.api import router as plans_router
from tollgate.billing.sms.consumers import sms_charge_consumers
from tollgate.billing.statements.api import router as statements_router
from tollgate.contracts import topics
from tollgate.kit.auth import JwtVerifier
from tollgate.kit.runtime import service_runtime
from tollgate.kit.service import create_app as create_service_app

TOPICS = (
    topics.BILLING_BALANCES,
    topics.BILLING_EVENTS,
    topics.GATEWAY_REQUESTS,
    topics.NOTIFIER_SMS,
)


def create_app(
    settings: Settings,
    *,
    jwt_verifier: JwtVerifier | None = None,
) -> FastAPI:
    """Build the app; nothing connects until the lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_runtime(
            app,
            settings,
            service="billing",
            database_url=settings.database_url,
            topics=TOPICS,
            outbox=outbox,
            consumers=(ledger_consumers(settings), sms_charge_consumers(settings)),
            jwt_verifier=jwt_verifier,
            background=(
                lambda sessions: run_balance_publisher(sessions, settings),
                lambda sessions: run_purge(sessions, settings),
                lambda sessions: run_period_roller(sessions, settings),
                lambda sessions: run_auto_top_up(sessions, settings),
            ),
        ):
            yield
        provider: PaymentProvider | None = getattr(app.state, "payment_provider", None)
        if provider is not None:
            await provider.aclose()

    app = create_service_app(
        service="billing",
        title="Tollgate billing",
        description="Tollgate billing: credit ledger, balances, top-ups, plans and payments.",
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        settings=settings,
    )
    app.include_router(balances_router, prefix="/v1")
    app.include_router(ledger_router, prefix="/v1")
    app.include_router(statements_router, prefix="/v1")
    app.include_router(plans_router, prefix="/v1")
    app.include_router(payments_router, prefix="/v1")
    app.include_router(auto_top_up_router, prefix="/v1")
    return app
