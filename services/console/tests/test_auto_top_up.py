"""Auto top-up in process: members see the settings, spend against the cap and why the
latest top-up failed; owners save them (errors next to the fields) and are sent to
Checkout to save a card; another org's id refused."""

from __future__ import annotations

from .fakes import NOW, FakeBackends, console, csrf, sign_in

OTHER_ORG = "00000000-0000-4000-8000-000000000001"


async def test_an_owner_saves_a_card_then_turns_auto_top_up_on() -> None:
    fake = FakeBackends(role="owner", provider="stripe")
    async with console(fake) as client:
        await sign_in(client)
        url = f"/orgs/{fake.org_id}/billing/auto-top-up"
        page = await client.get(url)
        assert page.status_code == 200
        assert "$12.50 of $50.00" in page.text
        assert 'value="50.00"' in page.text
        form = {"csrf_token": csrf(client), "enabled": "1", "threshold": "1000"}
        refused = await client.post(url, data={**form, "target": "9000", "monthly_cap": "80"})
        assert refused.status_code == 409
        assert "Save a card first." in refused.text
        card = await client.post(f"{url}/card", data={"csrf_token": csrf(client)})
        assert card.status_code == 303
        assert card.headers["location"] == "https://checkout.stripe.test/setup"
        fake.auto_top_up["payment_method_saved"] = True  # Stripe reported the SetupIntent
        low = await client.post(url, data={**form, "target": "500", "monthly_cap": "80"})
        assert low.status_code == 422
        assert 'data-testid="field-error-target"' in low.text
        bad = await client.post(url, data={**form, "target": "9000", "monthly_cap": "8.005"})
        assert bad.status_code == 400
        assert 'data-testid="field-error-monthly_cap"' in bad.text
        saved = await client.post(url, data={**form, "target": "9000", "monthly_cap": "80.5"})
        assert saved.status_code == 303
        assert fake.auto_top_up["enabled"] is True
        assert (fake.auto_top_up["target"], fake.auto_top_up["monthly_cap"]) == (9000, 8050)
        no_csrf = {k: v for k, v in form.items() if k != "csrf_token"}
        assert (await client.post(url, data=no_csrf)).status_code == 403
        zh = await client.get(url, headers={"accept-language": "zh"})
        assert "自动充值" in zh.text


async def test_members_see_why_the_last_top_up_failed_and_cannot_change_it() -> None:
    fake = FakeBackends(role="developer")
    fake.auto_top_up["last_charge"] = {
        "id": "00000000-0000-4000-8000-000000000002",
        "status": "failed",
        "amount": 400,
        "currency": "usd",
        "credits": 4000,
        "failure": "card_declined",
        "crossed_at": NOW,
        "finished_at": NOW,
    }
    async with console(fake) as client:
        await sign_in(client)
        url = f"/orgs/{fake.org_id}/billing/auto-top-up"
        page = await client.get(url)
        assert "The card was declined." in page.text
        assert 'data-testid="auto-top-up-form"' not in page.text
        assert 'data-testid="save-card"' not in page.text
        assert 'data-testid="manual-mode"' in page.text  # no card payments without Stripe
        forged = await client.post(
            url,
            data={"csrf_token": csrf(client), "threshold": "1", "target": "2", "monthly_cap": "1"},
        )
        assert forged.status_code == 403
        assert fake.auto_top_up["threshold"] == 1000
        assert (await client.get(f"/orgs/{OTHER_ORG}/billing/auto-top-up")).status_code == 404
        other = await client.post(
            f"/orgs/{OTHER_ORG}/billing/auto-top-up/card", data={"csrf_token": csrf(client)}
        )
        assert other.status_code == 404
        fake.down = {"billing"}
        down = await client.get(url)
        assert down.status_code == 200
        assert 'data-testid="panel-down"' in down.text
