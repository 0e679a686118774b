"""Tenant isolation: every route taking an org id refuses another org's members."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from tollgate.kit.testing.tokens import TokenMint

from .factories import api_client, migrated, settings_for

READS = (
    "balance",
    "billing-settings",
    "transactions",
    "transactions/totals",
    "statements/2025-01",
)


async def test_other_tenants_get_nothing(database_factory: Callable[[str], str]) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    mine, theirs = uuid.uuid4(), uuid.uuid4()
    me = mint.headers(orgs={mine: "owner"})
    admin = mint.headers(admin=True)
    async with api_client(settings, mint) as (client, _):
        r = await client.post(
            f"/v1/orgs/{theirs}/credits",
            json={"amount": 77},
            headers={**admin, "Idempotency-Key": "theirs"},
        )
        assert r.status_code == 201
        for route in READS:
            assert (await client.get(f"/v1/orgs/{mine}/{route}", headers=me)).status_code == 200
            other = await client.get(f"/v1/orgs/{theirs}/{route}", headers=me)
            assert other.status_code == 404, route
            assert other.headers["content-type"] == "application/problem+json"
            assert "balance" not in other.json()
            assert "items" not in other.json()
            assert (await client.get(f"/v1/orgs/{theirs}/{route}")).status_code == 401
        patch = await client.patch(
            f"/v1/orgs/{theirs}/billing-settings", json={"low_threshold": 1}, headers=me
        )
        assert patch.status_code == 404
        for route, body in (
            ("credits", {"amount": 1}),
            ("adjustments", {"amount": 1, "reason": "x"}),
        ):
            for org in (mine, theirs):  # owners may not credit even their own org
                r = await client.post(
                    f"/v1/orgs/{org}/{route}", json=body, headers={**me, "Idempotency-Key": "k"}
                )
                assert r.status_code == 403, route
        balance = (await client.get(f"/v1/orgs/{theirs}/balance", headers=admin)).json()
    assert balance["balance"] == 77
