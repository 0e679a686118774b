"""Balance and billing settings through the HTTP API."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from sqlalchemy import text

from tollgate.kit.db import create_engine
from tollgate.kit.testing.pages import check_list_contract
from tollgate.kit.testing.tokens import TokenMint

from ..factories import api_client, migrated, settings_for


async def test_unknown_org_reads_as_new_prepaid_account(
    database_factory: Callable[[str], str],
) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    org = uuid.uuid4()
    async with api_client(settings, mint) as (client, _):
        r = await client.get(f"/v1/orgs/{org}/balance", headers=mint.headers(orgs={org: "viewer"}))
    assert r.status_code == 200
    assert r.json() | {"updated_at": None} == {
        "org_id": str(org),
        "balance": 0,
        "status": "exhausted",
        "mode": "prepaid",
        "low_threshold": 1000,
        "reserve": 0,
        "version": 0,
        "updated_at": None,
    }


async def test_admins_page_through_every_orgs_balance_filtered_by_status(
    database_factory: Callable[[str], str],
) -> None:
    settings = settings_for(await migrated(database_factory("billing")))
    mint = TokenMint()
    admin = mint.headers(admin=True)
    rich, poor, empty = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with api_client(settings, mint) as (client, _):
        for org, amount in ((rich, 5000), (poor, 500)):
            r = await client.post(
                f"/v1/orgs/{org}/credits",
                json={"amount": amount},
                headers={**admin, "Idempotency-Key": f"seed-{org}"},
            )
            assert r.status_code == 201
        r = await client.patch(
            f"/v1/orgs/{empty}/billing-settings", json={"low_threshold": 10}, headers=admin
        )
        assert r.status_code == 200
        items = await check_list_contract(
            client,
            "/v1/balances",
            headers=admin,
            expected={str(rich), str(poor), str(empty)},
            key=lambda item: item["org_id"],
        )
        low = (await client.get("/v1/balances", params={"status": "low"}, headers=admin)).json()
        two = await client.get(
            "/v1/balances", params={"org_id": [str(rich), str(empty)]}, headers=admin
        )
        # An org owner, even of every listed org, is not an operator.
        owner = mint.headers(orgs={rich: "owner", poor: "owner", empty: "owner"})
        refused = await client.get("/v1/balances", headers=owner)
        anonymous = await client.get("/v1/balances")
        unknown = await client.get("/v1/balances", params={"status": "broke"}, headers=admin)
    by_org = {item["org_id"]: (item["balance"], item["status"]) for item in items}
    assert by_org == {
        str(rich): (5000, "ok"),
        str(poor): (500, "low"),
        str(empty): (0, "exhausted"),
    }
    assert [item["org_id"] for item in low["items"]] == [str(poor)]
    assert {item["org_id"] for item in two.json()["items"]} == {str(rich), str(empty)}
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "items" not in refused.json()
    assert anonymous.status_code == 401
    assert unknown.status_code == 422


async def test_settings_owner_sets_threshold_admin_sets_mode(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("billing"))
    settings = settings_for(url)
    mint = TokenMint()
    org = uuid.uuid4()
    owner = mint.headers(orgs={org: "owner"})
    developer = mint.headers(orgs={org: "developer"})
    admin = mint.headers(admin=True)
    path = f"/v1/orgs/{org}/billing-settings"
    async with api_client(settings, mint) as (client, _):
        assert (
            await client.patch(path, json={"low_threshold": 5}, headers=developer)
        ).status_code == 403
        assert (
            await client.patch(path, json={"mode": "postpaid"}, headers=owner)
        ).status_code == 403
        assert (
            await client.patch(path, json={"low_threshold": 5}, headers=owner)
        ).status_code == 200
        r = await client.patch(path, json={"mode": "postpaid", "reserve": 10}, headers=admin)
        assert r.json() == {
            "org_id": str(org),
            "mode": "postpaid",
            "low_threshold": 5,
            "reserve": 10,
        }
        assert (
            await client.patch(path, json={"low_threshold": -1}, headers=owner)
        ).status_code == 422
        assert (await client.patch(path, json={"colour": "red"}, headers=owner)).status_code == 422
        got = (await client.get(path, headers=developer)).json()
        balance = (await client.get(f"/v1/orgs/{org}/balance", headers=developer)).json()
    assert got["mode"] == "postpaid"
    assert (balance["status"], balance["mode"]) == ("exhausted", "postpaid")
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            versions = (
                (
                    await conn.execute(
                        text(
                            "SELECT (convert_from(value, 'UTF8')::json->'data'->>'version')::int "
                            "FROM outbox WHERE topic = 'tollgate.billing.balances.v1' ORDER BY id"
                        )
                    )
                )
                .scalars()
                .all()
            )
        assert versions == [1, 2], "each settings change publishes the state, versions rising"
    finally:
        await engine.dispose()
