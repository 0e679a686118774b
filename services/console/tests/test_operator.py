"""The operator area in process against faked backing services: only platform admins see
it (everyone else gets the 404 page), the registry with routes and prices, users
deactivated and reactivated through accounts, the email log with retry, every value
escaped and Chinese pages translated."""

from __future__ import annotations

import uuid

import pytest

from .fakes import FakeBackends, api_body, console, csrf, email_body, route_body, sign_in, user_body

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def operator_fake() -> FakeBackends:
    fake = FakeBackends(admin=True)
    api = api_body(
        str(uuid.uuid4()),
        "weather",
        XSS,
        routes=[route_body("GET", "/forecast", price=5), route_body("POST", "/alerts")],
        sunset_at="2027-01-31T00:00:00Z",
        status="deprecated",
    )
    fake.apis = [api]
    for user in (user_body("dev@example.com", admin=True), user_body(f"{XSS}@example.com")):
        fake.users[user["id"]] = user
    fake.emails = [
        email_body("a@example.com", "sent"),
        email_body("b@example.com", "failed", error=XSS),
    ]
    return fake


@pytest.mark.parametrize(
    "path", ["/admin", "/admin/apis", "/admin/orgs", "/admin/users", "/admin/emails"]
)
async def test_a_non_admin_gets_the_not_found_page(path: str) -> None:
    fake = operator_fake()
    fake.admin = False
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(path)
        assert page.status_code == 404
        assert "Page not found" in page.text
        assert "operator-link" not in page.text
        victim = next(u for u in fake.users.values() if u["email"].startswith("<"))
        forged = await client.post(
            f"/admin/users/{victim['id']}/deactivate", data={"csrf_token": csrf(client)}
        )
        assert forged.status_code == 404
        assert victim["is_active"] is True
    assert ("accounts", "GET", "/v1/users") not in fake.calls  # refused before any call


async def test_signed_out_visitors_are_sent_to_sign_in() -> None:
    async with console(operator_fake()) as client:
        answer = await client.get("/admin/users")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/signin?next=")


async def test_the_registry_lists_apis_with_status_prices_and_routes_escaped() -> None:
    fake = operator_fake()
    api = fake.apis[0]
    async with console(fake) as client:
        await sign_in(client)
        home = await client.get(f"/orgs/{fake.org_id}")
        assert 'data-testid="operator-link"' in home.text
        listing = await client.get("/admin/apis")
        assert listing.status_code == 200
        assert XSS not in listing.text
        assert ESCAPED in listing.text
        assert "deprecated" in listing.text
        assert f'href="/admin/apis/{api["id"]}"' in listing.text
        detail = await client.get(f"/admin/apis/{api['id']}")
        assert detail.status_code == 200
        assert XSS not in detail.text
        assert "/forecast" in detail.text
        assert "/alerts" in detail.text
        assert "set (write-only)" in detail.text
        missing = await client.get(f"/admin/apis/{uuid.uuid4()}")
        assert missing.status_code == 404


async def test_an_admin_deactivates_and_reactivates_a_user() -> None:
    fake = operator_fake()
    user = next(u for u in fake.users.values() if u["email"].startswith("<"))
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get("/admin/users")
        assert page.status_code == 200
        assert XSS not in page.text
        assert ESCAPED in page.text
        refused = await client.post(f"/admin/users/{user['id']}/deactivate")
        assert refused.status_code == 403  # no CSRF token
        assert user["is_active"] is True
        done = await client.post(
            f"/admin/users/{user['id']}/deactivate",
            data={"csrf_token": csrf(client), "back": "/admin/users?active=true"},
        )
        assert done.status_code == 303
        assert done.headers["location"] == "/admin/users?active=true&done=deactivate"
        assert user["is_active"] is False
        shown = await client.get("/admin/users?active=false&done=deactivate")
        assert 'data-testid="reactivate-user"' in shown.text
        assert "signed out everywhere" in shown.text
        await client.post(
            f"/admin/users/{user['id']}/reactivate", data={"csrf_token": csrf(client)}
        )
        assert user["is_active"] is True
        elsewhere = await client.post(
            f"/admin/users/{user['id']}/deactivate",
            data={"csrf_token": csrf(client), "back": "https://evil.example.com/"},
        )
        assert elsewhere.headers["location"] == "/admin/users?done=deactivate"


async def test_a_refused_deactivation_is_shown_inline() -> None:
    fake = operator_fake()
    me = next(u for u in fake.users.values() if u["email"] == "dev@example.com")
    async with console(fake) as client:
        await sign_in(client)
        page = await client.post(
            f"/admin/users/{me['id']}/deactivate", data={"csrf_token": csrf(client)}
        )
    assert page.status_code == 409
    assert "You cannot deactivate yourself." in page.text
    assert me["is_active"] is True


async def test_the_email_log_filters_by_state_and_retries_a_failed_mail() -> None:
    fake = operator_fake()
    failed = fake.emails[1]
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get("/admin/emails?state=failed")
        assert page.status_code == 200
        assert "b@example.com" in page.text
        assert "a@example.com" not in page.text
        assert XSS not in page.text
        assert 'data-testid="retry-email"' in page.text
        retried = await client.post(
            f"/admin/emails/{failed['id']}/retry", data={"csrf_token": csrf(client)}
        )
        assert retried.status_code == 303
    assert fake.email_retries == [failed["id"]]


async def test_the_operator_area_in_chinese() -> None:
    fake = operator_fake()
    async with console(fake) as client:
        await sign_in(client)
        client.cookies.set("tg_lang", "zh-Hans")
        for path, words in (
            ("/admin/apis", ("每次调用价格", "已弃用")),
            ("/admin/users", ("用户", "停用")),
            ("/admin/emails", ("邮件日志", "重试")),
            ("/admin/orgs", ("组织",)),
        ):
            page = await client.get(path)
            assert page.status_code == 200, path
            for word in words:
                assert word in page.text, (path, word)


async def test_an_unavailable_notifier_leaves_the_email_log_page() -> None:
    fake = operator_fake()
    fake.down = {"notifier"}
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get("/admin/emails")
    assert page.status_code == 200
    assert 'data-testid="panel-down"' in page.text


async def test_an_admin_opens_an_org_beyond_the_first_page_of_orgs() -> None:
    fake = operator_fake()
    late = str(uuid.uuid4())  # not among the 200 orgs of accounts' first page
    fake.unlisted_orgs[late] = {"id": late, "name": "Org 221", "created_at": "2026-01-01T00:00:00Z"}
    async with console(fake) as client:
        await sign_in(client)
        credits = await client.get(f"/orgs/{late}/credits")
        assert credits.status_code == 200
        assert "Org 221" in credits.text
        fake.admin = False
        refused = await client.get(f"/orgs/{late}/credits")
        assert refused.status_code == 404
        assert "Org 221" not in refused.text
    assert fake.calls.count(("accounts", "GET", f"/v1/orgs/{late}")) == 1  # not for a non-admin


async def test_a_non_admin_gets_the_not_found_page_whatever_the_input() -> None:
    fake = operator_fake()
    fake.admin = False
    async with console(fake) as client:
        await sign_in(client)
        listed = await client.get("/admin/orgs", params={"status": "bogus"})
        forged = await client.post(
            "/admin/users/not-a-uuid/deactivate", data={"csrf_token": csrf(client)}
        )
    for page in (listed, forged):
        assert page.status_code == 404
        assert "Page not found" in page.text
