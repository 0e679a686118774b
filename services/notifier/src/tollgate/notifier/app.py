"""The notifier service's FastAPI app: lifespan wiring and routers, nothing else.

The kit's runtime runs everything: database, outbox relay, intake consumer, the
follower of billing's balances (SMS credit checks), and the background jobs
(retention, webhook deliveries, emails, SMS routing and sending, provider balances) on
its `every` loop; the lifespan only adds closing the webhook sender and the email
backend.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from tollgate.contracts import topics
from tollgate.kit.auth import JwtVerifier
from tollgate.kit.db import SessionMaker
from tollgate.kit.netpolicy import NetworkPolicy, parse_networks
from tollgate.kit.runtime import BackgroundJob, service_runtime
from tollgate.kit.service import create_app as create_service_app
from tollgate.notifier.clock import Clock, SystemClock
from tollgate.notifier.config import Settings
from tollgate.notifier.email.api import router as email_router
from tollgate.notifier.email.backends import EmailBackend, FileBackend, ResendBackend
from tollgate.notifier.email.worker import EmailWorker
from tollgate.notifier.intake.consumers import intake_consumers
from tollgate.notifier.models import outbox
from tollgate.notifier.outbound.api import router as outbound_router
from tollgate.notifier.outbound.balance_watch import BalanceWatch
from tollgate.notifier.outbound.credit import balance_follower
from tollgate.notifier.outbound.worker import SmsSendWorker
from tollgate.notifier.retention.jobs import RetentionJob, policy_from
from tollgate.notifier.sms.api import router as sms_router
from tollgate.notifier.sms.worker import SmsRouter
from tollgate.notifier.state import NotifierState, sealer_for
from tollgate.notifier.webhooks.api import router as webhooks_router
from tollgate.notifier.webhooks.sender import WebhookSender
from tollgate.notifier.webhooks.worker import DeliveryWorker

TOPICS = (topics.NOTIFIER_SMS, topics.ACCOUNTS_EVENTS, topics.BILLING_EVENTS, topics.USAGE_EVENTS)


def email_backend(settings: Settings) -> EmailBackend:
    """The configured email backend."""
    if settings.email_backend == "resend":
        return ResendBackend(
            base_url=settings.resend_base_url,
            api_key=settings.resend_api_key.get_secret_value(),
        )
    return FileBackend(settings.email_dir)


def create_app(
    settings: Settings, *, clock: Clock | None = None, jwt_verifier: JwtVerifier | None = None
) -> FastAPI:
    """Build the app; nothing connects until the lifespan starts."""
    clock = clock or SystemClock()
    state = NotifierState(
        settings=settings,
        sealer=sealer_for(settings),
        clock=clock,
        network_policy=NetworkPolicy(
            allow_private=False, allowed=parse_networks(settings.webhook_allowed_networks)
        ),
    )

    def route_sms(sessions: SessionMaker) -> Coroutine[Any, Any, None]:
        router = SmsRouter(sessions=sessions, clock=clock, poll_seconds=1.0)
        state.wake_sms_router = router.wake
        return router.run()

    def send_sms(sessions: SessionMaker) -> Coroutine[Any, Any, None]:
        sender = SmsSendWorker(
            sessions=sessions, sealer=state.sealer, clock=clock, settings=settings
        )
        state.wake_sms_sender = sender.wake
        return sender.run()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sender = WebhookSender(
            timeout_seconds=settings.webhook_timeout_seconds,
            policy=state.network_policy,
        )
        backend = email_backend(settings)
        workers: list[BackgroundJob] = [
            lambda sessions: RetentionJob(
                sessions=sessions,
                clock=clock,
                policy=policy_from(settings),
                interval_seconds=settings.retention_interval_seconds,
            ).run(),
            lambda sessions: DeliveryWorker(
                sessions=sessions,
                sender=sender,
                sealer=state.sealer,
                clock=clock,
                concurrency=settings.webhook_concurrency,
                org_concurrency=settings.webhook_org_concurrency,
                timeout_seconds=settings.webhook_timeout_seconds,
                disable_after=timedelta(hours=settings.webhook_disable_after_hours),
                poll_seconds=settings.webhook_poll_seconds,
            ).run(),
            lambda sessions: EmailWorker(
                sessions=sessions,
                backend=backend,
                sealer=state.sealer,
                clock=clock,
                sender=settings.email_from,
                console_url=settings.console_url,
                max_attempts=settings.email_max_attempts,
            ).run(),
            route_sms,
            send_sms,
        ]
        if settings.sms_provider_balance_poll_seconds > 0:
            workers.append(
                lambda sessions: BalanceWatch(
                    sessions=sessions,
                    sealer=state.sealer,
                    interval=settings.sms_provider_balance_poll_seconds,
                ).run()
            )
        try:
            async with service_runtime(
                app,
                settings,
                service="notifier",
                database_url=settings.database_url,
                topics=TOPICS,
                outbox=outbox,
                consumers=(intake_consumers(settings, clock, state.sms_balances),),
                jwt_verifier=jwt_verifier,
                # Every replica follows billing's balances: sends check credits.
                background=[
                    lambda _: balance_follower(settings, state.sms_balances).run(),
                    *(workers if settings.workers_enabled else ()),
                ],
            ):
                yield
        finally:
            await sender.close()
            await backend.close()

    app = create_service_app(
        service="notifier",
        title="Tollgate notifier",
        description="Tollgate notifier: signed webhooks, email via Resend, SMS in and out.",
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        settings=settings,
    )
    app.state.notifier = state
    app.include_router(webhooks_router, prefix="/v1")
    app.include_router(email_router, prefix="/v1")
    app.include_router(sms_router, prefix="/v1")
    app.include_router(outbound_router, prefix="/v1")
    return app
