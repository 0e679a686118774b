"""The notifier's audit records of updates say what changed: an org's notification
contacts before and after, a webhook endpoint's settings before and after (never its
secret), not only the body sent."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import text

from tollgate.contracts import topics
from tollgate.kit.db import create_engine
from tollgate.kit.testing.tokens import TokenMint

from .factories import FakeClock, api_client, migrated, settings_for


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
    records = await audit_records(url)
    assert [(r["diff"]["before"], r["diff"]["after"]) for r in records] == [
        ({"contacts": []}, {"contacts": first["contacts"]}),
        ({"contacts": first["contacts"]}, {"contacts": second["contacts"]}),
    ]


async def test_updating_an_endpoint_records_its_settings_before_and_after(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    mint, org = TokenMint(), uuid.uuid4()
    owner = mint.headers(orgs={org: "owner"})
    async with api_client(settings_for(url), mint, FakeClock()) as (client, _):
        created = await client.post(
            f"/v1/orgs/{org}/webhooks/endpoints",
            json={"url": "http://127.0.0.1:9/in", "description": "first"},
            headers=owner,
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        patched = await client.patch(
            f"/v1/orgs/{org}/webhooks/endpoints/{created.json()['id']}",
            json={"description": "second", "enabled": False, "url": "http://127.0.0.1:9/in"},
            headers=owner,
        )
        assert patched.status_code == 200, patched.text
    [update] = [r for r in await audit_records(url) if r["action"] == "notifier.update_endpoint"]
    assert update["diff"]["before"] == {
        "description": "first",
        "enabled": True,
        "disabled_reason": None,
    }
    assert update["diff"]["after"] == {
        "description": "second",
        "enabled": False,
        "disabled_reason": "manual",
    }
    assert secret not in orjson.dumps(update).decode()


async def audit_records(url: str) -> list[dict[str, Any]]:
    """The `data` of the audit records in the outbox, oldest first."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT value FROM outbox WHERE topic = :t ORDER BY id"),
                {"t": topics.AUDIT_RECORDS.name},
            )
            return [orjson.loads(row.value)["data"] for row in rows]
    finally:
        await engine.dispose()
