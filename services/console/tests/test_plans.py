"""The plan page and the operator's plans in process: quota against this period's
usage, free switches by owners, paid plans only by Checkout in stripe mode, and the
operator list that non-admins never see."""

from __future__ import annotations

from .fakes import FakeBackends, console, csrf, plan_body, sign_in

XSS = "<script>alert(1)</script>"


def with_plans(fake: FakeBackends) -> tuple[str, str, str]:
    free, starter, pro = plan_body(XSS), plan_body("Starter", 0, 5000), plan_body("Pro", 4900)
    for p in (free, starter, pro):
        fake.plans[p["id"]] = p
    fake.org_plan_id = starter["id"]
    return free["id"], starter["id"], pro["id"]


async def test_the_plan_page_shows_included_and_used_requests_and_a_scheduled_downgrade() -> None:
    fake = FakeBackends(role="viewer")
    free, _starter, _pro = with_plans(fake)
    fake.next_plan_id = free
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/plan")
        assert page.status_code == 200
        assert "1,234 of 5,000 included requests used this period" in page.text
        assert 'data-testid="next-plan"' in page.text
        assert XSS not in page.text
        assert "&lt;script&gt;" in page.text
        assert "$49.00 per month" in page.text
        assert 'data-testid="choose-plan"' not in page.text  # viewers only read
        assert f'href="/orgs/{fake.org_id}/plan" aria-current="page"' in page.text
        zh = await client.get(f"/orgs/{fake.org_id}/plan", headers={"accept-language": "zh"})
        assert "本期已用" in zh.text


async def test_an_owner_switches_to_a_free_plan_and_a_paid_one_needs_an_operator() -> None:
    fake = FakeBackends(role="owner")
    free, _starter, pro = with_plans(fake)
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/plan")
        assert 'data-testid="buy-plan"' not in page.text  # manual provider
        assert "An operator assigns paid plans." in page.text
        switched = await client.post(
            f"/orgs/{fake.org_id}/plan", data={"csrf_token": csrf(client), "plan_id": free}
        )
        assert switched.status_code == 303
        assert fake.org_plan_id == free
        forged = await client.post(
            f"/orgs/{fake.org_id}/plan", data={"csrf_token": csrf(client), "plan_id": pro}
        )
        assert forged.status_code == 403
        assert "This plan requires payment." in forged.text
        assert fake.org_plan_id == free
        refused = await client.post(
            f"/orgs/{fake.org_id}/plan/subscribe", data={"csrf_token": csrf(client), "plan_id": pro}
        )
        assert refused.status_code == 409
        assert not fake.checkouts


async def test_in_stripe_mode_buying_a_paid_plan_redirects_to_checkout() -> None:
    fake = FakeBackends(role="owner", provider="stripe")
    _free, _starter, pro = with_plans(fake)
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/plan")
        assert 'data-testid="buy-plan"' in page.text
        bought = await client.post(
            f"/orgs/{fake.org_id}/plan/subscribe", data={"csrf_token": csrf(client), "plan_id": pro}
        )
        assert bought.status_code == 303
        assert bought.headers["location"].startswith("https://checkout.stripe.test/")
        assert fake.checkouts == [pro]
        back = await client.get(f"/orgs/{fake.org_id}/billing?plan={pro}&result=success")
        assert back.status_code == 303
        returned = await client.get(back.headers["location"])
        assert "The plan starts as soon as the payment is confirmed." in returned.text


async def test_billing_down_leaves_the_rest_of_the_plan_page() -> None:
    fake = FakeBackends(role="owner", down={"billing"})
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/plan")
        assert page.status_code == 200
        assert 'data-testid="panel-down"' in page.text
        assert "Billing is unavailable right now" in page.text
        no_plan = FakeBackends(role="owner")
    async with console(no_plan) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{no_plan.org_id}/plan")
        assert 'data-testid="no-plan"' in page.text


async def test_another_orgs_plan_page_is_a_404() -> None:
    fake = FakeBackends(role="owner")
    async with console(fake) as client:
        await sign_in(client)
        other = "00000000-0000-4000-8000-000000000001"
        assert (await client.get(f"/orgs/{other}/plan")).status_code == 404


async def test_operators_create_and_archive_plans_and_others_get_404() -> None:
    fake = FakeBackends(admin=True)
    async with console(fake) as client:
        await sign_in(client)
        form = {"csrf_token": csrf(client), "name": XSS, "monthly_price": "900"}
        bad = await client.post("/admin/plans", data={**form, "included_requests": "lots"})
        assert bad.status_code == 400
        assert 'data-testid="field-error-included_requests"' in bad.text
        made = await client.post("/admin/plans", data={**form, "included_requests": "100"})
        assert made.status_code == 303
        (plan_id,) = fake.plans
        listed = await client.get("/admin/plans")
        assert "&lt;script&gt;" in listed.text
        assert XSS not in listed.text
        assert "$9.00" in listed.text
        archived = await client.post(
            f"/admin/plans/{plan_id}/archive", data={"csrf_token": csrf(client), "archived": "1"}
        )
        assert archived.status_code == 303
        assert fake.plans[plan_id]["archived"] is True
        after = await client.get("/admin/plans")
        on_sale, archived_part = after.text.split(">Archived<", 1)
        assert "&lt;script&gt;" not in on_sale
        assert 'data-testid="unarchive-plan"' in archived_part
        fake.admin = False
        assert (await client.get("/admin/plans")).status_code == 404
        forged = await client.post("/admin/plans", data={**form, "included_requests": "1"})
        assert forged.status_code == 404
        assert len(fake.plans) == 1


async def test_a_suspended_plan_says_what_it_means_in_both_languages() -> None:
    fake = FakeBackends(role="viewer", plan_status="suspended")
    with_plans(fake)
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/plan")
        assert "Suspended: the gateway refuses requests (402)" in page.text
        zh = await client.get(f"/orgs/{fake.org_id}/plan", headers={"accept-language": "zh"})
        assert "已暂停" in zh.text


async def test_an_org_without_a_plan_is_invited_to_pick_a_free_one_only_when_one_is_on_sale() -> (
    None
):
    # Before: "Pick a free plan below" above "No plans on sale.".
    fake = FakeBackends(role="owner")
    async with console(fake) as client:
        await sign_in(client)
        none_on_sale = await client.get(f"/orgs/{fake.org_id}/plan")
        zh_none = await client.get(f"/orgs/{fake.org_id}/plan", headers={"accept-language": "zh"})
        pro = plan_body("Pro", 4900)
        fake.plans[pro["id"]] = pro
        only_paid = await client.get(f"/orgs/{fake.org_id}/plan")
        fake.provider = "stripe"
        buyable = await client.get(f"/orgs/{fake.org_id}/plan")
        free = plan_body("Free")
        fake.plans[free["id"]] = free
        with_free = await client.get(f"/orgs/{fake.org_id}/plan")
    assert 'data-testid="empty"' in none_on_sale.text  # "No plans on sale."
    assert "Pick a free plan" not in none_on_sale.text
    assert 'data-testid="no-plan-next">Ask an operator for a plan.<' in none_on_sale.text
    assert "请联系运营人员" in zh_none.text
    assert "Pick a free plan" not in only_paid.text
    assert 'data-testid="no-plan-next">Ask an operator for a plan.<' in only_paid.text
    assert "Buy a plan below, or ask an operator for one." in buyable.text
    assert "Pick a free plan below, or ask an operator for a paid one." in with_free.text
