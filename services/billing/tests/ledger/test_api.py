"""Top-ups, adjustments and the transactions list through the HTTP API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from sqlalchemy import text

from tollgate.billing.ledger import service as ledger
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.testing.pages import check_list_contract
from tollgate.kit.testing.tokens import TokenMint

from ..factories import api_client, fund, migrated, outbox_types, request_event, settings_for


async def test_top_up_is_idempotent_per_key_and_body(
    database_factory: Callable[[str], str],
) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    admin = mint.headers(admin=True)
    org = uuid.uuid4()
    async with api_client(settings, mint) as (client, _):
        url = f"/v1/orgs/{org}/credits"
        first = await client.post(
            url, json={"amount": 500}, headers={**admin, "Idempotency-Key": "a"}
        )
        again = await client.post(
            url, json={"amount": 500}, headers={**admin, "Idempotency-Key": "a"}
        )
        other = await client.post(
            url, json={"amount": 7}, headers={**admin, "Idempotency-Key": "a"}
        )
        missing = await client.post(url, json={"amount": 500}, headers=admin)
        second = await client.post(
            url, json={"amount": 5}, headers={**admin, "Idempotency-Key": "b"}
        )
        balance = await client.get(f"/v1/orgs/{org}/balance", headers=admin)

    assert first.status_code == 201, first.text
    assert first.json()["balance_after"] == 500
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert missing.status_code == 400
    assert second.json()["balance_after"] == 505
    assert balance.json()["balance"] == 505


async def test_a_key_reused_after_its_answer_expired_applies_nothing_and_says_so(
    database_factory: Callable[[str], str],
) -> None:
    # Before: a 500 (the ledger's unique key), once the stored answer was purged.
    url = await migrated(database_factory("billing"))
    settings = settings_for(url)
    mint = TokenMint()
    admin = {**mint.headers(admin=True), "Idempotency-Key": "monthly-grant"}
    org = uuid.uuid4()
    async with api_client(settings, mint) as (client, _):
        first = await client.post(f"/v1/orgs/{org}/credits", json={"amount": 500}, headers=admin)
        assert first.status_code == 201
        engine = create_engine(url)
        async with engine.begin() as conn:  # the retention passed: the answer is purged
            await conn.execute(text("DELETE FROM idempotency_keys"))
        await engine.dispose()
        again = await client.post(f"/v1/orgs/{org}/credits", json={"amount": 500}, headers=admin)
        balance = await client.get(f"/v1/orgs/{org}/balance", headers=admin)
    assert again.status_code == 422
    assert again.json()["type"].endswith("/idempotency-key-reused")
    assert balance.json()["balance"] == 500


async def test_hundred_concurrent_top_ups_with_one_key_apply_once(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url)
    mint = TokenMint()
    headers = {**mint.headers(admin=True), "Idempotency-Key": "same-key-100"}
    org = uuid.uuid4()
    async with api_client(settings, mint) as (client, _):
        replies = await asyncio.gather(
            *(
                client.post(f"/v1/orgs/{org}/credits", json={"amount": 250}, headers=headers)
                for _ in range(100)
            )
        )
    assert {r.status_code for r in replies} == {201}
    assert len({r.content for r in replies}) == 1, "replies differ"
    assert sum(1 for r in replies if "idempotent-replayed" not in r.headers) == 1
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            entries = await conn.scalar(text("SELECT count(*) FROM ledger_entries"))
            balance = await conn.scalar(text("SELECT balance FROM accounts"))
        assert (entries, balance) == (1, 250)
        assert await outbox_types(engine, "tollgate.billing.events.v1") == [
            "tollgate.billing.credits.topped_up.v1"
        ]
    finally:
        await engine.dispose()


async def test_adjustments_check_sign_and_admin(database_factory: Callable[[str], str]) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    org = uuid.uuid4()
    admin = mint.headers(admin=True)
    owner = mint.headers(orgs={org: "owner"})

    async def adjust(body: dict[str, object], key: str, who: dict[str, str]) -> int:
        r = await client.post(
            f"/v1/orgs/{org}/adjustments", json=body, headers={**who, "Idempotency-Key": key}
        )
        return r.status_code

    async with api_client(settings, mint) as (client, _):
        assert (
            await adjust({"amount": 100, "kind": "refund", "reason": "outage"}, "1", admin) == 201
        )
        assert (
            await adjust({"amount": -30, "kind": "expiry", "reason": "year end"}, "2", admin) == 201
        )
        assert await adjust({"amount": -5, "reason": "fix"}, "3", admin) == 201
        assert await adjust({"amount": -5, "kind": "refund", "reason": "x"}, "4", admin) == 422
        assert await adjust({"amount": 5, "kind": "expiry", "reason": "x"}, "5", admin) == 422
        assert await adjust({"amount": 0, "reason": "x"}, "6", admin) == 422
        assert await adjust({"amount": 5, "reason": "x"}, "7", owner) == 403
        balance = (await client.get(f"/v1/orgs/{org}/balance", headers=owner)).json()
    assert balance["balance"] == 65


async def test_transactions_pages_and_filters(database_factory: Callable[[str], str]) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    org = uuid.uuid4()
    admin = mint.headers(admin=True)
    viewer = mint.headers(orgs={org: "viewer"})
    async with api_client(settings, mint) as (client, _):
        for i in range(7):
            r = await client.post(
                f"/v1/orgs/{org}/credits",
                json={"amount": i + 1},
                headers={**admin, "Idempotency-Key": f"k{i}"},
            )
            assert r.status_code == 201
        r = await client.post(
            f"/v1/orgs/{org}/adjustments",
            json={"amount": -2, "reason": "fix"},
            headers={**admin, "Idempotency-Key": "adj"},
        )
        assert r.status_code == 201
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 3, "kind": "top_up"}
            if cursor:
                params["cursor"] = cursor
            page = (
                await client.get(f"/v1/orgs/{org}/transactions", params=params, headers=viewer)
            ).json()
            seen += [item["amount"] for item in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        bad = await client.get(
            f"/v1/orgs/{org}/transactions", params={"cursor": "nope"}, headers=viewer
        )
        await check_list_contract(
            client,
            f"/v1/orgs/{org}/transactions",
            headers=viewer,
            params={"kind": "top_up"},
            expected=set(range(1, 8)),
            key=lambda item: item["amount"],
        )
        adjustments = (
            await client.get(
                f"/v1/orgs/{org}/transactions", params={"kind": "adjustment"}, headers=viewer
            )
        ).json()
    assert seen == [7, 6, 5, 4, 3, 2, 1]
    assert pages == 3
    assert bad.status_code == 422
    assert bad.json()["type"].endswith("/invalid-cursor")
    assert [(i["amount"], i["balance_after"]) for i in adjustments["items"]] == [(-2, 26)]


async def test_a_reason_with_a_nul_character_is_refused_and_nothing_is_written(
    database_factory: Callable[[str], str],
) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    admin = mint.headers(admin=True)
    org = uuid.uuid4()
    async with api_client(settings, mint) as (client, _):
        top_up = await client.post(
            f"/v1/orgs/{org}/credits",
            json={"amount": 5, "reason": "bad\x00reason"},
            headers={**admin, "Idempotency-Key": "nul-1"},
        )
        adjustment = await client.post(
            f"/v1/orgs/{org}/adjustments",
            json={"amount": -5, "reason": "\x00"},
            headers={**admin, "Idempotency-Key": "nul-2"},
        )
        balance = await client.get(f"/v1/orgs/{org}/balance", headers=admin)

    assert (top_up.status_code, adjustment.status_code) == (422, 422)
    assert top_up.headers["content-type"] == "application/problem+json"
    assert balance.json()["balance"] == 0


async def test_totals_add_up_each_kind_in_the_range_without_paging(
    database_factory: Callable[[str], str],
) -> None:
    """What the console's overview shows as "Credits used": every debit in the range
    (here two APIs' request batches), summed by billing, other kinds apart."""
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    org, other = uuid.uuid4(), uuid.uuid4()
    admin = mint.headers(admin=True)
    viewer = mint.headers(orgs={org: "viewer"})
    engine = create_engine(settings.database_url)
    sessions = session_maker(engine)
    try:
        async with api_client(settings, mint) as (client, _):
            await fund(sessions, settings, org, 1_000)
            await fund(sessions, settings, other, 1_000)
            events = [request_event(org, cost=3) for _ in range(4)]
            events += [request_event(org, cost=5, api_id=uuid.UUID(int=2)) for _ in range(2)]
            events.append(request_event(other, cost=100))
            async with sessions() as session, session.begin():
                await ledger.debit_for_requests(session, events, settings)
            r = await client.post(
                f"/v1/orgs/{org}/adjustments",
                json={"amount": -7, "reason": "fix", "kind": "expiry"},
                headers={**admin, "Idempotency-Key": "exp"},
            )
            assert r.status_code == 201, r.text
            url = f"/v1/orgs/{org}/transactions/totals"
            everything = await client.get(url, headers=viewer)
            future = await client.get(url, params={"since": "2999-01-01T00:00:00Z"}, headers=viewer)
            bad = await client.get(url, params={"since": "yesterday"}, headers=viewer)
    finally:
        await engine.dispose()
    assert everything.status_code == 200, everything.text
    kinds = {k["kind"]: k for k in everything.json()["kinds"]}
    assert kinds["debit"] == {"kind": "debit", "entries": 2, "amount": -22, "request_count": 6}
    assert kinds["top_up"]["amount"] == 1_000
    assert kinds["expiry"]["amount"] == -7
    assert set(kinds) == {"debit", "top_up", "expiry"}
    assert future.json() == {"kinds": []}
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
