"""The webhooks pages in process: endpoints with an event-type filter, the secret shown
once on creation and rotation, test events, the delivery log and retry, roles and
escaping."""

from __future__ import annotations

from .fakes import FakeBackends, console, csrf, delivery_body, sign_in

XSS = "<script>alert(1)</script>"


async def test_create_an_endpoint_with_its_secret_shown_once() -> None:
    fake = FakeBackends(role="developer")
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/webhooks")
        assert "No webhook endpoints yet." in page.text
        assert 'value="credits.low"' in page.text
        assert "Balance at or below the threshold." in page.text
        # Each type described in the visitor's language; the English one where the
        # notifier has no other (an older notifier).
        client.cookies.set("tg_lang", "zh-Hans")
        chinese = await client.get(f"/orgs/{fake.org_id}/webhooks")
        assert "余额降至或低于阈值。" in chinese.text
        assert "Balance at or below the threshold." not in chinese.text
        assert "Credits added;" in chinese.text
        # Field names in a description are code, never backticks; the rest is text.
        assert "<code>amount</code> says how many &lt;b&gt;." in chinese.text
        client.cookies.delete("tg_lang")
        bad = await client.post(
            f"/orgs/{fake.org_id}/webhooks",
            data={"csrf_token": csrf(client), "url": "ftp://x", "description": XSS},
        )
        assert bad.status_code == 422
        assert 'data-testid="field-error-url"' in bad.text
        assert XSS not in bad.text  # the description typed is shown back escaped
        created = await client.post(
            f"/orgs/{fake.org_id}/webhooks",
            data={
                "csrf_token": csrf(client),
                "url": "https://example.com/hook",
                "description": XSS,
                "event_types": ["credits.low"],
            },
        )
        assert created.status_code == 200
        assert "whsec_FIRST" in created.text
        (endpoint_id,) = fake.endpoints
        assert fake.endpoints[endpoint_id]["event_types"] == ["credits.low"]
        listed = await client.get(f"/orgs/{fake.org_id}/webhooks")
        assert "whsec_FIRST" not in listed.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listed.text
        assert XSS not in listed.text


async def test_endpoint_actions_test_rotate_disable_and_retry() -> None:
    fake = FakeBackends(role="developer")
    async with console(fake) as client:
        await sign_in(client)
        await client.post(
            f"/orgs/{fake.org_id}/webhooks",
            data={"csrf_token": csrf(client), "url": "https://example.com/hook"},
        )
        (endpoint_id,) = fake.endpoints
        base = f"/orgs/{fake.org_id}/webhooks/{endpoint_id}"
        token = {"csrf_token": csrf(client)}
        assert (await client.post(f"{base}/test", data=token)).status_code == 303
        fake.deliveries.insert(0, delivery_body(7, "failed"))
        page = await client.get(base)
        assert 'data-testid="retry-delivery"' in page.text
        assert XSS not in page.text  # a receiver's error text, escaped
        retried = await client.post(f"{base}/deliveries/7/retry", data=token)
        assert retried.status_code == 303
        assert fake.retried == [7]
        rotated = await client.post(f"{base}/rotate", data=token)
        assert "whsec_ROTATED" in rotated.text
        assert (await client.post(f"{base}/disable", data=token)).status_code == 303
        assert fake.endpoints[endpoint_id]["enabled"] is False
        assert (await client.post(f"{base}/explode", data=token)).status_code == 404


async def test_viewers_see_no_webhook_controls_and_notifier_down_is_a_panel() -> None:
    fake = FakeBackends(role="viewer")
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/webhooks")
        assert 'data-testid="new-endpoint"' not in page.text
        forged = await client.post(
            f"/orgs/{fake.org_id}/webhooks",
            data={"csrf_token": csrf(client), "url": "https://example.com/hook"},
        )
        assert forged.status_code == 403
        assert "Requires the developer role or higher." in forged.text
        assert not fake.endpoints
        fake.down = {"notifier"}
        down = await client.get(f"/orgs/{fake.org_id}/webhooks")
        assert down.status_code == 200
        assert "Notifier is unavailable right now" in down.text


async def test_a_new_or_rotated_secret_is_shown_when_accounts_fails_right_after() -> None:
    fake = FakeBackends(role="developer")
    async with console(fake) as client:
        await sign_in(client)
        fake.down_after_write = {"accounts"}
        created = await client.post(
            f"/orgs/{fake.org_id}/webhooks",
            data={"csrf_token": csrf(client), "url": "https://example.com/hook"},
        )
        fake.down = set()
        (endpoint_id,) = fake.endpoints
        rotated = await client.post(
            f"/orgs/{fake.org_id}/webhooks/{endpoint_id}/rotate",
            data={"csrf_token": csrf(client)},
        )
    assert created.status_code == 200  # the navigation read after the write: 503, secret lost
    assert "whsec_FIRST" in created.text
    assert rotated.status_code == 200
    assert "whsec_ROTATED" in rotated.text
