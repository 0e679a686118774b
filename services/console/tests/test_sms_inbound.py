"""Inbound SMS in process: the inbox (unread filter, mark read), a conversation with
one number and the org's replies, and the org's numbers and keyword rules (platform
admins write, edit and reorder them; members read them and are told an operator sets
them up); another org's ids refused."""

from __future__ import annotations

from typing import Any

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


async def test_members_read_their_orgs_numbers_and_rules_and_cannot_write() -> None:
    fake = FakeBackends(role="viewer")
    fake.sms_numbers = [
        {"number": "+14155550100", "org_id": fake.org_id, "created_at": "2026-11-29T10:00:00Z"},
        {"number": "+14155550199", "org_id": OTHER_ORG, "created_at": "2026-11-29T10:00:00Z"},
    ]
    fake.keyword_rules = [
        _rule("00000000-0000-4000-8000-00000000000a", fake.org_id, XSS, 7),
        _rule("00000000-0000-4000-8000-00000000000b", OTHER_ORG, "FOREIGN", 1),
    ]
    async with console(fake) as client:
        await sign_in(client)
        numbers = await client.get(f"/orgs/{fake.org_id}/sms/numbers")
        assert numbers.text.count('data-testid="sms-number"') == 1
        assert "+14155550100" in numbers.text
        assert "+14155550199" not in numbers.text
        rules = await client.get(f"/orgs/{fake.org_id}/sms/rules")
        assert rules.text.count('data-testid="sms-rule"') == 1
        assert "&lt;script&gt;" in rules.text
        assert XSS not in rules.text
        assert "FOREIGN" not in rules.text
        for page in (numbers, rules):
            assert 'data-testid="operator-managed"' in page.text
            for control in ("assign-number", "release", "add-rule", "edit-rule", "move-up"):
                assert f'data-testid="{control}"' not in page.text
        zh = await client.get(f"/orgs/{fake.org_id}/sms/rules", headers={"accept-language": "zh"})
        assert "平台运营方" in zh.text
        forged = await client.post(
            f"/orgs/{fake.org_id}/sms/numbers",
            data={"csrf_token": csrf(client), "number": "+14155550100"},
        )
        assert forged.status_code == 404
        rule_id = fake.keyword_rules[0]["id"]
        for path, form in (
            (f"{rule_id}", {"kind": "first_word", "pattern": "X", "priority": "1"}),
            (f"{rule_id}/move", {"direction": "up"}),
        ):
            refused = await client.post(
                f"/orgs/{fake.org_id}/sms/rules/{path}", data={"csrf_token": csrf(client), **form}
            )
            assert refused.status_code == 404
        assert (await client.get(f"/orgs/{fake.org_id}/sms/rules/{rule_id}")).status_code == 404
        assert not any("/admin/sms" in path for _, _, path in fake.calls)
        # Another org's routing is not shown to this org's members.
        assert (await client.get(f"/orgs/{OTHER_ORG}/sms/rules")).status_code == 404


def _rule(rule_id: str, org_id: str, pattern: str, priority: int) -> dict[str, Any]:
    return {
        "id": rule_id,
        "org_id": org_id,
        "kind": "first_word",
        "pattern": pattern,
        "priority": priority,
        "created_at": "2026-11-29T10:00:00Z",
    }


async def test_admins_edit_and_reorder_this_orgs_rules_only() -> None:
    fake = FakeBackends(role="owner", admin=True)
    first = _rule("00000000-0000-4000-8000-00000000000a", fake.org_id, "FIRST", 10)
    second = _rule("00000000-0000-4000-8000-00000000000b", fake.org_id, "SECOND", 20)
    third = _rule("00000000-0000-4000-8000-00000000000c", fake.org_id, "THIRD", 20)
    foreign = _rule("00000000-0000-4000-8000-00000000000d", OTHER_ORG, "FOREIGN", 15)
    fake.keyword_rules = [first, second, third, foreign]
    async with console(fake) as client:
        await sign_in(client)
        rules = f"/orgs/{fake.org_id}/sms/rules"

        def order() -> list[str]:
            mine = [r for r in fake.keyword_rules if r["org_id"] == fake.org_id]
            return [r["pattern"] for r in sorted(mine, key=lambda r: r["priority"])]

        form = await client.get(f"{rules}/{second['id']}")
        assert form.status_code == 200
        assert 'value="SECOND"' in form.text
        bad = await client.post(
            f"{rules}/{second['id']}",
            data={"csrf_token": csrf(client), "kind": "first_word", "pattern": "", "priority": "x"},
        )
        assert bad.status_code == 400
        assert 'data-testid="field-error-priority"' in bad.text
        refused = await client.post(
            f"{rules}/{second['id']}",
            data={"csrf_token": csrf(client), "kind": "regex", "pattern": "(?=x)", "priority": "5"},
        )
        assert refused.status_code == 422
        assert "Invalid regex" in refused.text
        saved = await client.post(
            f"{rules}/{second['id']}",
            data={
                "csrf_token": csrf(client),
                "kind": "regex",
                "pattern": "^second",
                "priority": "5",
            },
        )
        assert saved.status_code == 303
        assert (second["kind"], second["pattern"], second["priority"]) == ("regex", "^second", 5)
        assert order() == ["^second", "FIRST", "THIRD"]

        async def move(rule: dict[str, Any], direction: str) -> None:
            moved = await client.post(
                f"{rules}/{rule['id']}/move",
                data={"csrf_token": csrf(client), "direction": direction},
            )
            assert moved.status_code == 303
            assert moved.headers["location"] == f"{rules}?done=moved"

        await move(third, "up")  # priorities differ: they swap
        assert order() == ["^second", "THIRD", "FIRST"]
        assert (third["priority"], first["priority"]) == (10, 20)
        # A tie with THIRD, FIRST created later (the fake lists in creation order).
        first["priority"] = 10
        fake.keyword_rules.remove(first)
        fake.keyword_rules.append(first)
        assert order() == ["^second", "THIRD", "FIRST"]
        await move(first, "up")
        assert order() == ["^second", "FIRST", "THIRD"]
        await move(second, "up")  # already first: nothing changes
        assert order() == ["^second", "FIRST", "THIRD"]
        assert foreign["priority"] == 15

        for path, data in (
            (f"{foreign['id']}", {"kind": "first_word", "pattern": "MINE", "priority": "1"}),
            (f"{foreign['id']}/move", {"direction": "up"}),
            (f"{foreign['id']}/delete", {}),
        ):
            stolen = await client.post(f"{rules}/{path}", data={"csrf_token": csrf(client), **data})
            assert stolen.status_code == 404, path
        assert (await client.get(f"{rules}/{foreign['id']}")).status_code == 404
        assert (await client.get(f"/orgs/{OTHER_ORG}/sms/rules/{first['id']}")).status_code == 404
        assert foreign["pattern"] == "FOREIGN"
        listed = await client.get(rules)
        assert listed.text.count('data-testid="move-up"') == 2
        assert listed.text.count('data-testid="move-down"') == 2
        zh = await client.get(f"{rules}/{first['id']}", headers={"accept-language": "zh"})
        assert "编辑关键词规则" in zh.text
