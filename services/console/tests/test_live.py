"""The live tail in process: the console relays usage's SSE stream with the user's
token, which never reaches the page."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack

from aiohttp import web

from tollgate.console.backends import Backends, LiveStreamsFull
from tollgate.console.config import Settings
from tollgate.kit.localdeps import free_port
from tollgate.kit.testing.loopback import serving

from .fakes import FakeBackends, console, log_body, sign_in


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


async def test_the_chart_and_the_list_show_the_same_traffic_mode() -> None:
    # Before: the chart counted live traffic (usage's default) and the list asked for
    # mode=all, so test calls showed in the list but never in the chart.
    fake = FakeBackends()
    fake.log_items = [log_body(None, "/live-call"), log_body(None, "/test-call", mode="test")]
    async with console(fake) as client:
        await sign_in(client)
        live = await client.get(f"/orgs/{fake.org_id}/live")
        test = await client.get(f"/orgs/{fake.org_id}/live", params={"mode": "test"})
        lists = []
        for page in (live, test):
            url = page.text.split('id="results" hx-get="', 1)[1].split('"', 1)[0]
            listed = await client.get(url.replace("&amp;", "&"), headers={"hx-request": "true"})
            lists.append(listed.text)
        src = test.text.split('data-live-src="', 1)[1].split('"', 1)[0]
        await client.get(f"/orgs/{fake.org_id}/live/stream")
        await client.get(src)
    assert "/live-call" in lists[0]
    assert "/test-call" not in lists[0]
    assert "/test-call" in lists[1]
    assert "/live-call" not in lists[1]
    assert [p["mode"] for p in fake.live_params] == ["live", "test"]
    assert 'data-testid="mode-notice"' in test.text
    assert 'href="?mode=test" aria-current="true"' in test.text


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


async def test_above_the_cap_a_stream_is_refused_in_the_visitors_language() -> None:
    release = asyncio.Event()
    fake = FakeBackends(live_held=release)
    async with console(fake, live_streams_max=1) as client:
        await sign_in(client)
        stream = f"/orgs/{fake.org_id}/live/stream"
        held = asyncio.create_task(client.get(stream))
        try:
            await asyncio.wait_for(fake.live_opened.wait(), 5)  # open, and it stays open
            refused = await asyncio.wait_for(
                client.get(stream, headers={"accept-language": "zh-CN"}), 5
            )
            english = await asyncio.wait_for(client.get(stream), 5)
            keys = await client.get(f"/orgs/{fake.org_id}/keys")
        finally:
            release.set()
        assert (await held).status_code == 200
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "10"
    assert "打开的实时跟踪过多" in refused.text
    assert "Too many live tails are open" in english.text
    assert keys.status_code == 200
    assert len(fake.live_tokens) == 1  # the refused ones never reached usage


async def _endless_stream(request: web.Request) -> web.StreamResponse:
    answer = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await answer.prepare(request)
    while True:  # until the console goes away
        await answer.write(b"event: counts\ndata: {}\n\n")
        await asyncio.sleep(0.05)


async def _me(_request: web.Request) -> web.Response:
    me = {"id": str(uuid.uuid4()), "email": "dev@example.com", "name": "Dev", "locale": "en"}
    return web.json_response({**me, "is_admin": False, "totp_enabled": False, "orgs": []})


async def test_open_streams_leave_the_pages_connections_free() -> None:
    """100 open live tails took every connection of the pages' pool (100): every page
    then waited for one and said accounts was unavailable."""
    port = free_port()
    upstream = web.Application()
    upstream.router.add_get("/v1/usage/live", _endless_stream)
    upstream.router.add_get("/v1/auth/me", _me)
    base = f"http://127.0.0.1:{port}"
    backends = Backends(Settings(usage_url=base, accounts_url=base, backend_timeout_seconds=2))
    opened = refused = 0
    try:
        async with serving(upstream, port), AsyncExitStack() as streams:
            for _ in range(100):
                try:
                    await streams.enter_async_context(backends.live_counts("t", uuid.uuid4()))
                    opened += 1
                except LiveStreamsFull:
                    refused += 1
            me = await backends.me("t")
    finally:
        await backends.aclose()
    assert (opened, refused) == (50, 50)  # live_streams_max's default
    assert me.email == "dev@example.com"
