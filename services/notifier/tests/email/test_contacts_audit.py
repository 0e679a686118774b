"""The audit record of replacing an org's notification contacts says who was added
and removed: the list before and after, not only the body sent."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import orjson
from sqlalchemy import text

from tollgate.contracts import topics
from tollgate.kit.db import create_engine
from tollgate.kit.testing.tokens import TokenMint

from ..factories import FakeClock, api_client, migrated, settings_for


async def test_replacing_contacts_records_the_list_before_and_after(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    mint, org = TokenMint(), uuid.uuid4()
    owner = mint.headers(orgs={org: "owner"})
    path = f"/v1/orgs/{org}/notification-contacts"
    async with api_client(settings_for(url), mint, FakeClock()) as (client, _):
        first = {"contacts": [{"email": "ops@example.com", "locale": "en"}]}
        second = {"contacts": [{"email": "billing@example.com", "locale": "zh-CN"}]}
        for body in (first, second):
            assert (await client.put(path, json=body, headers=owner)).status_code == 200
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT value FROM outbox WHERE topic = :t ORDER BY id"),
                {"t": topics.AUDIT_RECORDS.name},
            )
            records = [orjson.loads(row.value)["data"] for row in rows]
    finally:
        await engine.dispose()
    assert [(r["diff"]["before"], r["diff"]["after"]) for r in records] == [
        ({"contacts": []}, {"contacts": first["contacts"]}),
        ({"contacts": first["contacts"]}, {"contacts": second["contacts"]}),
    ]
