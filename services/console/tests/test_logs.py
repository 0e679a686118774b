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
