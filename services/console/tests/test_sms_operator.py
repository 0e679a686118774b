"""The operator's SMS area in process: one "SMS" tab; every org's outbound log (org and
status filters, each message's timeline; a message under another org's id: 404); adding
a provider of either kind (credentials sent, never echoed), its balance, a test message
and its outcome, deleting it after a confirmation page. Everybody else: 404."""

from __future__ import annotations

import uuid
from typing import Any

from .fakes import FakeBackends, console, csrf, sign_in, sms_body
from .test_sms import XSS, _provider

OTHER_ORG = "00000000-0000-4000-8000-00000000000b"
PROVIDER = "00000000-0000-4000-8000-0000000000a1"


def _messages(fake: FakeBackends) -> tuple[dict[str, Any], dict[str, Any]]:
    ours = {**sms_body("+41791234567", XSS), "org_id": fake.org_id}
    theirs = {**sms_body("+447700900123", "hello", "failed"), "org_id": OTHER_ORG}
    theirs["failed_at"] = "2026-11-29T10:05:00Z"
    fake.sms = {ours["id"]: ours, theirs["id"]: theirs}
    return ours, theirs


async def test_operators_read_every_orgs_messages_by_org_and_status() -> None:
    fake = FakeBackends(admin=True)
    ours, theirs = _messages(fake)
    async with console(fake) as client:
        await sign_in(client)
        opened = await client.get("/admin/sms")
        assert opened.status_code == 303
        assert opened.headers["location"] == "/admin/sms/log"
        page = await client.get("/admin/sms/log")
        assert page.status_code == 200
        assert page.text.count('data-testid="operator-sms-row"') == 2
        assert ">Acme<" in page.text  # the org is named from the operator's org list
        assert f'title="{OTHER_ORG}"' in page.text  # an org beyond it: its id
        assert f'href="/admin/sms/log/{OTHER_ORG}/{theirs["id"]}"' in page.text
        assert "+447700900123" in page.text
        assert XSS not in page.text
        assert 'href="/admin/sms" aria-current="page">SMS<' in page.text
        filtered = await client.get(f"/admin/sms/log?org_id={OTHER_ORG}&status=failed")
        assert fake.admin_sms_params[-1]["org_id"] == OTHER_ORG
        assert fake.admin_sms_params[-1]["status"] == "failed"
        assert filtered.text.count('data-testid="operator-sms-row"') == 1
        none = await client.get(f"/admin/sms/log?org_id={fake.org_id}&status=failed")
        assert "No message matches these filters." in none.text
        assert (await client.get("/admin/sms/log?org_id=acme")).status_code == 400

        one = await client.get(f"/admin/sms/log/{fake.org_id}/{ours['id']}")
        assert one.status_code == 200
        timeline = one.text.split('data-testid="sms-timeline"', 1)[1]
        assert timeline.index("Queued") < timeline.index("Sent") < timeline.index("Delivered")
        assert XSS not in one.text
        # A message named under another org's id is not found, like an unknown one.
        assert (await client.get(f"/admin/sms/log/{OTHER_ORG}/{ours['id']}")).status_code == 404
        unknown = uuid.uuid4()
        assert (await client.get(f"/admin/sms/log/{fake.org_id}/{unknown}")).status_code == 404

        zh = await client.get("/admin/sms/log", headers={"accept-language": "zh"})
        assert "短信日志" in zh.text
        assert 'aria-current="page">短信<' in zh.text
        fake.down = {"notifier"}
        down = await client.get("/admin/sms/log")
        assert down.status_code == 200
        assert 'data-testid="panel-down"' in down.text


async def test_the_operators_sms_pages_are_404_for_everyone_else() -> None:
    fake = FakeBackends(role="owner")
    ours, _ = _messages(fake)
    fake.sms_providers = [_provider(PROVIDER)]
    async with console(fake) as client:
        await sign_in(client)
        for path in (
            "/admin/sms",
            "/admin/sms/log",
            f"/admin/sms/log/{fake.org_id}/{ours['id']}",
            "/admin/sms/providers/new",
            f"/admin/sms/providers/{PROVIDER}/delete",
        ):
            assert (await client.get(path)).status_code == 404, path
        token = csrf(client)
        for path, form in (
            ("/admin/sms/providers/new", {"kind": "twilio", "name": "x"}),
            (f"/admin/sms/providers/{PROVIDER}/delete", {}),
            (f"/admin/sms/providers/{PROVIDER}/test-send", {"to": "+41791234567"}),
        ):
            answer = await client.post(path, data={"csrf_token": token, **form})
            assert answer.status_code == 404, path
        assert fake.provider_adds == []
        assert fake.provider_tests == []
        assert len(fake.sms_providers) == 1


async def test_operators_add_a_provider_of_either_kind_and_secrets_are_never_echoed() -> None:
    fake = FakeBackends(admin=True)
    fake.sms_providers = [_provider(PROVIDER)]
    secret = "the-operators-auth-token"
    async with console(fake) as client:
        await sign_in(client)
        twilio = await client.get("/admin/sms/providers/new")
        assert 'data-testid="secret-auth_token"' in twilio.text
        http = await client.get("/admin/sms/providers/new?kind=http")
        assert 'data-testid="secret-auth_value"' in http.text
        assert 'data-testid="secret-callback_secret"' in http.text
        assert 'data-testid="secret-auth_token"' not in http.text
        form = {
            "csrf_token": csrf(client),
            "kind": "twilio",
            "name": "twilio-backup",
            "rate_per_second": "20",
            "priority": "200",
            "enabled": "1",
            "config": '{"base_url": "https://api.twilio.com"}',
            "auth_token": secret,
        }
        refused = await client.post("/admin/sms/providers/new", data=form)
        assert refused.status_code == 422
        assert "needs config.account_sid" in refused.text
        assert secret not in refused.text
        taken = await client.post(
            "/admin/sms/providers/new",
            data={**form, "name": "twilio-main", "config": '{"account_sid": "AC1"}'},
        )
        assert taken.status_code == 409
        assert 'data-testid="field-error-name"' in taken.text
        bad = await client.post(
            "/admin/sms/providers/new", data={**form, "config": "[", "priority": "-1"}
        )
        assert bad.status_code == 400
        assert 'data-testid="field-error-config"' in bad.text
        assert 'data-testid="field-error-priority"' in bad.text
        assert len(fake.provider_adds) == 2  # the form's own refusal sends nothing
        added = await client.post(
            "/admin/sms/providers/new", data={**form, "config": '{"account_sid": "AC1"}'}
        )
        assert added.status_code == 303
        assert added.headers["location"] == "/admin/sms/providers?done=added"
        assert fake.provider_adds[-1] == {
            "kind": "twilio",
            "name": "twilio-backup",
            "enabled": True,
            "config": {"account_sid": "AC1"},
            "rate_per_second": 20,
            "priority": 200,
            "credentials": {"auth_token": secret},
        }
        listed = await client.get("/admin/sms/providers?done=added")
        assert listed.text.count('data-testid="sms-provider"') == 2
        assert "Provider added." in listed.text
        assert secret not in listed.text
        generic = await client.post(
            "/admin/sms/providers/new",
            data={
                "csrf_token": csrf(client),
                "kind": "http",
                "name": "generic",
                "rate_per_second": "5",
                "priority": "300",
                "config": '{"url_template": "https://sms.example.com/send"}',
                "auth_value": "Bearer x",
                "callback_secret": "",
                "auth_token": "not-a-field-of-this-kind",
            },
        )
        assert generic.status_code == 303
        assert fake.provider_adds[-1]["enabled"] is False
        assert fake.provider_adds[-1]["credentials"] == {"auth_value": "Bearer x"}
        odd = await client.post("/admin/sms/providers/new", data={**form, "kind": "smpp"})
        assert odd.status_code == 404
        zh = await client.get("/admin/sms/providers/new", headers={"accept-language": "zh"})
        assert "添加服务商" in zh.text


async def test_operators_see_the_balance_send_a_test_and_delete_a_provider() -> None:
    fake = FakeBackends(admin=True)
    fake.sms_providers = [_provider(PROVIDER)]
    fake.provider_balances[PROVIDER] = {"balance": "12.50", "currency": "USD", "low": True}
    url = f"/admin/sms/providers/{PROVIDER}"
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(url)
        assert 'data-testid="balance-amount">12.50 USD' in page.text
        assert "Balance low" in page.text
        fake.provider_balances[PROVIDER] = {"balance": None, "currency": None, "low": None}
        assert "does not report a balance" in (await client.get(url)).text
        del fake.provider_balances[PROVIDER]  # the provider does not answer: 503
        unavailable = await client.get(url)
        assert unavailable.status_code == 200
        assert 'data-testid="balance-unavailable"' in unavailable.text

        test = {"csrf_token": csrf(client), "to": "+41791234567", "from": "Tollgate", "text": "hi"}
        accepted = await client.post(f"{url}/test-send", data=test)
        assert accepted.status_code == 200
        assert fake.provider_tests[-1] == {"to": "+41791234567", "from": "Tollgate", "text": "hi"}
        outcome = accepted.text.split('data-testid="test-outcome"', 1)[1]
        assert outcome.index("accepted") < outcome.index("SM-test-1")
        refused = await client.post(f"{url}/test-send", data={**test, "to": "+41791234560"})
        outcome = refused.text.split('data-testid="test-outcome"', 1)[1]
        assert "refused" in outcome.split("</div>")[0]
        assert "21211" in outcome
        assert "<b>invalid" not in refused.text  # the provider's words are escaped
        bad = await client.post(f"{url}/test-send", data={**test, "to": "0791234567"})
        assert bad.status_code == 400
        assert 'data-testid="field-error-to"' in bad.text
        assert len(fake.provider_tests) == 2
        unknown = f"/admin/sms/providers/{uuid.uuid4()}"
        assert (await client.post(f"{unknown}/test-send", data=test)).status_code == 404
        assert (await client.get(f"{unknown}/delete")).status_code == 404
        token = {"csrf_token": csrf(client)}
        assert (await client.post(f"{unknown}/delete", data=token)).status_code == 404

        confirm = await client.get(f"{url}/delete")
        assert confirm.status_code == 200
        assert 'data-testid="confirm-delete-provider"' in confirm.text
        assert len(fake.sms_providers) == 1  # asking deletes nothing
        deleted = await client.post(f"{url}/delete", data=token)
        assert deleted.status_code == 303
        assert deleted.headers["location"] == "/admin/sms/providers?done=deleted"
        assert fake.sms_providers == []
        assert (await client.get(url)).status_code == 404
        zh = await client.get(
            "/admin/sms/providers?done=deleted", headers={"accept-language": "zh"}
        )
        assert "服务商已删除" in zh.text


async def test_a_configuration_nested_too_deep_is_a_field_error() -> None:
    fake = FakeBackends(admin=True)
    async with console(fake) as client:
        await sign_in(client)
        nested = await client.post(
            "/admin/sms/providers/new",
            data={
                "csrf_token": csrf(client),
                "kind": "twilio",
                "name": "deep",
                "rate_per_second": "10",
                "priority": "100",
                "config": "[" * 100_000,
            },
        )
    assert nested.status_code == 400  # the parser's RecursionError was a 500
    assert 'data-testid="field-error-config"' in nested.text
    assert fake.provider_adds == []
