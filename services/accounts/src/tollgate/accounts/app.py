"""The accounts service's FastAPI app: lifespan wiring and routers, nothing else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from sqlalchemy.exc import IntegrityError

from tollgate.accounts.apis.api import router as apis_router
from tollgate.accounts.audit import retention as audit_retention
from tollgate.accounts.audit.api import router as audit_router
from tollgate.accounts.audit.consumers import audit_consumers
from tollgate.accounts.caller import Actor
from tollgate.accounts.catalog.api import router as catalog_router
from tollgate.accounts.config import Settings
from tollgate.accounts.identity import service as identity
from tollgate.accounts.identity import state as user_state
from tollgate.accounts.identity.api import jwks_router, users_router
from tollgate.accounts.identity.api import router as auth_router
from tollgate.accounts.identity.signing import SigningKeyring
from tollgate.accounts.keys import jobs as key_jobs
from tollgate.accounts.keys.api import router as keys_router
from tollgate.accounts.models import outbox
from tollgate.accounts.orgs.api import router as orgs_router
from tollgate.contracts import topics
from tollgate.kit.auth import JwtVerifier
from tollgate.kit.clientip import TrustedProxies
from tollgate.kit.db import SessionMaker
from tollgate.kit.problems import Problem, problem_response
from tollgate.kit.runtime import service_runtime
from tollgate.kit.service import create_app as create_service_app
from tollgate.kit.upstream_identity import secrets_of

TOPICS = (
    topics.ACCOUNTS_KEYS,
    topics.ACCOUNTS_APIS,
    topics.ACCOUNTS_EVENTS,
    topics.ACCOUNTS_USERS,
    topics.AUDIT_RECORDS,
)
log = logging.getLogger(__name__)


def load_keyring(settings: Settings) -> SigningKeyring:
    """The signing keyring named by the settings (generated when allowed and missing)."""
    return SigningKeyring(
        settings.signing_key_file,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        access_ttl_seconds=settings.access_token_ttl_seconds,
        generate=settings.signing_key_generate,
    )


async def ensure_configured_admin(settings: Settings, sessions: SessionMaker) -> None:
    """Create (or promote) the admin named by `admin_email` / `admin_password`."""
    if not settings.admin_email or not settings.admin_password:
        return
    actor = Actor(principal=None, ip=None, request_id="startup")
    try:
        async with sessions() as session, session.begin():
            _, created = await identity.ensure_admin(
                session,
                settings,
                actor,
                email=settings.admin_email,
                password=settings.admin_password,
            )
    except IntegrityError:  # another replica created it first
        return
    except Problem as refused:  # an unproven account under that address: not promoted
        log.error("platform admin not ensured", extra={"detail": refused.detail})
        return
    if created:
        log.info("platform admin created from settings")


async def _on_conflict(request: Request, exc: Exception) -> Response:
    # Two requests raced for the same unique value (email, slug, membership): the
    # loser's transaction rolled back; say so instead of answering 500.
    return problem_response(
        409,
        "Conflict",
        "A concurrent change took this value; retry.",
        slug="conflict",
        instance=request.url.path,
    )


def create_app(settings: Settings) -> FastAPI:
    """Build the app; nothing connects until the lifespan starts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keyring = load_keyring(settings)
        if not keyring.available:
            log.error(
                "no token signing key in %s: sign-in is disabled until one is configured "
                "(python -m tollgate.accounts rotate-signing-key)",
                settings.signing_key_file,
            )
        app.state.keyring = keyring
        verifier = JwtVerifier(
            issuer=settings.jwt_issuer, audience=settings.jwt_audience, jwks=keyring.jwks()
        )
        async with service_runtime(
            app,
            settings,
            service="accounts",
            database_url=settings.database_url,
            topics=TOPICS,
            outbox=outbox,
            consumers=(audit_consumers(settings),) if settings.consume_audit_records else (),
            jwt_verifier=verifier,
            background=(
                lambda sessions: key_jobs.run_forever(sessions, settings),
                lambda sessions: audit_retention.run_forever(sessions, settings),
            ),
            # Accounts authorises against its own database (fresher than any replay).
            follow_identity=False,
        ) as runtime:
            assert runtime.sessions is not None
            await ensure_configured_admin(settings, runtime.sessions)
            # A fresh broker (or a lost users topic) gets every user's state again.
            republished = await user_state.republish_all(runtime.sessions)
            log.info("user states republished", extra={"users": republished})
            yield

    app = create_service_app(
        service="accounts",
        title="Tollgate accounts",
        description="Tollgate accounts: users, orgs, roles, API keys and the API registry.",
        lifespan=lifespan,
        max_body_bytes=settings.max_body_bytes,
        settings=settings,
        audit=False,  # accounts writes its audit log in the transaction of each change
    )
    app.state.trusted_proxies = TrustedProxies(settings.trusted_proxies)
    app.state.proxy_secrets = tuple(secrets_of(settings.proxy_secrets))
    app.add_exception_handler(IntegrityError, _on_conflict)
    app.include_router(jwks_router)
    for router in (
        auth_router,
        users_router,
        orgs_router,
        keys_router,
        apis_router,
        audit_router,
        catalog_router,
    ):
        app.include_router(router, prefix="/v1")
    return app
