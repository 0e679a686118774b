"""The console in process against faked backing services: sessions, CSRF, security
headers, escaping, degraded panels, roles and languages."""

from __future__ import annotations

import uuid

import pytest

from tollgate.console.session import SessionCookies

from .fakes import NOW, PASSWORD, FakeBackends, console, csrf, key_body, sign_in

XSS = "<script>alert(1)</script>"


async def test_pages_carry_the_security_headers() -> None:
    async with console(FakeBackends()) as client:
        answer = await client.get("/signin")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"
    assert answer.headers["cache-control"] == "no-store"
    assert "<script>" not in answer.text.replace('<script src="/static/', "")


async def test_sign_in_keeps_tokens_in_a_sealed_http_only_cookie() -> None:
    async with console(FakeBackends()) as client:
        answer = await sign_in(client)
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert "tg_session=" in cookie
        assert "httponly" in cookie.lower()
        assert "samesite=lax" in cookie.lower()
        assert "access-0" not in cookie
        assert "refresh-0" not in cookie
        page = await client.get(answer.headers["location"], follow_redirects=True)
        assert page.status_code == 200
        assert "access-0" not in page.text
        assert "refresh-0" not in page.text


async def test_a_state_changing_request_without_the_csrf_token_is_refused() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        refused = await client.post(f"/orgs/{fake.org_id}/keys/new", data={"name": "x"})
        assert refused.status_code == 403
        forged = await client.post(
            f"/orgs/{fake.org_id}/keys/new", data={"name": "x", "csrf_token": "guess"}
        )
        assert forged.status_code == 403
        assert not fake.keys
        created = await client.post(
            f"/orgs/{fake.org_id}/keys/new", data={"name": "x", "csrf_token": csrf(client)}
        )
        assert created.status_code == 200
        assert "tg_live_RAWSECRET" in created.text
        assert len(fake.keys) == 1


async def test_every_backend_value_is_escaped() -> None:
    fake = FakeBackends(org_name=XSS)
    async with console(fake) as client:
        await sign_in(client)
        await client.post(
            f"/orgs/{fake.org_id}/keys/new", data={"name": XSS, "csrf_token": csrf(client)}
        )
        for path in (f"/orgs/{fake.org_id}", f"/orgs/{fake.org_id}/keys"):
            page = await client.get(path)
            assert page.status_code == 200
            assert XSS not in page.text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


async def test_a_backing_service_down_leaves_the_rest_of_the_page() -> None:
    fake = FakeBackends(down={"billing"})
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}")
        assert page.status_code == 200
        assert "Billing is unavailable right now" in page.text
        assert "1,234" in page.text  # usage still shows its requests
        fake.down = {"usage"}
        page = await client.get(f"/orgs/{fake.org_id}")
        assert page.status_code == 200
        assert "Usage is unavailable right now" in page.text
        assert "98,765" in page.text


async def test_an_expiring_access_token_is_refreshed_server_side() -> None:
    fake = FakeBackends(token_ttl=10)  # inside the refresh margin
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/keys")
        assert page.status_code == 200
        assert fake.refreshes == 1
        assert "tg_session=" in page.headers["set-cookie"]


async def test_sign_out_revokes_the_refresh_token() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        answer = await client.post("/signout", data={"csrf_token": csrf(client)})
        assert answer.status_code == 303
        assert fake.logged_out == ["refresh-0"]
        after = await client.get(f"/orgs/{fake.org_id}")
        assert after.status_code == 303
        assert after.headers["location"].startswith("/signin")


async def test_viewers_see_no_write_controls_and_a_forged_write_is_shown_refused() -> None:
    fake = FakeBackends(role="viewer")
    async with console(fake) as client:
        await sign_in(client)
        keys = await client.get(f"/orgs/{fake.org_id}/keys")
        assert "/keys/new" not in keys.text
        forged = await client.post(
            f"/orgs/{fake.org_id}/keys/new", data={"name": "mine", "csrf_token": csrf(client)}
        )
        assert forged.status_code == 403
        assert "You are not allowed to do this." in forged.text
        assert "Requires the developer role or higher." in forged.text


async def test_two_factor_sign_in_asks_for_the_code() -> None:
    fake = FakeBackends(totp=True)
    async with console(fake) as client:
        first = await sign_in(client)
        assert first.status_code == 200
        assert 'name="otp"' in first.text
        assert PASSWORD not in first.text  # carried sealed, never in clear
        pending = first.text.split('name="pending" value="', 1)[1].split('"', 1)[0]
        wrong = await client.post(
            "/signin/totp", data={"pending": pending, "otp": "000000", "csrf_token": csrf(client)}
        )
        assert wrong.status_code == 401
        right = await client.post(
            "/signin/totp", data={"pending": pending, "otp": "123456", "csrf_token": csrf(client)}
        )
        assert right.status_code == 303
        assert "tg_session=" in right.headers["set-cookie"]


async def test_language_follows_the_browser_then_the_choice() -> None:
    async with console(FakeBackends()) as client:
        chinese = await client.get("/signin", headers={"accept-language": "zh-CN,zh;q=0.9"})
        assert 'lang="zh-Hans"' in chinese.text
        assert "登录" in chinese.text
        choice = await client.get("/prefs", params={"lang": "en", "next": "/signin"})
        assert choice.headers["location"] == "/signin"
        english = await client.get("/signin", headers={"accept-language": "zh-CN"})
        assert "Sign in" in english.text
        away = await client.get("/prefs", params={"theme": "dark", "next": "//evil.example"})
        assert away.headers["location"] == "/"


async def test_a_tampered_session_cookie_is_no_session() -> None:
    store = SessionCookies("", 60, None)
    assert store.unseal_value("any", "not-a-sealed-value") is None
    assert store.unseal_value("other", store.seal_value("any", "x")) is None
    fake = FakeBackends()
    async with console(fake) as client:
        client.cookies.set("tg_session", "gAAAAAtampered")
        answer = await client.get(f"/orgs/{fake.org_id}")
        assert answer.status_code == 303


async def test_accounts_down_is_a_page_that_says_so() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        fake.down = {"accounts"}
        page = await client.get(f"/orgs/{fake.org_id}")
        assert page.status_code == 503
        assert "The accounts service did not answer." in page.text


async def test_lists_page_with_the_backing_cursor_and_keep_their_filters() -> None:
    fake = FakeBackends(keys_next_cursor="opaque-2")
    async with console(fake) as client:
        await sign_in(client)
        first = await client.get(f"/orgs/{fake.org_id}/keys", params={"q": "mob"})
        link = f"/orgs/{fake.org_id}/keys?q=mob&amp;cursor=opaque-2"
        assert link in first.text
        second = await client.get(
            f"/orgs/{fake.org_id}/keys", params={"q": "mob", "cursor": "opaque-2"}
        )
        assert second.status_code == 200
        assert fake.cursors_seen == ["opaque-2"]
        assert "First page" in second.text


async def test_key_filters_are_applied_by_accounts() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        await client.get(f"/orgs/{fake.org_id}/keys", params={"status": "revoked", "q": "Mob"})
        await client.get(f"/orgs/{fake.org_id}/keys", params={"status": "bogus", "q": "tg_live_"})
    named, by_prefix = fake.key_list_params
    assert named["status"] == "revoked"
    assert named["q"] == "mob"
    assert "status" not in by_prefix  # an unknown status is no filter
    assert "q" not in by_prefix  # a prefix is matched on the page read


async def test_key_actions_disable_enable_rotate_and_revoke() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        await client.post(
            f"/orgs/{fake.org_id}/keys/new", data={"name": "k", "csrf_token": csrf(client)}
        )
        (key_id,) = fake.keys
        base = f"/orgs/{fake.org_id}/keys/{key_id}"
        token = {"csrf_token": csrf(client)}
        assert (await client.post(f"{base}/disable", data=token)).status_code == 303
        assert fake.keys[key_id]["enabled"] is False
        page = await client.get(base)
        assert "Disabled" in page.text
        assert "/enable" in page.text
        assert (await client.post(f"{base}/enable", data=token)).status_code == 303
        assert fake.keys[key_id]["enabled"] is True
        rotated = await client.post(f"{base}/rotate", data={**token, "grace_seconds": "3600"})
        assert "tg_live_ROTATED" in rotated.text
        assert "keeps working for 1 hour." in rotated.text
        confirm = await client.get(f"{base}/revoke")
        assert "This cannot be undone." in confirm.text
        assert (await client.post(f"{base}/revoke", data=token)).status_code == 303
        assert fake.keys[key_id]["revoked"] is True
        page = await client.get(base)
        assert 'data-testid="key-actions"' not in page.text


async def test_the_theme_choice_is_remembered() -> None:
    async with console(FakeBackends()) as client:
        assert "data-theme" not in (await client.get("/signin")).text  # follows the system
        await client.get("/prefs", params={"theme": "dark", "next": "/signin"})
        assert 'data-theme="dark"' in (await client.get("/signin")).text
        await client.get("/prefs", params={"theme": "system", "next": "/signin"})
        assert "data-theme" not in (await client.get("/signin")).text


async def test_a_missing_page_keeps_the_signed_in_navigation() -> None:
    fake = FakeBackends(org_name=XSS)
    async with console(fake) as client:
        anonymous = await client.get("/no/such/page")
        assert anonymous.status_code == 404
        assert 'data-testid="org-switcher"' not in anonymous.text
        await sign_in(client)
        for path in ("/no/such/page", "/orgs/00000000-0000-4000-8000-000000000000"):
            page = await client.get(path)
            assert page.status_code == 404
            assert 'data-testid="org-switcher"' in page.text  # the header, with the org menu
            assert f'href="/orgs/{fake.org_id}"' in page.text
            assert XSS not in page.text


@pytest.mark.parametrize(
    ("method", "action"),
    [
        ("GET", ""),
        ("GET", "/revoke"),
        ("POST", "/revoke"),
        ("POST", "/rotate"),
        ("POST", "/enable"),
        ("POST", "/disable"),
    ],
)
async def test_another_orgs_key_is_not_found_under_this_org(method: str, action: str) -> None:
    fake = FakeBackends(admin=True)  # an admin may read every org's keys at accounts
    other = str(uuid.uuid4())
    key_id = str(uuid.uuid4())
    fake.keys[key_id] = key_body(key_id, other, "Key of another org")
    before = dict(fake.keys[key_id])
    async with console(fake) as client:
        await sign_in(client)
        data = {"csrf_token": csrf(client)} if method == "POST" else None
        answer = await client.request(
            method, f"/orgs/{fake.org_id}/keys/{key_id}{action}", data=data
        )
    assert answer.status_code == 404
    assert "Key of another org" not in answer.text
    assert "tg_live_ROTATED" not in answer.text
    assert fake.keys[key_id] == before
    assert [c for c in fake.calls if c[2].startswith("/v1/keys/") and c[1] != "GET"] == []


async def test_a_limit_in_digits_other_than_ascii_is_a_field_error() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        refused = await client.post(
            f"/orgs/{fake.org_id}/keys/new",
            data={"name": "k", "per_day": "²", "per_hour": "٣", "csrf_token": csrf(client)},
        )
    assert refused.status_code == 400  # str.isdigit() took both, int() then failed: 500
    assert 'data-testid="field-error-per_day"' in refused.text
    assert 'data-testid="field-error-per_hour"' in refused.text
    assert not fake.keys


async def test_a_value_the_console_cannot_read_is_a_page_in_the_visitors_language() -> None:
    fake = FakeBackends(admin=True)
    key = "00000000-0000-4000-8000-000000000001"
    async with console(fake) as client:
        await sign_in(client)
        client.cookies.set("tg_lang", "zh-Hans")
        bad_org = await client.get("/orgs/not-a-uuid")
        bad_key = await client.get(f"/orgs/{fake.org_id}/keys/123")
        bad_grace = await client.post(
            f"/orgs/{fake.org_id}/keys/{key}/rotate",
            data={"grace_seconds": "1h", "csrf_token": csrf(client)},
        )
        bad_status = await client.get("/admin/orgs", params={"status": "bogus"})
        client.cookies.delete("tg_lang")
        english = await client.get("/admin/orgs", params={"status": "bogus"})
    for page in (bad_org, bad_key):
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "页面不存在" in page.text
        assert 'data-testid="org-switcher"' in page.text  # the signed-in header
    for page in (bad_grace, bad_status):
        assert page.status_code == 400
        assert page.headers["content-type"].startswith("text/html")
        assert "无法读取此请求" in page.text
    assert "This request could not be read" in english.text
    assert not [c for c in fake.calls if c[2].endswith("/rotate")]


async def test_a_new_or_rotated_key_is_shown_when_accounts_fails_right_after() -> None:
    fake = FakeBackends()
    key_id = str(uuid.uuid4())
    fake.keys[key_id] = key_body(key_id, fake.org_id, "prod")
    async with console(fake) as client:
        await sign_in(client)
        fake.down_after_write = {"accounts"}
        rotated = await client.post(
            f"/orgs/{fake.org_id}/keys/{key_id}/rotate",
            data={"grace_seconds": "0", "csrf_token": csrf(client)},
        )
        fake.down = set()
        created = await client.post(
            f"/orgs/{fake.org_id}/keys/new", data={"name": "k", "csrf_token": csrf(client)}
        )
    assert rotated.status_code == 200  # the navigation read after the write: 503, key lost
    assert "tg_live_ROTATED" in rotated.text
    assert created.status_code == 200
    assert "tg_live_RAWSECRET" in created.text


def header(page: str) -> str:
    return page.split('<header class="topbar">', 1)[1].split("</header>", 1)[0]


async def test_the_user_menu_says_platform_admin_once() -> None:
    # Before: "Platform admin · platform admin" (the seeded admin's name, then the role).
    fake = FakeBackends(admin=True, user_name="Platform admin")
    beyond = str(uuid.uuid4())  # an org the admin reads without being a member
    fake.unlisted_orgs[beyond] = {"id": beyond, "name": "Other", "created_at": NOW}
    async with console(fake) as client:
        await sign_in(client)
        pages = [await client.get(p) for p in ("/orgs", f"/orgs/{fake.org_id}", f"/orgs/{beyond}")]
        client.cookies.set("tg_lang", "zh-Hans")
        chinese = await client.get("/orgs")
        client.cookies.delete("tg_lang")
        fake.user_name = "Ada"
        named = await client.get(f"/orgs/{fake.org_id}")
    for page in pages:
        assert page.status_code == 200
        assert header(page.text).lower().count("platform admin") == 1, header(page.text)
    assert 'data-testid="user-title">dev@example.com<' in pages[0].text
    assert "Your role: Owner · platform admin" in pages[1].text
    assert "Your role: Platform admin" in pages[2].text
    assert header(chinese.text).count("平台管理员") == 1
    assert 'data-testid="user-title">Ada<' in named.text
    assert header(named.text).lower().count("platform admin") == 1
