"""The developer portal in process: catalog (search, tags, prices, own numbers), docs page
(Scalar, scoped CSP), the consumer document, test keys, and anonymous visitors."""

from __future__ import annotations

import uuid

import pytest

from .fakes import FakeBackends, api_body, console, csrf, route_body, sign_in

PET_ID = str(uuid.uuid4())
WEATHER_ID = str(uuid.uuid4())
PETSTORE_DOC = {
    "openapi": "3.0.0",
    "info": {"title": "Swagger Petstore", "version": "1.0.0", "description": "Pets to adopt."},
    "servers": [{"url": "http://petstore.internal/v1"}],
    "tags": [{"name": "pets"}],
    "paths": {
        "/pets": {
            "get": {
                "operationId": "listPets",
                "tags": ["pets"],
                "parameters": [{"name": "X-Upstream-Secret", "in": "header"}],
                "responses": {"200": {"description": "pets"}},
            }
        }
    },
}


def portal_fake(**changes: object) -> FakeBackends:
    fake = FakeBackends(**changes)  # type: ignore[arg-type]
    fake.apis = [
        api_body(
            PET_ID,
            "petstore",
            "Petstore",
            has_openapi_document=True,
            upstream_header_names=["X-Upstream-Secret"],
            routes=[route_body("GET", "/pets", price=1), route_body("POST", "/pets", price=4)],
        ),
        api_body(
            WEATHER_ID,
            "weather",
            "Weather <script>alert(1)</script>",
            status="deprecated",
            sunset_at="2027-03-01T00:00:00Z",
        ),
        api_body(str(uuid.uuid4()), "gone", "Gone API", status="retired"),
    ]
    fake.documents = {PET_ID: PETSTORE_DOC}
    fake.top_values = {"api": [PET_ID]}
    return fake


async def test_catalog_lists_active_and_deprecated_apis_with_prices_and_numbers() -> None:
    async with console(portal_fake()) as client:
        await sign_in(client)
        page = await client.get("/portal")

    assert page.status_code == 200
    assert "Petstore" in page.text
    assert "Pets to adopt." in page.text
    assert "1\u20134 credits per call" in page.text
    assert "2 credits per call" in page.text
    assert "Gone API" not in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "Sunset" in page.text
    assert 'data-testid="portal-numbers"' in page.text  # 7 requests, 2 errors
    assert "28.6%" in page.text or "28.57%" in page.text or "29%" in page.text


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("q=adopt", "Petstore", "Weather"),
        ("q=weather", "Weather", "Petstore"),
        ("tag=pets", "Petstore", "Weather"),
    ],
)
async def test_catalog_search_and_tags(query: str, shown: str, hidden: str) -> None:
    async with console(portal_fake()) as client:
        await sign_in(client)
        page = await client.get(f"/portal?{query}")

    assert shown in page.text
    assert f">{hidden}" not in page.text


async def test_consumer_document_names_the_gateway_and_hides_the_upstream() -> None:
    async with console(portal_fake()) as client:
        await sign_in(client)
        answer = await client.get("/portal/apis/petstore/openapi.json")

    doc = answer.json()
    assert doc["servers"][0]["url"] == "https://gateway.example.com/petstore"
    assert "petstore.internal" not in answer.text
    assert "upstream.internal" not in answer.text
    assert "X-Upstream-Secret" not in answer.text
    assert doc["paths"]["/pets"]["get"]["x-tollgate-price"] == 1


async def test_docs_page_loads_scalar_with_a_csp_relaxed_for_styles_only() -> None:
    async with console(portal_fake()) as client:
        await sign_in(client)
        page = await client.get("/portal/apis/petstore")
        catalog = await client.get("/portal")

    assert page.status_code == 200
    assert "/static/vendor/scalar/standalone.js" in page.text
    assert 'data-url="/portal/apis/petstore/openapi.json"' in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "style-src 'self' 'unsafe-inline'" in csp
    assert "connect-src 'self' https://gateway.example.com;" in csp
    assert "unsafe-inline" not in catalog.headers["content-security-policy"]


async def test_docs_page_shows_test_key_calls_apart_from_live_numbers() -> None:
    fake = portal_fake()
    fake.top_values["api:test"] = list(fake.top_values["api"])
    async with console(fake) as client:
        await sign_in(client)
        tried = await client.get("/portal/apis/petstore")
        fake.top_values.pop("api:test")
        live_only = await client.get("/portal/apis/petstore")

    assert 'data-testid="portal-requests">7<' in tried.text
    assert 'data-testid="portal-test-requests">7<' in tried.text
    assert 'data-testid="portal-test-numbers"' not in live_only.text


async def test_test_key_is_a_short_lived_test_key_for_this_api_only() -> None:
    fake = portal_fake()
    async with console(fake) as client:
        await sign_in(client)
        page = await client.post(
            "/portal/apis/petstore/test-key",
            data={"org_id": fake.org_id, "csrf_token": csrf(client)},
        )

    assert page.status_code == 200
    assert "tg_test_RAWSECRET" in page.text
    (body,) = fake.key_bodies
    assert body["environment"] == "test"
    assert body["allowed_api_ids"] == [PET_ID]
    assert body["limits"]["per_minute"] <= 30
    assert body["expires_at"]


async def test_viewers_get_no_test_key_button() -> None:
    async with console(portal_fake(role="viewer")) as client:
        await sign_in(client)
        page = await client.get("/portal/apis/petstore")

    assert 'data-testid="portal-create-test-key"' not in page.text
    assert 'data-testid="portal-paste-key"' in page.text


async def test_unknown_or_retired_api_is_404() -> None:
    async with console(portal_fake()) as client:
        await sign_in(client)
        assert (await client.get("/portal/apis/gone")).status_code == 404
        assert (await client.get("/portal/apis/nope/openapi.json")).status_code == 404


async def test_anonymous_visitor_gets_the_public_layout_and_a_sign_in_prompt() -> None:
    fake = portal_fake()
    async with console(fake) as client:
        page = await client.get("/portal")

    assert page.status_code == 200
    assert 'data-testid="portal-anonymous"' in page.text
    assert not [c for c in fake.calls if c[2] == "/v1/apis"]  # no side door


async def test_public_pages_switched_off_send_anonymous_visitors_to_sign_in() -> None:
    async with console(portal_fake(portal_public=False)) as client:
        page = await client.get("/portal", follow_redirects=False)

    assert page.status_code == 303
    assert page.headers["location"].startswith("/signin?next=%2Fportal")


async def test_portal_speaks_chinese() -> None:
    async with console(portal_fake()) as client:
        await sign_in(client)
        page = await client.get("/portal", headers={"accept-language": "zh-CN"})

    assert "开发者门户" in page.text
