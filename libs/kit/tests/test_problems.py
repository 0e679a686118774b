"""The problem vocabulary: named problems take their title from the status, carry a
slug, and the OpenAPI document lists the slugs of every problem response."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from tollgate.kit.auth import CurrentPrincipal, JwtVerifier
from tollgate.kit.problems import (
    PROBLEM_BASE,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Problem,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    documented_problems,
)
from tollgate.kit.service import create_app
from tollgate.kit.settings import ServiceSettings
from tollgate.kit.testing.openapi import problem_responses_without_slugs


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield


def build_app(settings: ServiceSettings | None = None) -> FastAPI:
    app = create_app(
        service="test",
        title="t",
        description="d",
        lifespan=_lifespan,
        max_body_bytes=2048,
        settings=settings,
    )
    app.state.jwt_verifier = JwtVerifier(issuer="i", audience="a", jwks={"keys": []})

    @app.get("/things/{name}", responses=documented_problems({409: ("Taken", ["name-taken"])}))
    async def get_thing(name: str) -> dict[str, str]:
        if name == "taken":
            raise Conflict("name-taken", "That name is taken.")
        raise NotFound("not-found", "No such thing.")

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        return {"email": principal.email}

    return app


@pytest.mark.parametrize(
    ("problem", "status", "title"),
    [
        (BadRequest("x"), 400, "Bad Request"),
        (Unauthorized("x"), 401, "Unauthorized"),
        (Forbidden("x"), 403, "Forbidden"),
        (NotFound("x"), 404, "Not Found"),
        (Conflict("x"), 409, "Conflict"),
        (Unprocessable("x"), 422, "Unprocessable Content"),
        (TooManyRequests("x"), 429, "Too Many Requests"),
        (ServiceUnavailable("x"), 503, "Service Unavailable"),
    ],
)
def test_named_problems_take_status_and_title_from_their_class(
    problem: Problem, status: int, title: str
) -> None:
    assert (problem.status, problem.title, problem.slug) == (status, title, "x")


def test_every_401_carries_the_bearer_challenge() -> None:
    assert Unauthorized("expired").headers["WWW-Authenticate"] == 'Bearer realm="tollgate"'


async def test_named_problem_answers_with_its_slug() -> None:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        taken = await client.get("/things/taken")
        missing = await client.get("/things/else")
        unrouted = await client.get("/nowhere")
        anonymous = await client.get("/me")
    assert taken.status_code == 409
    assert taken.json()["type"] == PROBLEM_BASE + "name-taken"
    assert taken.json()["title"] == "Conflict"
    assert missing.json()["type"] == PROBLEM_BASE + "not-found"
    assert unrouted.json()["type"] == PROBLEM_BASE + "not-found"
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="tollgate"'
    assert anonymous.json()["type"] == PROBLEM_BASE + "unauthorized"


def test_openapi_lists_the_slugs_of_every_problem_response() -> None:
    document = build_app().openapi()
    thing = document["paths"]["/things/{name}"]["get"]["responses"]
    assert "name-taken" in thing["409"]["x-problem-types"]
    assert "not-found" in thing["404"]["x-problem-types"]
    assert problem_responses_without_slugs(document) == []


def test_openapi_declares_the_bearer_scheme_on_routes_that_need_a_token() -> None:
    document = build_app().openapi()
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    assert document["paths"]["/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in document["paths"]["/things/{name}"]["get"]


async def test_cors_is_off_by_default() -> None:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        preflight = await client.options(
            "/me",
            headers={"Origin": "https://console.example", "Access-Control-Request-Method": "GET"},
        )
    assert "access-control-allow-origin" not in preflight.headers


async def test_cors_allows_listed_origins_only() -> None:
    settings = ServiceSettings(cors_origins="https://console.example, https://b.example/")
    transport = httpx.ASGITransport(app=build_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        allowed = await client.options(
            "/me",
            headers={
                "Origin": "https://console.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
        refused = await client.options(
            "/me",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        simple = await client.get("/things/x", headers={"Origin": "https://b.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://console.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == "https://b.example"
