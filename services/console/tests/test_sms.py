"""The SMS pages in process: the org's message log with each message's status
timeline, the operator's price table and the operator's provider edit form."""

from __future__ import annotations

from typing import Any

from .fakes import FakeBackends, console, csrf, sign_in, sms_body

XSS = "<script>alert(1)</script>"


async def test_members_read_the_log_and_a_messages_status_timeline_escaped() -> None:
    fake = FakeBackends(role="viewer")
    delivered, failed = sms_body("+41791234567", XSS), sms_body("+4420", "hi", "failed")
    fake.sms = {delivered["id"]: delivered, failed["id"]: failed}
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/sms")
        assert page.status_code == 200
        assert "+41791234567" in page.text
        assert XSS not in page.text
        assert "&lt;script&gt;" in page.text
        only_failed = await client.get(f"/orgs/{fake.org_id}/sms?status=failed")
        assert fake.sms_params[-1]["status"] == "failed"
        assert "+41791234567" not in only_failed.text
        one = await client.get(f"/orgs/{fake.org_id}/sms/{delivered['id']}")
        assert one.status_code == 200
        timeline = one.text.split('data-testid="sms-timeline"', 1)[1]
        assert timeline.index("Queued") < timeline.index("Sent") < timeline.index("Delivered")
        assert XSS not in one.text
        zh = await client.get(
            f"/orgs/{fake.org_id}/sms/{delivered['id']}", headers={"accept-language": "zh"}
        )
        assert "状态时间线" in zh.text


async def test_another_orgs_message_and_org_are_404_and_notifier_down_is_said() -> None:
    fake = FakeBackends(role="owner")
    other = "00000000-0000-4000-8000-000000000001"
    async with console(fake) as client:
        await sign_in(client)
        assert (await client.get(f"/orgs/{fake.org_id}/sms/{other}")).status_code == 404
        assert (await client.get(f"/orgs/{other}/sms")).status_code == 404
        fake.down = {"notifier"}
        page = await client.get(f"/orgs/{fake.org_id}/sms")
        assert page.status_code == 200
        assert "Notifier is unavailable right now" in page.text
        assert 'aria-current="page">SMS<' in page.text  # the navigation still renders


async def test_operators_set_and_remove_prices_and_others_get_404() -> None:
    fake = FakeBackends(admin=True)
    async with console(fake) as client:
        await sign_in(client)
        url = "/admin/sms/prices"
        bad = await client.post(
            url, data={"csrf_token": csrf(client), "prefix": "41", "price_per_segment": "x"}
        )
        assert bad.status_code == 400
        assert 'data-testid="field-error-prefix"' in bad.text
        assert 'data-testid="field-error-price_per_segment"' in bad.text
        saved = await client.post(
            url, data={"csrf_token": csrf(client), "prefix": "+41", "price_per_segment": "7"}
        )
        assert saved.status_code == 303
        assert fake.sms_prices == {"+41": 7}
        refused = await client.post(
            url, data={"csrf_token": csrf(client), "prefix": "+1", "price_per_segment": "9" * 13}
        )
        assert refused.status_code == 422
        assert 'data-testid="field-error-price_per_segment">at most 10**12' in refused.text
        assert fake.sms_prices == {"+41": 7}
        table = await client.get(url)
        assert "<code>+41</code>" in table.text
        removed = await client.post(
            url, data={"csrf_token": csrf(client), "prefix": "+41", "delete": "1"}
        )
        assert removed.status_code == 303
        assert fake.sms_prices == {}
        fake.down = {"notifier"}
        down = await client.get(url)
        assert down.status_code == 200
        assert 'data-testid="panel-down"' in down.text
        fake.down = set()
        fake.admin = False
        assert (await client.get(url)).status_code == 404
        forged = await client.post(
            url, data={"csrf_token": csrf(client), "prefix": "+1", "price_per_segment": "1"}
        )
        assert forged.status_code == 404
        assert fake.sms_prices == {}


def _provider(provider_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": provider_id,
        "name": "twilio-main",
        "kind": "twilio",
        "config": {"account_sid": "AC123", "base_url": "https://api.twilio.com"},
        "rate_per_second": 10,
        "priority": 100,
        "enabled": True,
        "balance_low": False,
        "created_at": "2026-11-29T10:00:00Z",
        "credentials_set": True,
        **changes,
    }


async def test_operators_edit_a_provider_and_its_credentials_are_never_shown() -> None:
    fake = FakeBackends(admin=True)
    provider_id = "00000000-0000-4000-8000-0000000000a1"
    fake.sms_providers = [_provider(provider_id, name=XSS)]
    secret = "auth-token-typed-by-the-operator"
    async with console(fake) as client:
        await sign_in(client)
        listed = await client.get("/admin/sms/providers")
        assert listed.status_code == 200
        assert listed.text.count('data-testid="sms-provider"') == 1
        assert XSS not in listed.text
        assert "&lt;script&gt;" in listed.text
        url = f"/admin/sms/providers/{provider_id}"
        page = await client.get(url)
        assert page.status_code == 200
        assert 'data-testid="secret-auth_token"' in page.text
        assert "AC123" in page.text
        form = {
            "csrf_token": csrf(client),
            "name": "twilio-eu",
            "rate_per_second": "25",
            "priority": "5",
            "enabled": "1",
            "config": '{"account_sid": "AC999"}',
            "auth_token": "",
        }
        kept = await client.post(url, data=form)
        assert kept.status_code == 303
        assert kept.headers["location"] == "/admin/sms/providers?done=saved"
        assert fake.provider_patches[-1] == {
            "name": "twilio-eu",
            "enabled": True,
            "config": {"account_sid": "AC999"},
            "rate_per_second": 25,
            "priority": 5,
        }  # an empty secret field keeps the stored one: no credentials sent
        replaced = await client.post(url, data={**form, "auth_token": secret})
        assert replaced.status_code == 303
        assert fake.provider_patches[-1]["credentials"] == {"auth_token": secret}
        bad = await client.post(
            url, data={**form, "config": "[1]", "rate_per_second": "x", "auth_token": secret}
        )
        assert bad.status_code == 400
        assert 'data-testid="field-error-config"' in bad.text
        assert 'data-testid="field-error-rate_per_second"' in bad.text
        assert secret not in bad.text  # never echoed back
        refused = await client.post(
            url, data={**form, "config": '{"account_sid": ""}', "auth_token": secret}
        )
        assert refused.status_code == 422
        assert "needs config.account_sid" in refused.text
        assert secret not in refused.text
        taken = await client.post(url, data={**form, "name": "taken"})
        assert taken.status_code == 409
        assert 'data-testid="field-error-name"' in taken.text
        disabled = await client.post(url, data={k: v for k, v in form.items() if k != "enabled"})
        assert disabled.status_code == 303
        assert fake.provider_patches[-1]["enabled"] is False
        unknown = "00000000-0000-4000-8000-0000000000ff"
        assert (await client.get(f"/admin/sms/providers/{unknown}")).status_code == 404
        assert (await client.post(f"/admin/sms/providers/{unknown}", data=form)).status_code == 404
        zh = await client.get(url, headers={"accept-language": "zh"})
        assert "凭据" in zh.text


async def test_provider_pages_are_404_for_everyone_but_operators() -> None:
    fake = FakeBackends(role="owner")
    provider_id = "00000000-0000-4000-8000-0000000000a1"
    fake.sms_providers = [_provider(provider_id)]
    async with console(fake) as client:
        await sign_in(client)
        for path in ("/admin/sms/providers", f"/admin/sms/providers/{provider_id}"):
            assert (await client.get(path)).status_code == 404
        forged = await client.post(
            f"/admin/sms/providers/{provider_id}",
            data={
                "csrf_token": csrf(client),
                "name": "x",
                "rate_per_second": "1",
                "priority": "1",
                "config": "{}",
            },
        )
        assert forged.status_code == 404
        assert fake.provider_patches == []
