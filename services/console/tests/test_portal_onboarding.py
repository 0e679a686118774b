"""The portal's onboarding: a signed-in customer whose org has no key yet gets a checklist
(email verified or not, org, first key shown once, a ready curl line), and a fragment that
htmx polls celebrates the first successful call once usage has it, then stops polling."""

from __future__ import annotations

import re
import uuid

from .fakes import FakeBackends, catalog_body, console, csrf, key_body, sign_in

PET_ID = str(uuid.uuid4())
CONSUMER_DOC = {
    "openapi": "3.1.0",
    "info": {"title": "Petstore", "version": "1.0.0"},
    "paths": {
        "/pets/{petId}": {"get": {"responses": {}}},
        "/pets": {"post": {"responses": {}}, "get": {"responses": {}}},
    },
}


def onboarding_fake(**changes: object) -> FakeBackends:
    fake = FakeBackends(**changes)  # type: ignore[arg-type]
    fake.catalog = [catalog_body(PET_ID, "petstore", "Petstore")]
    fake.catalog_documents = {"petstore": CONSUMER_DOC}
    return fake


def _poll_url(page: str) -> str:
    match = re.search(r'hx-get="([^"]+)"', page)
    assert match, "no polling fragment"
    return match.group(1).replace("&amp;", "&")


async def test_a_verified_customer_creates_a_live_key_and_gets_a_curl_line() -> None:
    fake = onboarding_fake()
    async with console(fake) as client:
        await sign_in(client)
        before = await client.get("/portal")
        created = await client.post(
            "/portal/onboarding/key", data={"org_id": fake.org_id, "csrf_token": csrf(client)}
        )
        after = await client.get("/portal")

    assert 'data-testid="portal-onboarding"' in before.text
    assert 'data-testid="onboarding-email" data-done="yes"' in before.text
    assert "Create my first live key" in before.text
    assert created.status_code == 200
    assert fake.key_bodies[-1]["environment"] == "live"
    assert "tg_live_RAWSECRET" in created.text
    assert created.headers["cache-control"] == "no-store"
    # The API's first GET without a path parameter, at the gateway, with the new key.
    assert (
        'curl -H "X-API-Key: tg_live_RAWSECRET" '
        '"https://gateway.example.com/petstore/pets"' in created.text.replace("&#34;", '"')
    )
    assert "mode=live" in _poll_url(created.text)
    # Once the org has a key the checklist is gone, and the raw key with it.
    assert 'data-testid="portal-onboarding"' not in after.text
    assert "tg_live_RAWSECRET" not in after.text


async def test_an_unverified_customer_is_offered_a_resend_and_a_test_key() -> None:
    fake = onboarding_fake(email_verified=False)
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get("/portal")
        created = await client.post(
            "/portal/onboarding/key", data={"org_id": fake.org_id, "csrf_token": csrf(client)}
        )

    assert 'data-testid="onboarding-email" data-done="no"' in page.text
    assert 'action="/verify-email/resend"' in page.text
    assert "Create my first test key" in page.text
    assert fake.key_bodies[-1]["environment"] == "test"
    assert "tg_test_RAWSECRET" in created.text
    assert "mode=test" in _poll_url(created.text)


async def test_the_first_successful_call_is_celebrated_and_polling_stops() -> None:
    fake = onboarding_fake()
    async with console(fake) as client:
        await sign_in(client)
        created = await client.post(
            "/portal/onboarding/key", data={"org_id": fake.org_id, "csrf_token": csrf(client)}
        )
        url = _poll_url(created.text)
        fake.top_values["status"] = ["401"]  # a refused call is not a success
        waiting = await client.get(url)
        fake.top_values["status"] = ["401", "200"]
        seen = await client.get(url)

    assert created.text.count("hx-trigger=") == 1
    assert 'data-testid="onboarding-waiting"' in waiting.text
    assert "hx-trigger" in waiting.text
    assert 'data-testid="onboarding-celebration"' in seen.text
    assert "7 successful requests" in seen.text
    assert f'href="/orgs/{fake.org_id}/logs"' in seen.text  # a live key: the live log
    assert "hx-get" not in seen.text  # the swapped-in element polls no more
    asked = [c for c in fake.calls if c[2] == "/v1/usage/top"]
    assert asked


async def test_the_fragment_refuses_another_tenants_org() -> None:
    fake = onboarding_fake()
    fake.top_values["status"] = ["200"]
    async with console(fake) as client:
        await sign_in(client)
        other = await client.get(
            "/portal/onboarding/first-call",
            params={"org_id": str(uuid.uuid4()), "since": "2026-11-29T00:00:00Z"},
        )
        key = await client.post(
            "/portal/onboarding/key",
            data={"org_id": str(uuid.uuid4()), "csrf_token": csrf(client)},
        )

    assert other.status_code == 404
    assert "successful" not in other.text
    assert key.status_code == 404
    assert fake.key_bodies == []


async def test_no_checklist_once_the_org_has_a_key_nor_for_viewers() -> None:
    fake = onboarding_fake()
    key_id = str(uuid.uuid4())
    fake.keys[key_id] = key_body(key_id, fake.org_id, "existing")
    async with console(fake) as client:
        await sign_in(client)
        has_key = await client.get("/portal")
    viewer = onboarding_fake(role="viewer")
    async with console(viewer) as client:
        await sign_in(client)
        as_viewer = await client.get("/portal")
    async with console(onboarding_fake()) as client:
        anonymous = await client.get("/portal")

    for page in (has_key, as_viewer, anonymous):
        assert page.status_code == 200
        assert 'data-testid="portal-onboarding"' not in page.text


async def test_onboarding_speaks_chinese() -> None:
    fake = onboarding_fake(email_verified=False)
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get("/portal", headers={"accept-language": "zh-CN"})
        created = await client.post(
            "/portal/onboarding/key",
            data={"org_id": fake.org_id, "csrf_token": csrf(client)},
            headers={"accept-language": "zh-CN"},
        )
        fake.top_values["status:test"] = ["200"]
        seen = await client.get(_poll_url(created.text), headers={"accept-language": "zh-CN"})

    assert "验证" in page.text
    assert "第一个" in created.text
    assert "你的第一次调用成功了" in seen.text
    # an unverified user's first key is a test key: the link opens the log in test mode
    assert f'href="/orgs/{fake.org_id}/logs?mode=test"' in seen.text
    assert "Your first call went through" not in seen.text


async def test_the_curl_line_avoids_operations_the_new_key_cannot_call() -> None:
    # The onboarding key has no scopes: a GET that needs one (or is deprecated) would
    # answer 403 or go away, so the line names a plain one even if it comes later.
    fake = onboarding_fake()
    fake.catalog_documents = {
        "petstore": {
            **CONSUMER_DOC,
            "paths": {
                "/forecast": {"get": {"x-tollgate-scopes": ["forecast:read"], "responses": {}}},
                "/old": {"get": {"deprecated": True, "responses": {}}},
                "/pets/{petId}": {"get": {"responses": {}}},
            },
        }
    }
    async with console(fake) as client:
        await sign_in(client)
        created = await client.post(
            "/portal/onboarding/key", data={"org_id": fake.org_id, "csrf_token": csrf(client)}
        )
    assert '"https://gateway.example.com/petstore/pets/{petId}"' in created.text.replace(
        "&#34;", '"'
    )


async def test_the_curl_line_skips_an_api_whose_gets_all_need_a_scope() -> None:
    fake = onboarding_fake()
    forecast = str(uuid.uuid4())
    fake.catalog = [
        catalog_body(forecast, "forecast", "Forecast"),
        catalog_body(PET_ID, "petstore", "Petstore"),
    ]
    fake.catalog_documents = {
        "forecast": {
            **CONSUMER_DOC,
            "paths": {"/daily": {"get": {"x-tollgate-scopes": ["forecast:read"]}}},
        },
        "petstore": CONSUMER_DOC,
    }
    async with console(fake) as client:
        await sign_in(client)
        created = await client.post(
            "/portal/onboarding/key", data={"org_id": fake.org_id, "csrf_token": csrf(client)}
        )
    assert '"https://gateway.example.com/petstore/pets"' in created.text.replace("&#34;", '"')


async def test_the_first_key_is_shown_when_accounts_fails_right_after() -> None:
    fake = onboarding_fake()
    async with console(fake) as client:
        await sign_in(client)
        fake.down_after_write = {"accounts"}
        created = await client.post(
            "/portal/onboarding/key", data={"org_id": fake.org_id, "csrf_token": csrf(client)}
        )
    assert created.status_code == 200  # the catalog read after the write: 503, key lost
    assert "tg_live_RAWSECRET" in created.text
    assert ("accounts", "POST", f"/v1/orgs/{fake.org_id}/keys") in fake.calls
