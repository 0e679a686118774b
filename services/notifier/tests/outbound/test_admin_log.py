"""The operator's outbound SMS log (`GET /v1/admin/sms/sent`): every org's messages,
newest first, filtered by org and status, paged with the kit's cursors; platform
admins only."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import text, update

from tollgate.notifier.models import SmsOutbound

from .test_send import ORG_A, ORG_B, Env, environment, send


async def _all_pages(env: Env, query: str, limit: int) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    cursor = ""
    while True:
        url = f"/v1/admin/sms/sent?limit={limit}{query}{cursor}"
        answer = await env.client.get(url, headers=env.admin)
        assert answer.status_code == 200, answer.text
        pages.append(answer.json()["items"])
        if answer.json()["next_cursor"] is None:
            return pages
        cursor = f"&cursor={answer.json()['next_cursor']}"


async def test_operators_read_every_orgs_messages_by_org_and_status(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        sent: dict[uuid.UUID, list[str]] = {ORG_A: [], ORG_B: []}
        for org, count in ((ORG_A, 3), (ORG_B, 2)):
            for n in range(count):
                env.clock.advance(seconds=1)
                answer = await send(env, org, text=f"message {n}")
                assert answer.status_code == 202, answer.text
                sent[org].append(answer.json()["id"])
        delivered = sent[ORG_B][0]
        async with env.sessions() as session, session.begin():
            await session.execute(
                update(SmsOutbound)
                .where(SmsOutbound.id == uuid.UUID(delivered))
                .values(status="delivered")
            )

        pages = await _all_pages(env, "", limit=2)
        assert [len(p) for p in pages] == [2, 2, 1]
        every = [m["id"] for p in pages for m in p]
        newest_first = list(reversed(sent[ORG_A] + sent[ORG_B]))
        assert every == newest_first
        first = pages[0][0]
        assert first["org_id"] == str(ORG_B)
        assert {"to", "from", "status", "segments", "price", "queued_at"} <= first.keys()

        only_a = [m for p in await _all_pages(env, f"&org_id={ORG_A}", limit=2) for m in p]
        assert [m["id"] for m in only_a] == list(reversed(sent[ORG_A]))
        assert {m["org_id"] for m in only_a} == {str(ORG_A)}

        by_status = await _all_pages(env, "&status=delivered", limit=50)
        assert [m["id"] for m in by_status[0]] == [delivered]
        # The other tenant's id as a filter: none of B's messages leak into A's view.
        assert await _all_pages(env, f"&org_id={ORG_A}&status=delivered", limit=50) == [[]]
        assert await _all_pages(env, f"&org_id={uuid.uuid4()}", limit=50) == [[]]


async def test_the_operators_log_is_for_platform_admins_only(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        assert (await send(env, ORG_A)).status_code == 202
        owner = env.mint.headers(orgs={ORG_A: "owner"})
        refused = await env.client.get("/v1/admin/sms/sent", headers=owner)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        filtered = await env.client.get(f"/v1/admin/sms/sent?org_id={ORG_A}", headers=owner)
        assert filtered.status_code == 403
        assert (await env.client.get("/v1/admin/sms/sent")).status_code == 401
        for query, slug in (
            ("cursor=bm90LWEtY3Vyc29y", "invalid-cursor"),
            ("status=lost", "validation"),
            ("org_id=acme", "validation"),
            ("limit=0", "validation"),
        ):
            bad = await env.client.get(f"/v1/admin/sms/sent?{query}", headers=env.admin)
            assert bad.status_code == 422, (query, bad.text)
            assert bad.json()["type"].endswith(slug), (query, bad.text)


async def test_every_orgs_log_is_read_in_index_order_without_sorting(
    database_factory: Callable[[str], str],
) -> None:
    """The operator's log of every org, on a keyset page: Postgres walks
    `ix_sms_outbound_queued` backwards from the cursor and stops at the limit, instead
    of sorting every matching message of the table for each page."""
    async with environment(database_factory) as env:
        for n in range(3):
            env.clock.advance(seconds=1)
            assert (await send(env, ORG_A, text=f"message {n}")).status_code == 202
        async with env.sessions() as session, session.begin():
            # A few rows are cheaper to sort than to read in order: ask whether it can
            # be done without sorting (a plan that cannot keeps its Sort).
            await session.execute(text("SET LOCAL enable_sort = off"))
            # `repository.sent_messages` without `org_id`: a page after a cursor.
            rows = await session.execute(
                text(
                    "EXPLAIN SELECT * FROM sms_outbound WHERE (queued_at, id) < (:at, :id) "
                    "ORDER BY queued_at DESC, id DESC LIMIT 50"
                ),
                {"at": env.clock.now(), "id": uuid.UUID(int=0)},
            )
            plan = "\n".join(row[0] for row in rows)
        assert "ix_sms_outbound_queued" in plan, plan
        assert "Sort" not in plan, plan
