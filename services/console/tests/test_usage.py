"""The usage page in process: charts' data, top lists, errors by reason, CSV export,
filters in the URL, escaping."""

from __future__ import annotations

import uuid

from .fakes import FakeBackends, console, sign_in

XSS = "<script>alert(1)</script>"
OTHER_ORG = "00000000-0000-4000-8000-000000000001"  # an org the user is no member of


async def test_usage_page_carries_the_chart_series_and_top_lists() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        await client.post(
            f"/orgs/{fake.org_id}/keys/new",
            data={"name": XSS, "csrf_token": str(client.cookies.get("tg_csrf"))},
        )
        (key_id,) = fake.keys
        fake.top_values = {"key": [key_id], "status": ["429"], "route": [str(uuid.uuid4())]}
        page = await client.get(f"/orgs/{fake.org_id}/usage", params={"range": "1h"})
        card = await client.get(f"/orgs/{fake.org_id}/usage/top-keys", params={"range": "1h"})
        elsewhere = await client.get(f"/orgs/{OTHER_ORG}/usage/top-keys")
    assert page.status_code == 200
    # Top keys is not in the first paint: the page says it is loading and fetches the card.
    assert "Loading…" in page.text
    assert f'hx-get="/orgs/{fake.org_id}/usage/top-keys?range=1h"' in page.text
    assert card.status_code == 200
    assert f'href="/orgs/{fake.org_id}/keys/{key_id}"' in card.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card.text
    assert XSS not in card.text
    assert elsewhere.status_code == 404
    assert 'data-chart="traffic"' in page.text
    assert 'data-chart="latency"' in page.text
    assert "&#34;ok&#34;: [5]" in page.text or '"ok": [5]' in page.text  # 10 - 2 - 3
    assert fake.usage_params[-1]["granularity"] == "minute"
    assert XSS not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # the key's name, escaped
    assert "Rate limited" in page.text
    assert "<script" not in page.text.replace('<script src="/static/', "")


async def test_usage_filters_live_in_the_url_and_reach_usage() -> None:
    fake = FakeBackends()
    api_id = str(uuid.uuid4())
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(
            f"/orgs/{fake.org_id}/usage", params={"range": "7d", "api_id": api_id, "key_id": "junk"}
        )
        assert page.status_code == 200
        sent = fake.usage_params[-1]
        assert sent["api_id"] == api_id
        assert "key_id" not in sent  # a malformed id is dropped, not an error page
        assert f"range=30d&amp;api_id={api_id}" in page.text  # range links keep filters
        assert f"usage.csv?range=7d&amp;api_id={api_id}" in page.text


async def test_usage_csv_export() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        answer = await client.get(f"/orgs/{fake.org_id}/usage.csv", params={"range": "24h"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    lines = answer.text.splitlines()
    assert lines[0] == "time,requests,successful,errors,rejected,credits,p50_ms,p95_ms,p99_ms"
    assert lines[1] == "2026-11-29T10:00:00Z,10,5,3,2,5,10.0,30.0,"


async def test_usage_down_leaves_the_page_with_a_notice() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        fake.down = {"usage"}
        page = await client.get(f"/orgs/{fake.org_id}/usage")
    assert page.status_code == 200
    assert "Usage is unavailable right now" in page.text


async def test_usage_and_overview_show_live_traffic_unless_test_mode_is_chosen() -> None:
    fake = FakeBackends()
    api_id = str(uuid.uuid4())
    fake.top_values = {"key:test": [str(uuid.uuid4())], "api:test": [api_id]}
    async with console(fake) as client:
        await sign_in(client)
        live = await client.get(f"/orgs/{fake.org_id}/usage", params={"range": "1h"})
        assert fake.usage_params[-1]["mode"] == "live"
        test = await client.get(
            f"/orgs/{fake.org_id}/usage", params={"range": "1h", "mode": "test", "api_id": api_id}
        )
        assert fake.usage_params[-1]["mode"] == "test"
        card = await client.get(
            f"/orgs/{fake.org_id}/usage/top-keys", params={"range": "1h", "mode": "test"}
        )
        csv = await client.get(f"/orgs/{fake.org_id}/usage.csv", params={"mode": "test"})
        assert fake.usage_params[-1]["mode"] == "test"
        await client.get(f"/orgs/{fake.org_id}/usage", params={"mode": "all"})
        assert fake.usage_params[-1]["mode"] == "live"  # usage counts one mode at a time
        overview = await client.get(f"/orgs/{fake.org_id}")
        overview_test = await client.get(f"/orgs/{fake.org_id}", params={"mode": "test"})
        client.cookies.set("tg_lang", "zh-Hans")
        chinese = await client.get(f"/orgs/{fake.org_id}/usage", params={"mode": "test"})
    assert 'href="?range=1h&amp;mode=test"' in live.text
    assert 'data-testid="mode-notice"' not in live.text
    assert 'data-testid="mode-notice"' in test.text
    # The mode stays in every link and form of the page.
    assert (
        f'hx-get="/orgs/{fake.org_id}/usage/top-keys?range=1h&amp;api_id={api_id}&amp;mode=test"'
        in test.text
    )
    assert f"usage.csv?range=1h&amp;api_id={api_id}&amp;mode=test" in test.text
    assert f'href="?range=24h&amp;api_id={api_id}&amp;mode=test"' in test.text
    assert '<input type="hidden" name="mode" value="test">' in test.text
    assert f'href="/orgs/{fake.org_id}/keys/{fake.top_values["key:test"][0]}"' in card.text
    assert "-test-" in csv.headers["content-disposition"]
    assert [p.get("mode") for p in fake.summary_params[-2:]] == ["live", "test"]
    assert 'data-testid="stat-requests">1,234<' in overview.text
    assert 'data-testid="stat-requests">77<' in overview_test.text
    assert 'href="?range=24h&amp;mode=test" aria-current="true"' in overview_test.text
    assert "测试模式" in chinese.text
