"""Notification contacts in process: members read them, owners replace the list (add,
change the language, remove a row), notifier's refusals next to the row, another org's
id refused."""

from __future__ import annotations

from .fakes import FakeBackends, console, csrf, sign_in

XSS = "<script>alert(1)</script>@example.com"
OTHER_ORG = "00000000-0000-4000-8000-000000000001"


async def test_an_owner_adds_changes_and_removes_contacts() -> None:
    fake = FakeBackends(role="owner")
    fake.contacts = [{"email": XSS, "locale": "en"}]
    async with console(fake) as client:
        await sign_in(client)
        url = f"/orgs/{fake.org_id}/contacts"
        page = await client.get(url)
        assert page.status_code == 200
        assert XSS not in page.text
        assert "&lt;script&gt;" in page.text
        saved = await client.post(
            url,
            data={
                "csrf_token": csrf(client),
                "email_0": "ops@example.com",
                "locale_0": "zh-CN",
                "email_1": "cfo@example.com",
                "locale_1": "en",
            },
        )
        assert saved.status_code == 303
        assert fake.contacts == [
            {"email": "ops@example.com", "locale": "zh-CN"},
            {"email": "cfo@example.com", "locale": "en"},
        ]
        removed = await client.post(
            url,
            data={
                "csrf_token": csrf(client),
                "email_0": "ops@example.com",
                "locale_0": "zh-CN",
                "email_1": "cfo@example.com",
                "locale_1": "en",
                "remove": "0",
            },
        )
        assert removed.status_code == 303
        assert fake.contacts == [{"email": "cfo@example.com", "locale": "en"}]
        typo = await client.post(url, data={"csrf_token": csrf(client), "email_0": "nobody"})
        assert typo.status_code == 400
        assert 'data-testid="field-error-email_0"' in typo.text
        refused = await client.post(
            url,
            data={"csrf_token": csrf(client), "email_0": "a@example.com", "email_1": "b@x.test"},
        )
        assert refused.status_code == 422
        assert 'data-testid="field-error-email_1">not deliverable' in refused.text
        assert 'value="b@x.test"' in refused.text  # the typed rows come back
        assert fake.contacts == [{"email": "cfo@example.com", "locale": "en"}]
        no_csrf = await client.post(url, data={"email_0": "x@example.com"})
        assert no_csrf.status_code == 403
        zh = await client.get(url, headers={"accept-language": "zh"})
        assert "通知联系人" in zh.text


async def test_viewers_only_read_and_another_orgs_contacts_are_refused() -> None:
    fake = FakeBackends(role="viewer")
    fake.contacts = [{"email": "ops@example.com", "locale": "zh-CN"}]
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/contacts")
        assert "ops@example.com" in page.text
        assert 'data-testid="contacts-form"' not in page.text
        forged = await client.post(
            f"/orgs/{fake.org_id}/contacts",
            data={"csrf_token": csrf(client), "email_0": "me@example.com"},
        )
        assert forged.status_code == 403
        assert 'data-testid="problem"' in forged.text
        assert fake.contacts == [{"email": "ops@example.com", "locale": "zh-CN"}]
        assert (await client.get(f"/orgs/{OTHER_ORG}/contacts")).status_code == 404
        other = await client.post(
            f"/orgs/{OTHER_ORG}/contacts",
            data={"csrf_token": csrf(client), "email_0": "me@example.com"},
        )
        assert other.status_code == 404
        assert not any(OTHER_ORG in path for _, _, path in fake.calls)
