"""Every service's OpenAPI document meets the platform's HTTP vocabulary: each problem
response lists the slugs it may carry, the bearer JWT scheme is declared on the routes
that need a token, and required request headers are documented as required."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tollgate.accounts.app import create_app as accounts_app
from tollgate.accounts.config import Settings as AccountsSettings
from tollgate.billing.app import create_app as billing_app
from tollgate.billing.config import Settings as BillingSettings
from tollgate.kit.testing.openapi import header_parameter, problem_responses_without_slugs
from tollgate.notifier.app import create_app as notifier_app
from tollgate.notifier.config import Settings as NotifierSettings
from tollgate.usage.app import create_app as usage_app
from tollgate.usage.config import Settings as UsageSettings


def _apps() -> dict[str, FastAPI]:
    return {
        "accounts": accounts_app(AccountsSettings()),
        "usage": usage_app(UsageSettings()),
        "billing": billing_app(BillingSettings()),
        "notifier": notifier_app(NotifierSettings()),
    }


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {name: app.openapi() for name, app in _apps().items()}


def test_every_problem_response_has_a_slug(documents: dict[str, dict[str, Any]]) -> None:
    for name, document in documents.items():
        assert problem_responses_without_slugs(document) == [], name


def test_every_service_declares_its_bearer_scheme(documents: dict[str, dict[str, Any]]) -> None:
    for name, document in documents.items():
        scheme = document["components"]["securitySchemes"]["bearerAuth"]
        assert (scheme["type"], scheme["scheme"]) == ("http", "bearer"), name
        secured = [
            op
            for item in document["paths"].values()
            for op in item.values()
            if isinstance(op, dict) and op.get("security") == [{"bearerAuth": []}]
        ]
        assert secured, name


def test_top_ups_document_the_required_idempotency_key(
    documents: dict[str, dict[str, Any]],
) -> None:
    parameter = header_parameter(
        documents["billing"], "/v1/orgs/{org_id}/credits", "post", "Idempotency-Key"
    )
    assert parameter is not None
    assert parameter["required"] is True


async def test_every_secured_route_answers_401_with_the_bearer_challenge() -> None:
    for name, app in _apps().items():
        document = app.openapi()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path, item in document["paths"].items():
                for method, operation in item.items():
                    if operation.get("security") != [{"bearerAuth": []}]:
                        continue
                    concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
                    response = await client.request(method.upper(), concrete)
                    assert response.status_code == 401, (name, method, path, response.text)
                    assert response.headers["www-authenticate"] == 'Bearer realm="tollgate"'
                    assert response.json()["type"].endswith("/unauthorized")
