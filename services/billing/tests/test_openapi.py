"""Schemathesis against the OpenAPI document, in process, with every check
(`tollgate.kit.testing.fuzz`): generated valid and invalid requests to every route get
no 5xx and no response that contradicts the schema.

Each call that carries an `Idempotency-Key` gets a fresh one, as a real client's
distinct requests do (a generated key reused for another body is rightly a 422);
calls without one still test the missing-key answer."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import schemathesis

from tollgate.billing.app import create_app
from tollgate.kit.migrations import upgrade_head
from tollgate.kit.testing.fuzz import fuzz_operations, pooled_sessions
from tollgate.kit.testing.tokens import TokenMint

from .factories import settings_for

EXAMPLES_PER_OPERATION = 8
SEMANTIC_RULES = {
    "GET /v1/orgs/{org_id}/transactions": "a cursor must be one this API issued",
    "GET /v1/plans": "a cursor must be one this API issued",
    "GET /v1/balances": "a cursor must be one this API issued",
    "GET /v1/orgs/{org_id}/purchases": "a cursor must be one this API issued",
    "GET /v1/orgs/{org_id}/invoices": "a cursor must be one this API issued",
    "PUT /v1/orgs/{org_id}/auto-top-up": "the target must be above the threshold",
}


def _fresh_idempotency_key(case: schemathesis.Case) -> dict[str, Any]:
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = f"fuzz-{uuid.uuid4()}"
    return {}


def test_schemathesis_finds_no_server_errors_or_schema_violations(
    database_factory: Callable[[str], str],
) -> None:
    url = database_factory("billing")
    upgrade_head("tollgate.billing", url)
    app = create_app(settings_for(url))
    mint = TokenMint()
    app.state.jwt_verifier = mint.verifier()
    token = mint.headers(admin=True)
    with pooled_sessions(app, url):
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        report = fuzz_operations(
            schema,
            examples=EXAMPLES_PER_OPERATION,
            headers=token,
            call_kwargs=_fresh_idempotency_key,
            semantic_rules=SEMANTIC_RULES,
        )
    assert report.operations == 27
    assert not report.failures, "\n".join(report.failures[:10])
