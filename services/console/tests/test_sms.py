"""The SMS pages in process: the org's message log with each message's status
timeline, and the operator's price table."""

from __future__ import annotations

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
