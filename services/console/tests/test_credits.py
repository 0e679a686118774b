"""The credits page in process: billing settings (owners), statements, and platform
admins' top-ups, which charge once however often the same form is submitted."""

from __future__ import annotations

from .fakes import FakeBackends, console, csrf, sign_in

XSS = "<script>alert(1)</script>"


def form_key(page: str) -> str:
    return page.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]


async def test_the_same_top_up_form_submitted_twice_charges_once() -> None:
    fake = FakeBackends(admin=True)
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/credits")
        key = form_key(page.text)
        form = {
            "csrf_token": csrf(client),
            "idempotency_key": key,
            "kind": "top_up",
            "amount": "500",
            "reason": XSS,
        }
        first = await client.post(f"/orgs/{fake.org_id}/credits/add", data=form)
        second = await client.post(f"/orgs/{fake.org_id}/credits/add", data=form)
        assert first.status_code == second.status_code == 303
        assert len(fake.ledger) == 1
        after = await client.get(first.headers["location"])
        assert "The credits were added to the ledger." in after.text
        assert "99,265" in after.text
        assert XSS not in after.text
        assert form_key(after.text) != key  # a new form, a new operation


async def test_a_charge_that_is_no_request_says_what_it_was() -> None:
    # Before: an SMS charge (a debit of no request) read "Usage · 0 requests · -5".
    fake = FakeBackends()
    sms = "SMS 0193aa: 1 segment(s) x 5 (+41)"
    fake.ledger.append(
        {
            "id": "00000000-0000-0000-0000-000000000001",
            "kind": "debit",
            "amount": -5,
            "balance_after": 98760,
            "reason": sms,
            "request_count": 0,
            "created_at": "2026-11-30T10:00:00Z",
        }
    )
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/credits")
    assert sms in page.text
    assert "0 requests" not in page.text


async def test_a_refused_adjustment_is_shown_next_to_the_field_and_keeps_its_key() -> None:
    fake = FakeBackends(admin=True)
    async with console(fake) as client:
        await sign_in(client)
        form = {"csrf_token": csrf(client), "idempotency_key": "a" * 32, "kind": "adjustment"}
        not_a_number = await client.post(
            f"/orgs/{fake.org_id}/credits/add", data={**form, "amount": "12.5"}
        )
        assert not_a_number.status_code == 400
        assert 'data-testid="field-error-amount"' in not_a_number.text
        refused = await client.post(
            f"/orgs/{fake.org_id}/credits/add", data={**form, "amount": "0"}
        )
        assert refused.status_code == 422
        assert "must not be 0" in refused.text
        assert form_key(refused.text) == "a" * 32
        assert not fake.ledger


async def test_only_admins_see_the_top_up_form_and_a_forged_one_is_refused() -> None:
    fake = FakeBackends(role="owner")
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/credits")
        assert "/credits/add" not in page.text
        assert "/credits/settings" in page.text  # owners set the threshold
        forged = await client.post(
            f"/orgs/{fake.org_id}/credits/add",
            data={"csrf_token": csrf(client), "amount": "100", "idempotency_key": "b" * 32},
        )
        assert forged.status_code == 403
        assert "Platform admins only." in forged.text
        no_csrf = await client.post(f"/orgs/{fake.org_id}/credits/add", data={"amount": "1"})
        assert no_csrf.status_code == 403
        assert not fake.ledger


async def test_owners_set_the_low_balance_threshold_viewers_only_read_it() -> None:
    fake = FakeBackends(role="owner")
    async with console(fake) as client:
        await sign_in(client)
        url = f"/orgs/{fake.org_id}/credits/settings"
        saved = await client.post(url, data={"csrf_token": csrf(client), "low_threshold": "250"})
        assert saved.status_code == 303
        assert fake.low_threshold == 250
        refused = await client.post(url, data={"csrf_token": csrf(client), "low_threshold": "-1"})
        assert refused.status_code == 422
        assert 'data-testid="field-error-low_threshold"' in refused.text
        fake.role = "viewer"
        page = await client.get(f"/orgs/{fake.org_id}/credits")
        assert "/credits/settings" not in page.text
        assert "Low-balance alert at 250 credits" in page.text
        forged = await client.post(url, data={"csrf_token": csrf(client), "low_threshold": "1"})
        assert forged.status_code == 403
        assert fake.low_threshold == 250


async def test_the_monthly_statement_downloads_as_csv_or_json() -> None:
    fake = FakeBackends(role="viewer")
    async with console(fake) as client:
        await sign_in(client)
        url = f"/orgs/{fake.org_id}/credits/statement"
        as_csv = await client.get(url, params={"month": "2026-10", "format": "csv"})
        assert as_csv.status_code == 200
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert (
            f'filename="statement-{fake.org_id}-2026-10.csv"'
            in (as_csv.headers["content-disposition"])
        )
        assert as_csv.text.startswith("month,opening,closing")
        as_json = await client.get(url, params={"month": "2026-10", "format": "json"})
        assert as_json.json()["month"] == "2026-10"
