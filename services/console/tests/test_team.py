"""The team and audit pages in process: members' roles, invitations, removal, the
audit log's filters, roles and escaping."""

from __future__ import annotations

from .fakes import FakeBackends, console, csrf, member_body, sign_in

XSS = "<script>alert(1)</script>"


def with_member(fake: FakeBackends, name: str = XSS, role: str = "developer") -> str:
    member = member_body(name, role)
    fake.members[member["user_id"]] = member
    return str(member["user_id"])


async def test_owners_change_roles_invite_and_remove() -> None:
    fake = FakeBackends(role="owner")
    user = with_member(fake)
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/team")
        assert page.status_code == 200
        assert XSS not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        token = {"csrf_token": csrf(client)}
        base = f"/orgs/{fake.org_id}/team"
        changed = await client.post(f"{base}/{user}/role", data={**token, "role": "viewer"})
        assert changed.status_code == 303
        assert fake.members[user]["role"] == "viewer"
        bad = await client.post(f"{base}/{user}/role", data={**token, "role": "emperor"})
        assert bad.status_code == 422
        assert "not a role" in bad.text
        invalid = await client.post(f"{base}/invite", data={**token, "email": "nobody"})
        assert invalid.status_code == 422
        assert 'data-testid="field-error-email"' in invalid.text
        assert 'value="nobody"' in invalid.text  # the form keeps what was typed
        invited = await client.post(
            f"{base}/invite", data={**token, "email": "new@example.com", "role": "developer"}
        )
        assert invited.status_code == 303
        (invitation,) = fake.invitations
        listed = await client.get(f"{base}")
        assert "new@example.com" in listed.text
        revoked = await client.post(f"{base}/invitations/{invitation}/revoke", data=token)
        assert revoked.status_code == 303
        assert "No pending invitations." in (await client.get(base)).text
        removed = await client.post(f"{base}/{user}/remove", data=token)
        assert removed.status_code == 303
        assert user not in fake.members
        no_csrf = await client.post(f"{base}/invite", data={"email": "x@example.com"})
        assert no_csrf.status_code == 403


async def test_viewers_see_no_team_controls_and_forged_changes_are_refused() -> None:
    fake = FakeBackends(role="viewer")
    user = with_member(fake, "Someone")
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/team")
        assert "/team/invite" not in page.text
        assert 'data-testid="remove-member"' not in page.text
        forged = await client.post(
            f"/orgs/{fake.org_id}/team/{user}/remove", data={"csrf_token": csrf(client)}
        )
        assert forged.status_code == 403
        assert "Requires the owner role." in forged.text
        assert user in fake.members


async def test_audit_log_filters_reach_accounts_and_values_are_escaped() -> None:
    fake = FakeBackends(role="owner")
    user = with_member(fake, "Ops")
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(
            f"/orgs/{fake.org_id}/audit",
            params={
                "action": "key.created",
                "actor_id": user,
                "since": "2026-11-01",
                "until": "2026-11-29",
            },
        )
        assert page.status_code == 200
        sent = fake.audit_params[-1]
        assert sent["action"] == "key.created"
        assert sent["actor_id"] == user
        assert sent["since"] == "2026-11-01T00:00:00+00:00"
        assert sent["until"] == "2026-11-30T00:00:00+00:00"  # the chosen day included
        assert XSS not in page.text
        # The target's kind in words, in the visitor's language.
        assert "API key <code>k1</code>" in page.text
        client.cookies.set("tg_lang", "zh-Hans")
        chinese = await client.get(f"/orgs/{fake.org_id}/audit")
        client.cookies.delete("tg_lang")
        assert "API 密钥 <code>k1</code>" in chinese.text
        fake.role = "developer"
        refused = await client.get(f"/orgs/{fake.org_id}/audit")
        assert refused.status_code == 200
        assert "You are not allowed to do this." in refused.text


async def test_audit_until_the_last_date_there_is_has_no_end() -> None:
    fake = FakeBackends(role="owner")
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/audit", params={"until": "9999-12-31"})
    assert page.status_code == 200  # the day after it overflowed: 500
    assert "until" not in fake.audit_params[-1]
    assert 'value="9999-12-31"' in page.text
