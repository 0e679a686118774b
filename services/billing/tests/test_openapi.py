"""Schemathesis against the OpenAPI document, in process: generated valid and invalid
requests to every route get no 5xx and no response that contradicts the schema."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import schemathesis
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tollgate.billing.app import create_app
from tollgate.kit.db import session_maker
from tollgate.kit.migrations import upgrade_head
from tollgate.kit.testing.fuzz import fuzz_operations
from tollgate.kit.testing.tokens import TokenMint

from .factories import settings_for

EXAMPLES_PER_OPERATION = 25


@contextlib.asynccontextmanager
async def _without_kafka(app: FastAPI) -> AsyncIterator[None]:
    yield


def test_schemathesis_finds_no_server_errors_or_schema_violations(
    database_factory: Callable[[str], str],
) -> None:
    url = database_factory("billing")
    upgrade_head("tollgate.billing", url)
    app = create_app(settings_for(url))
    app.router.lifespan_context = _without_kafka
    # Schemathesis calls the ASGI app from its own event loops: no pooled connections.
    app.state.sessions = session_maker(create_async_engine(url, poolclass=NullPool))
    mint = TokenMint()
    app.state.jwt_verifier = mint.verifier()
    token = mint.headers(admin=True)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    report = fuzz_operations(schema, examples=EXAMPLES_PER_OPERATION, headers=token)
    assert report.operations == 7
    assert not report.failures, "\n".join(report.failures[:10])
