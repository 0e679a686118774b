"""Routes of operations the imported OpenAPI document marks `x-internal` (the operation
or its whole path item) are the operators' business: org members reading `/v1/apis`,
`/v1/apis/{id}` and `…/routes` do not see them (path, method or operation id), as the
catalog's consumer document does not show them either; admins see every route. Before,
any member of any org read the paths and operation ids of every internal operation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..factories import Service, make_admin, make_api, make_org, running, settings_for, signup

DOCUMENT: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Billing", "version": "1"},
    "paths": {
        "/invoices": {
            "get": {"operationId": "listInvoices", "responses": {"200": {"description": "ok"}}},
            "delete": {
                "operationId": "purgeAllInvoices",
                "x-internal": True,
                "responses": {"204": {"description": "gone"}},
            },
        },
        "/ops/replay": {
            "x-internal": True,
            "post": {"operationId": "replayLedger", "responses": {"200": {"description": "ok"}}},
        },
    },
}
INTERNAL = {("DELETE", "/invoices"), ("POST", "/ops/replay")}
PUBLIC = {("GET", "/invoices")}


def _routes(api: dict[str, Any]) -> set[tuple[str, str]]:
    return {(r["method"], r["path_template"]) for r in api["routes"]}


async def _all_apis(svc: Service, headers: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 200}
    while True:
        page = (await svc.http.get("/v1/apis", params=params, headers=headers)).json()
        items += page["items"]
        if not page["next_cursor"]:
            return items
        params["cursor"] = page["next_cursor"]


async def test_members_do_not_see_routes_of_internal_operations(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        member = await signup(svc)
        await make_org(svc, member)
        api = await make_api(svc, admin)
        imported = await svc.http.post(
            f"/v1/apis/{api['id']}/openapi",
            content=json.dumps(DOCUMENT),
            headers={**admin.headers, "Content-Type": "application/json"},
        )
        assert imported.status_code == 200, imported.text
        # A `*` route under an internal path item is internal too.
        star = await svc.http.post(
            f"/v1/apis/{api['id']}/routes",
            json={"method": "*", "path_template": "/ops/replay"},
            headers=admin.headers,
        )
        assert star.status_code == 201, star.text

        one = await svc.http.get(f"/v1/apis/{api['id']}", headers=member.headers)
        assert one.status_code == 200
        assert _routes(one.json()) == PUBLIC
        mine = [a for a in await _all_apis(svc, member.headers) if a["id"] == api["id"]]
        assert [_routes(a) for a in mine] == [PUBLIC]
        routes = await svc.http.get(f"/v1/apis/{api['id']}/routes", headers=member.headers)
        assert {(r["method"], r["path_template"]) for r in routes.json()["items"]} == PUBLIC
        for body in (one.text, json.dumps(mine), routes.text):
            assert "purgeAllInvoices" not in body
            assert "replayLedger" not in body
            assert "/ops/replay" not in body

        everything = INTERNAL | PUBLIC | {("*", "/ops/replay")}
        as_admin = await svc.http.get(f"/v1/apis/{api['id']}", headers=admin.headers)
        assert _routes(as_admin.json()) == everything
        admin_routes = await svc.http.get(f"/v1/apis/{api['id']}/routes", headers=admin.headers)
        assert len(admin_routes.json()["items"]) == len(everything)


async def test_the_catalog_entry_tells_nothing_of_internal_operations(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Anonymous visitors: neither the tags nor the price of an internal operation show
    in the API's catalog entry (its consumer document already leaves them out)."""
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    document = json.loads(json.dumps(DOCUMENT))
    document["paths"]["/invoices"]["get"]["tags"] = ["invoices"]
    document["paths"]["/invoices"]["delete"]["tags"] = ["danger-zone"]
    document["paths"]["/ops/replay"]["post"]["tags"] = ["ledger-ops"]
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin, price=2)
        imported = await svc.http.post(
            f"/v1/apis/{api['id']}/openapi",
            content=json.dumps(document),
            headers={**admin.headers, "Content-Type": "application/json"},
        )
        assert imported.status_code == 200, imported.text
        for route in imported.json()["api"]["routes"]:
            if (route["method"], route["path_template"]) in INTERNAL:
                priced = await svc.http.patch(
                    f"/v1/apis/{api['id']}/routes/{route['id']}",
                    json={"price": 999},
                    headers=admin.headers,
                )
                assert priced.status_code == 200, priced.text

        entry = await svc.http.get(f"/v1/catalog/{api['slug']}")
        assert entry.status_code == 200, entry.text
        assert entry.json()["tags"] == ["invoices"]
        assert (entry.json()["price_low"], entry.json()["price_high"]) == (2, 2)
        listed = await svc.http.get("/v1/catalog")
        mine = [a for a in listed.json()["items"] if a["id"] == api["id"]]
        assert [(a["tags"], a["price_high"]) for a in mine] == [(["invoices"], 2)]
