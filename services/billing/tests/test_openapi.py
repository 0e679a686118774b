"""Schemathesis against the OpenAPI document, in process: no input makes a 5xx."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tollgate.billing.app import create_app
from tollgate.kit.db import session_maker
from tollgate.kit.migrations import upgrade_head
from tollgate.kit.testing.tokens import TokenMint

from .factories import settings_for

EXAMPLES_PER_OPERATION = 30


@contextlib.asynccontextmanager
async def _without_kafka(app: FastAPI) -> AsyncIterator[None]:
    yield


def test_no_input_makes_a_server_error(database_factory: Callable[[str], str]) -> None:
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
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def probe(case: schemathesis.Case) -> None:
            response = case.call(headers={**token, **(case.headers or {})})
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}")

        probe()
    assert not failures, failures
