"""The logs explorer in process: each row names its key (escaped), and a key beyond the
page of keys the console reads for names (orgs with thousands of keys) still links to
its key page instead of showing no key."""

from __future__ import annotations

import uuid

from .fakes import FakeBackends, console, key_body, log_body, sign_in

XSS = "<script>alert(1)</script>"


async def test_rows_name_their_key_or_link_to_it() -> None:
    fake = FakeBackends()
    known = str(uuid.uuid4())
    fake.keys[known] = key_body(known, fake.org_id, XSS)
    unlisted = str(uuid.uuid4())  # not in the first page of keys
    fake.log_items = [log_body(known), log_body(unlisted, "/other"), log_body(None, "/anon")]
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/logs")
        filtered = await client.get(f"/orgs/{fake.org_id}/logs?key_id={unlisted}")
    assert page.status_code == 200
    assert XSS not in page.text
    assert f'href="/orgs/{fake.org_id}/keys/{known}">&lt;script&gt;' in page.text
    assert f'href="/orgs/{fake.org_id}/keys/{unlisted}">{unlisted[:8]}…</a>' in page.text
    assert f'<option value="{unlisted}" selected>{unlisted[:8]}…</option>' in filtered.text


async def test_logs_show_live_requests_by_default_and_each_request_says_its_mode() -> None:
    fake = FakeBackends()
    live, test = log_body(None, "/production"), log_body(None, "/sandboxed", mode="test")
    refused = {**log_body(None, "/admin"), "status": 403, "rejection_reason": "route_not_allowed"}
    fake.log_items = [live, test, refused]
    async with console(fake) as client:
        await sign_in(client)
        default = await client.get(f"/orgs/{fake.org_id}/logs")
        tested = await client.get(f"/orgs/{fake.org_id}/logs?mode=test")
        both = await client.get(f"/orgs/{fake.org_id}/logs?mode=all")
        junk = await client.get(f"/orgs/{fake.org_id}/logs?mode=sandbox")
        one = await client.get(f"/orgs/{fake.org_id}/logs/{test['request_id']}")
        client.cookies.set("tg_lang", "zh-Hans")
        chinese = await client.get(f"/orgs/{fake.org_id}/logs/{test['request_id']}")
        chinese_list = await client.get(f"/orgs/{fake.org_id}/logs?mode=all")
        fake.log_items = [test]  # a new org's first calls: a tg_test_ key's
        client.cookies.delete("tg_lang")
        only_test = await client.get(f"/orgs/{fake.org_id}/logs?range=7d")
    assert [p.get("mode") for p in fake.log_params[:4]] == ["live", "test", None, "live"]
    assert "/production" in default.text
    assert "/sandboxed" not in default.text
    assert '<option value="live" selected>Live</option>' in default.text
    assert "/sandboxed" in tested.text
    assert "/production" not in tested.text
    assert '<option value="test" selected>Test</option>' in tested.text
    assert "/production" in both.text
    assert "/sandboxed" in both.text
    badges = both.text.split('data-testid="mode-badge">')[1:]
    assert sorted(b.split("<", 1)[0] for b in badges) == ["live", "live", "test"]
    assert one.status_code == 200
    assert 'data-testid="mode-badge">test</span> · answered by the mock' in one.text
    assert "由模拟服务应答" in chinese.text
    # A refusal's reason in words, in the visitor's language (its code in the tooltip).
    assert 'title="route_not_allowed">Route not allowed</span>' in both.text
    assert 'title="route_not_allowed">路由不允许</span>' in chinese_list.text
    assert junk.status_code == 200  # a hand-edited mode is the default, not an error
    assert "/sandboxed" not in only_test.text
    assert (
        f'href="/orgs/{fake.org_id}/logs?range=7d&amp;mode=test" data-testid="see-test-requests"'
        in only_test.text
    )


async def test_a_test_request_page_shows_the_contract_drift_its_answer_showed() -> None:
    fake = FakeBackends()
    drifted = log_body(None, "/forecast", mode="test")
    drifted["contract_drift"] = [
        "/temperature: 'warm' is not of type 'number'",
        f"/city: {XSS} is too long",
    ]
    clean = log_body(None, "/forecast", mode="test") | {"contract_drift": []}
    unchecked = log_body(None, "/forecast")  # a live request: never checked
    fake.log_items = [drifted, clean, unchecked]
    async with console(fake) as client:
        await sign_in(client)
        shown = await client.get(f"/orgs/{fake.org_id}/logs/{drifted['request_id']}")
        matched = await client.get(f"/orgs/{fake.org_id}/logs/{clean['request_id']}")
        live = await client.get(f"/orgs/{fake.org_id}/logs/{unchecked['request_id']}")
        client.cookies.set("tg_lang", "zh-Hans")
        chinese = await client.get(f"/orgs/{fake.org_id}/logs/{drifted['request_id']}")
    assert shown.status_code == 200
    drift = shown.text.split('data-testid="contract-drift">', 1)[1].split("</dd>", 1)[0]
    assert "broke the API&#39;s OpenAPI document in 2 places" in drift
    assert "<code>/temperature: &#39;warm&#39; is not of type &#39;number&#39;</code>" in drift
    assert XSS not in shown.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; is too long" in drift
    assert "none: the answer matched" in matched.text
    assert 'data-testid="contract-drift"' not in live.text
    assert "契约偏差" in chinese.text


async def test_another_orgs_request_is_not_found_under_this_org() -> None:
    fake = FakeBackends(admin=True)  # an admin may read every org's log at usage
    item = {**log_body(None, "/path-of-another-org"), "org_id": str(uuid.uuid4())}
    fake.log_items.append(item)
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/logs/{item['request_id']}")
    assert page.status_code == 404
    assert "/path-of-another-org" not in page.text
