"""Inbound SMS in process: the inbox (unread filter, mark read), a conversation with
one number and the org's replies, and the org's numbers and keyword rules (platform
admins write them; members are told an operator does); another org's ids refused."""

from __future__ import annotations

from .fakes import FakeBackends, console, csrf, inbound_body, sign_in, sms_body

XSS = "<script>alert(1)</script>"
OTHER_ORG = "00000000-0000-4000-8000-000000000001"


async def test_members_read_the_inbox_and_a_conversation_escaped() -> None:
    fake = FakeBackends(role="viewer")
    first, other = inbound_body("+41791234567", XSS), inbound_body("+4420", "hi", read=True)
    fake.inbox = [first, other]
    reply = sms_body("+41791234567", "Thanks, noted")
    fake.sms = {reply["id"]: reply, "x": sms_body("+4420", "unrelated")}
    async with console(fake) as client:
        await sign_in(client)
        url = f"/orgs/{fake.org_id}/sms/inbox"
        page = await client.get(url)
        assert page.status_code == 200
        assert XSS not in page.text
        assert "&lt;script&gt;" in page.text
        unread = await client.get(url + "?unread=true")
        assert "+4420" not in unread.text
        marked = await client.post(
            f"{url}/{first['id']}/read",
            data={"csrf_token": csrf(client), "read": "1", "back": "https://evil.example/"},
        )
        assert marked.status_code == 303
        assert marked.headers["location"] == url
        assert first["read"] is True
        talk = await client.get(f"/orgs/{fake.org_id}/sms/conversation?number=%2B41791234567")
        assert talk.status_code == 200
        assert talk.text.count('data-testid="message-in"') == 1
        assert "Thanks, noted" in talk.text
        assert "unrelated" not in talk.text
        assert XSS not in talk.text
        zh = await client.get(url, headers={"accept-language": "zh"})
        assert "收件箱" in zh.text


async def test_another_orgs_inbox_and_messages_are_refused() -> None:
    fake = FakeBackends(role="owner", admin=True)
    async with console(fake) as client:
        await sign_in(client)
        for page in ("inbox", "numbers", "rules", "conversation?number=%2B41"):
            assert (await client.get(f"/orgs/{OTHER_ORG}/sms/{page}")).status_code == 404
        unknown = await client.post(
            f"/orgs/{fake.org_id}/sms/inbox/{OTHER_ORG}/read",
            data={"csrf_token": csrf(client), "read": "1"},
        )
        assert unknown.status_code == 404
        assign = await client.post(
            f"/orgs/{OTHER_ORG}/sms/numbers",
            data={"csrf_token": csrf(client), "number": "+14155550100"},
        )
        assert assign.status_code == 404
        assert fake.sms_numbers == []


async def test_admins_assign_numbers_and_rules_of_this_org_only() -> None:
    fake = FakeBackends(role="owner", admin=True)
    elsewhere = {
        "number": "+14155550199",
        "org_id": OTHER_ORG,
        "created_at": "2026-11-29T10:00:00Z",
    }
    foreign_rule = {
        "id": "00000000-0000-4000-8000-000000000003",
        "org_id": OTHER_ORG,
        "kind": "first_word",
        "pattern": "FOREIGN",
        "priority": 1,
        "created_at": "2026-11-29T10:00:00Z",
    }
    fake.sms_numbers, fake.keyword_rules = [elsewhere], [foreign_rule]
    async with console(fake) as client:
        await sign_in(client)
        numbers = f"/orgs/{fake.org_id}/sms/numbers"
        bad = await client.post(numbers, data={"csrf_token": csrf(client), "number": "12"})
        assert bad.status_code == 400
        assert 'data-testid="field-error-number"' in bad.text
        ok = await client.post(
            numbers, data={"csrf_token": csrf(client), "number": "+1415 5550100"}
        )
        assert ok.status_code == 303
        page = await client.get(numbers)
        assert "+14155550100" in page.text
        assert "+14155550199" not in page.text
        steal = await client.post(
            f"{numbers}/release", data={"csrf_token": csrf(client), "number": "+14155550199"}
        )
        assert steal.status_code == 404
        released = await client.post(
            f"{numbers}/release", data={"csrf_token": csrf(client), "number": "+14155550100"}
        )
        assert released.status_code == 303
        assert fake.sms_numbers == [elsewhere]
        rules = f"/orgs/{fake.org_id}/sms/rules"
        form = {"csrf_token": csrf(client), "kind": "regex", "priority": "5"}
        refused = await client.post(rules, data={**form, "pattern": "(?=x)"})
        assert refused.status_code == 422
        assert 'data-testid="field-error-pattern">Invalid regex' in refused.text
        added = await client.post(rules, data={**form, "pattern": XSS})
        assert added.status_code == 303
        listed = await client.get(rules)
        assert "FOREIGN" not in listed.text
        assert XSS not in listed.text
        mine = next(r for r in fake.keyword_rules if r["org_id"] == fake.org_id)
        foreign = await client.post(
            f"{rules}/{foreign_rule['id']}/delete", data={"csrf_token": csrf(client)}
        )
        assert foreign.status_code == 404
        deleted = await client.post(
            f"{rules}/{mine['id']}/delete", data={"csrf_token": csrf(client)}
        )
        assert deleted.status_code == 303
        assert fake.keyword_rules == [foreign_rule]


async def test_members_are_told_an_operator_routes_messages_and_cannot_write() -> None:
    fake = FakeBackends(role="owner")
    async with console(fake) as client:
        await sign_in(client)
        for page in ("numbers", "rules"):
            shown = await client.get(f"/orgs/{fake.org_id}/sms/{page}")
            assert 'data-testid="operator-managed"' in shown.text
        forged = await client.post(
            f"/orgs/{fake.org_id}/sms/numbers",
            data={"csrf_token": csrf(client), "number": "+14155550100"},
        )
        assert forged.status_code == 404
        assert not any("/admin/sms" in path for _, _, path in fake.calls)
