"""The live tail in process: the console relays usage's SSE stream with the user's
token, which never reaches the page."""

from __future__ import annotations

from .fakes import FakeBackends, console, sign_in


async def test_the_live_stream_is_relayed_with_the_users_token() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        await sign_in(client)
        page = await client.get(f"/orgs/{fake.org_id}/live")
        assert page.status_code == 200
        assert f'data-live-src="/orgs/{fake.org_id}/live/stream"' in page.text
        assert "access-0" not in page.text
        stream = await client.get(f"/orgs/{fake.org_id}/live/stream")
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert "event: counts" in stream.text
    assert '"requests": 3' in stream.text
    assert fake.live_tokens == ["Bearer access-0"]


async def test_a_refused_or_unavailable_stream_is_a_status_to_retry_after() -> None:
    fake = FakeBackends(live_refused=True)
    async with console(fake) as client:
        await sign_in(client)
        refused = await client.get(f"/orgs/{fake.org_id}/live/stream")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "10"
        fake.down = {"usage"}
        down = await client.get(f"/orgs/{fake.org_id}/live/stream")
        assert down.status_code == 503


async def test_signed_out_the_stream_is_not_opened() -> None:
    fake = FakeBackends()
    async with console(fake) as client:
        answer = await client.get(f"/orgs/{fake.org_id}/live/stream")
    assert answer.status_code == 303
    assert not fake.live_tokens
