"""Buy credits in process: packs, Checkout by redirect in stripe mode only, the
operator note in manual mode, and the receipts list."""

from __future__ import annotations

import uuid

from .fakes import NOW, FakeBackends, console, csrf, sign_in

XSS = "<script>alert(1)</script>"


def purchase(pack_id: str, status: str) -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "org_id": str(uuid.uuid4()),
        "provider": "stripe",
        "pack_id": pack_id,
        "credits": 10000,
        "amount": 1000,
        "currency": "usd",
        "status": status,
        "checkout_session_id": "cs_test_1",
        "payment_intent_id": None,
        "ledger_entry_id": None,
        "refunded_credits": 0,
        "created_at": NOW,
        "paid_at": NOW if status == "paid" else None,
    }


async def test_an_owner_buys_a_pack_and_is_sent_to_checkout() -> None:
    fake = FakeBackends(role="owner", provider="stripe")
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/billing")
        assert page.status_code == 200
        assert "$10.00" in page.text
        assert 'data-testid="buy-pack"' in page.text
        bought = await client.post(
            f"/orgs/{fake.org_id}/billing/checkout",
            data={"csrf_token": csrf(client), "pack_id": "small"},
        )
        assert bought.status_code == 303
        assert bought.headers["location"] == "https://checkout.stripe.test/c/pay/cs_test_1"
        assert fake.checkouts == ["small"]
        no_csrf = await client.post(
            f"/orgs/{fake.org_id}/billing/checkout", data={"pack_id": "small"}
        )
        assert no_csrf.status_code == 403
        back = await client.get(f"/orgs/{fake.org_id}/billing?purchase=x&result=success")
        assert "as soon as the payment is confirmed" in back.text


async def test_manual_mode_says_an_operator_adds_credits_and_checkout_is_refused() -> None:
    fake = FakeBackends(role="owner")
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/billing")
        assert 'data-testid="manual-mode"' in page.text
        assert 'data-testid="buy-pack"' not in page.text
        forged = await client.post(
            f"/orgs/{fake.org_id}/billing/checkout",
            data={"csrf_token": csrf(client), "pack_id": "small"},
        )
        assert forged.status_code == 409
        assert "Card payments are not configured." in forged.text
        zh = await client.get(f"/orgs/{fake.org_id}/billing", headers={"accept-language": "zh"})
        assert "由运营人员添加" in zh.text


async def test_viewers_read_receipts_escaped_and_cannot_buy() -> None:
    fake = FakeBackends(role="viewer", provider="stripe")
    fake.purchases = [purchase(XSS, "paid"), purchase("small", "processing")]
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/billing")
        assert 'data-testid="buy-pack"' not in page.text
        assert XSS not in page.text
        assert "&lt;script&gt;" in page.text
        assert "Processing" in page.text
        assert "cursor=p2" in page.text  # billing's next_cursor becomes the next page link
        forged = await client.post(
            f"/orgs/{fake.org_id}/billing/checkout",
            data={"csrf_token": csrf(client), "pack_id": "small"},
        )
        assert forged.status_code == 403
        assert not fake.checkouts


async def test_billing_down_says_so_and_another_org_is_a_404() -> None:
    fake = FakeBackends(role="owner", down={"billing"})
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/billing")
        assert page.status_code == 200
        assert page.text.count('data-testid="panel-down"') == 2
        other = "00000000-0000-4000-8000-000000000001"
        assert (await client.get(f"/orgs/{other}/billing")).status_code == 404
        posted = await client.post(
            f"/orgs/{other}/billing/checkout", data={"csrf_token": csrf(client), "pack_id": "small"}
        )
        assert posted.status_code == 404
