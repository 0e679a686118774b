"""The developer portal in process: catalog (search, tags, prices, own numbers), docs page
(Scalar, scoped CSP), the consumer document, test keys, and anonymous visitors."""

from __future__ import annotations

import uuid

import httpx
import pytest

from .fakes import FakeBackends, catalog_body, console, csrf, problem, sign_in

PET_ID = str(uuid.uuid4())
WEATHER_ID = str(uuid.uuid4())
CONSUMER_DOC = {
    "openapi": "3.1.0",
    "info": {"title": "Swagger Petstore", "version": "1.0.0"},
    "servers": [{"url": "https://gateway.example.com/petstore"}],
    "paths": {"/pets": {"get": {"x-tollgate-price": 1, "responses": {}}}},
}


def portal_fake(**changes: object) -> FakeBackends:
    fake = FakeBackends(**changes)  # type: ignore[arg-type]
    fake.catalog = [
        catalog_body(
            PET_ID,
            "petstore",
            "Petstore",
            description="Pets to adopt.",
            tags=["pets"],
            price_low=1,
            price_high=4,
        ),
        catalog_body(
            WEATHER_ID,
            "weather",
            "Weather <script>alert(1)</script>",
            status="deprecated",
            sunset_at="2027-03-01T00:00:00Z",
        ),
    ]
    fake.catalog_documents = {"petstore": CONSUMER_DOC}
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


async def test_openapi_json_is_the_consumer_document_accounts_built() -> None:
    fake = portal_fake()
    async with console(fake) as client:
        await sign_in(client)
        answer = await client.get("/portal/apis/petstore/openapi.json")
        client.cookies.set("tg_lang", "zh-Hans")
        await client.get("/portal/apis/petstore/openapi.json")

    assert answer.json() == CONSUMER_DOC
    assert ("accounts", "GET", "/v1/catalog/petstore/openapi") in fake.calls
    # Tollgate's words in the document follow the visitor's language.
    assert fake.document_languages == ["en", "zh-Hans"]
    assert "Accept-Language" in answer.headers["vary"]


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


async def test_the_language_links_of_a_forms_answer_lead_back_to_the_forms_page() -> None:
    # Before: they led to the form's own address, which a GET answers with 405: the
    # language or theme switch after creating a test key was an error page.
    fake = portal_fake()
    async with console(fake) as client:
        await sign_in(client)
        form = {"org_id": fake.org_id, "csrf_token": csrf(client)}
        page = await client.post(
            "/portal/apis/petstore/test-key",
            data=form,
            headers={"referer": "http://console.test/portal/apis/petstore"},
        )
        elsewhere = await client.post(
            "/portal/apis/petstore/test-key",
            data=form,
            headers={"referer": "https://evil.example/portal/apis/petstore"},
        )
    assert "/prefs?lang=zh-Hans&amp;next=/portal/apis/petstore" in page.text
    assert "next=/portal/apis/petstore/test-key" not in page.text
    assert '/prefs?lang=zh-Hans&amp;next=/"' in elsewhere.text


async def test_viewers_get_no_test_key_button() -> None:
    async with console(portal_fake(role="viewer")) as client:
        await sign_in(client)
        page = await client.get("/portal/apis/petstore")

    assert 'data-testid="portal-create-test-key"' not in page.text
    assert 'data-testid="portal-paste-key"' in page.text


async def test_unknown_api_is_404() -> None:
    async with console(portal_fake()) as client:
        await sign_in(client)
        assert (await client.get("/portal/apis/gone")).status_code == 404
        assert (await client.get("/portal/apis/nope/openapi.json")).status_code == 404


async def test_anonymous_visitor_reads_the_catalog_and_docs_with_sign_up_to_try_it() -> None:
    fake = portal_fake()
    async with console(fake) as client:
        catalog = await client.get("/portal")
        docs = await client.get("/portal/apis/petstore")
        document = await client.get("/portal/apis/petstore/openapi.json")

    assert catalog.status_code == docs.status_code == document.status_code == 200
    assert 'data-testid="portal-anonymous"' in catalog.text
    assert "Petstore" in catalog.text
    assert "1\u20134 credits per call" in catalog.text
    assert 'data-url="/portal/apis/petstore/openapi.json"' in docs.text
    assert 'data-testid="portal-sign-up"' in docs.text
    assert 'data-testid="portal-create-test-key"' not in docs.text
    assert 'data-testid="portal-mine"' not in docs.text
    assert document.json() == CONSUMER_DOC
    assert {c[2] for c in fake.calls} <= {
        "/v1/catalog",
        "/v1/catalog/petstore",
        "/v1/catalog/petstore/openapi",
    }


async def test_public_pages_switched_off_send_anonymous_visitors_to_sign_in() -> None:
    async with console(portal_fake(portal_public=False)) as client:
        page = await client.get("/portal", follow_redirects=False)

    assert page.status_code == 303
    assert page.headers["location"].startswith("/signin?next=%2Fportal")


async def test_a_catalog_accounts_keeps_closed_sends_anonymous_visitors_to_sign_in() -> None:
    async with console(portal_fake(catalog_public=False)) as client:
        page = await client.get("/portal/apis/petstore", follow_redirects=False)
        await sign_in(client)
        signed_in = await client.get("/portal/apis/petstore")

    assert page.status_code == 303
    assert page.headers["location"].startswith("/signin?next=")
    assert signed_in.status_code == 200


async def test_anonymous_portal_speaks_chinese() -> None:
    async with console(portal_fake()) as client:
        page = await client.get("/portal/apis/petstore", headers={"accept-language": "zh-CN"})

    assert "注册后试用" in page.text


async def test_portal_speaks_chinese() -> None:
    async with console(portal_fake()) as client:
        await sign_in(client)
        page = await client.get("/portal", headers={"accept-language": "zh-CN"})

    assert "开发者门户" in page.text


async def test_the_console_proves_itself_to_accounts_alone() -> None:
    """Accounts believes the visitor addresses only from a caller with one of its
    `proxy_secrets`: the console sends its secret to accounts, to no other service,
    and never into a page."""
    fake = portal_fake()
    sent: list[tuple[str, str | None]] = []
    answer = fake.handle

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.host, request.headers.get("x-tollgate-proxy-secret")))
        return answer(request)

    fake.handle = handle  # type: ignore[method-assign]
    async with console(fake, accounts_proxy_secret="console-proxy-secret") as client:
        await sign_in(client)
        overview = await client.get("/", follow_redirects=True)
        org_pages = [overview.url.path + page for page in ("/keys", "/usage", "/logs")]
        pages = [overview, *[await client.get(path) for path in ("/portal", *org_pages)]]

    assert {host for host, _ in sent} >= {"accounts.test", "usage.test"}
    for host, secret in sent:
        assert secret == ("console-proxy-secret" if host == "accounts.test" else None), host
    assert [page.status_code for page in pages] == [200] * 5
    assert not [page for page in pages if "console-proxy-secret" in page.text]


async def test_every_backing_call_passes_the_visitor_address_and_accounts_limit_on() -> None:
    """Accounts throttles sign-ins, password resets and anonymous catalog reads per client
    IP and audits the caller's address: the console passes the visitor's address chain on
    like a proxy with every call (the chain it was given, then its peer), so visitors do
    not share the console's one address, and it shows accounts' 429 as its own."""
    fake = portal_fake()
    forwarded: list[tuple[str, str | None]] = []
    answer = fake.handle

    def handle(request: httpx.Request) -> httpx.Response:
        forwarded.append((request.url.path, request.headers.get("x-forwarded-for")))
        if request.url.path == "/v1/catalog/weather":
            return problem(429, "Too Many Requests", "Slow down.", retry_after=17)
        return answer(request)

    fake.handle = handle  # type: ignore[method-assign]
    async with console(fake) as client:
        listed = await client.get("/portal", headers={"x-forwarded-for": "203.0.113.9"})
        throttled = await client.get("/portal/apis/weather")
        anonymous = list(forwarded)
        forwarded.clear()
        await sign_in(client)
        signed_in = await client.get("/portal", headers={"x-forwarded-for": "198.51.100.7"})

    assert listed.status_code == 200
    assert [chain for _, chain in anonymous] == ["203.0.113.9, 127.0.0.1", "127.0.0.1"]
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "17"
    assert signed_in.status_code == 200
    assert ("/v1/auth/token", "127.0.0.1") in forwarded  # the sign-in itself
    assert {chain for path, chain in forwarded if path != "/v1/auth/token"} >= {
        "198.51.100.7, 127.0.0.1"
    }
    assert all(chain for _, chain in forwarded)


async def test_a_test_key_is_shown_when_accounts_fails_right_after() -> None:
    fake = portal_fake()
    async with console(fake) as client:
        await sign_in(client)
        fake.down_after_write = {"accounts"}
        page = await client.post(
            "/portal/apis/petstore/test-key",
            data={"org_id": fake.org_id, "csrf_token": csrf(client)},
        )
    assert page.status_code == 200  # the docs read after the write: 503, key lost
    assert "tg_test_RAWSECRET" in page.text


async def test_chinese_prices_name_credits_as_the_credits_page_does() -> None:
    # Before: the portal's prices said 积分, the credits page 额度.
    fake = portal_fake()
    async with console(fake) as client:
        await sign_in(client)
        client.cookies.set("tg_lang", "zh-Hans")
        catalog = await client.get("/portal")
        docs = await client.get("/portal/apis/petstore")
        credits = await client.get(f"/orgs/{fake.org_id}/credits")
    assert "每次调用 1\u20134 额度" in catalog.text  # an en dash between the prices
    assert "每次调用 2 额度" in catalog.text
    assert "每次调用 1\u20134 额度" in docs.text
    assert "<h1>额度</h1>" in credits.text
    assert "积分" not in catalog.text + docs.text + credits.text
