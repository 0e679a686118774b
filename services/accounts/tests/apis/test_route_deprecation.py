"""Operation-level deprecation in the registry: a route is marked `deprecated` with an
optional future `sunset_at` (admins only), by hand or by an imported document's
`deprecated: true`, and every gateway learns it from `ApiUpserted`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tollgate.contracts.events.accounts import ApiUpserted, RouteSpec

from ..factories import events, make_admin, make_api, make_org, settings_for, signup
from ..factories import running as running_accounts


async def last_routes(svc: Any, api_id: str) -> dict[tuple[str, str], RouteSpec]:
    """The routes of the API's latest `ApiUpserted`, by (method, path)."""
    states = [e.data for e in await events(svc, api_id) if isinstance(e.data, ApiUpserted)]
    return {(r.method, r.path_template): r for r in states[-1].routes}


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def test_routes_are_deprecated_with_a_future_sunset_by_admins_only(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    sunset = (datetime.now(UTC) + timedelta(days=90)).replace(microsecond=0)
    past = iso(datetime.now(UTC) - timedelta(minutes=1))
    async with running_accounts(settings) as svc:
        admin = await make_admin(svc)
        owner = await signup(svc)
        await make_org(svc, owner)
        api = await make_api(
            svc,
            admin,
            routes=[
                {
                    "method": "GET",
                    "path_template": "/v1/forecast",
                    "deprecated": True,
                    "sunset_at": iso(sunset),
                },
                {"method": "GET", "path_template": "/v2/forecast"},
            ],
        )
        url = f"/v1/apis/{api['id']}"
        old, new = sorted(api["routes"], key=lambda r: r["path_template"])
        assert (old["deprecated"], old["sunset_at"]) == (True, iso(sunset))
        assert old["deprecated_at"] is not None
        assert (new["deprecated"], new["deprecated_at"], new["sunset_at"]) == (False, None, None)
        published = await last_routes(svc, api["id"])
        assert published[("GET", "/v1/forecast")].deprecated is True
        assert published[("GET", "/v1/forecast")].sunset_at == sunset
        assert published[("GET", "/v2/forecast")].deprecated is False

        # A Sunset in the past (or now) would retire the route the moment it is saved.
        for bad in (
            {"method": "GET", "path_template": "/x", "sunset_at": past},
            {"method": "GET", "path_template": "/x", "sunset_at": "2099-01-01T00:00:00"},
            {"method": "GET", "path_template": "/x", "deprecated": "true"},
            {"method": "GET", "path_template": "/x", "deprecated": 1},
        ):
            refused = await svc.http.post(f"{url}/routes", json=bad, headers=admin.headers)
            assert refused.status_code == 422, (bad, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
        in_past = await svc.http.post(
            f"{url}/routes",
            json={"method": "GET", "path_template": "/x", "sunset_at": past},
            headers=admin.headers,
        )
        assert in_past.json()["type"].endswith("/sunset-in-past")
        created_past = await svc.http.post(
            "/v1/apis",
            json={
                "slug": "past-sunset",
                "name": "x",
                "upstream_url": "https://93.184.215.14",
                "routes": [{"method": "GET", "path_template": "/x", "sunset_at": past}],
            },
            headers=admin.headers,
        )
        assert created_past.json()["type"].endswith("/sunset-in-past")

        route_url = f"{url}/routes/{new['id']}"
        later = sunset + timedelta(days=30)
        for bad_patch in ({"sunset_at": past}, {"deprecated": None}, {"deprecated": "yes"}):
            response = await svc.http.patch(route_url, json=bad_patch, headers=admin.headers)
            assert response.status_code == 422, (bad_patch, response.text)
        # Routes are admin-only: an org owner and a user without an org are refused.
        for who in (owner, await signup(svc)):
            response = await svc.http.patch(
                route_url, json={"deprecated": True}, headers=who.headers
            )
            assert response.status_code == 403
        other_api = await make_api(svc, admin)
        elsewhere = await svc.http.patch(
            f"/v1/apis/{other_api['id']}/routes/{new['id']}",
            json={"deprecated": True},
            headers=admin.headers,
        )
        assert elsewhere.status_code == 404
        assert elsewhere.json()["type"].endswith("/route-not-found")

        marked = await svc.http.patch(
            route_url, json={"deprecated": True, "sunset_at": iso(later)}, headers=admin.headers
        )
        assert marked.status_code == 200, marked.text
        assert marked.json()["deprecated"] is True
        assert marked.json()["sunset_at"] == iso(later)
        deprecated_at = datetime.fromisoformat(marked.json()["deprecated_at"])
        assert abs(deprecated_at - datetime.now(UTC)) < timedelta(minutes=1)
        # Persisted: the next read, and the state every gateway replays.
        listed = await svc.http.get(f"{url}/routes", headers=admin.headers)
        stored = {r["id"]: r for r in listed.json()["items"]}[new["id"]]
        assert (stored["deprecated"], stored["sunset_at"]) == (True, iso(later))
        spec = (await last_routes(svc, api["id"]))[("GET", "/v2/forecast")]
        assert (spec.deprecated, spec.deprecated_at, spec.sunset_at) == (
            True,
            deprecated_at,
            later,
        )
        # The portal's docs (the consumer document, read anonymously) say so too.
        docs = await svc.http.get(f"/v1/catalog/{api['slug']}/openapi")
        assert docs.status_code == 200, docs.text
        operation = docs.json()["paths"]["/v2/forecast"]["get"]
        assert (operation["deprecated"], operation["x-sunset"]) == (True, later.isoformat())
        # Changing the date keeps the Deprecation date; null removes the Sunset.
        no_date = await svc.http.patch(route_url, json={"sunset_at": None}, headers=admin.headers)
        assert no_date.json()["sunset_at"] is None
        assert no_date.json()["deprecated_at"] == marked.json()["deprecated_at"]
        undone = await svc.http.patch(route_url, json={"deprecated": False}, headers=admin.headers)
        assert (undone.json()["deprecated"], undone.json()["deprecated_at"]) == (False, None)
        spec = (await last_routes(svc, api["id"]))[("GET", "/v2/forecast")]
        assert (spec.deprecated, spec.deprecated_at, spec.sunset_at) == (False, None, None)


def petstore(deprecated: set[tuple[str, str]]) -> dict[str, Any]:
    operations = {("get", "/pets"), ("post", "/pets"), ("get", "/pets/{petId}")}
    paths: dict[str, Any] = {}
    for method, path in sorted(operations):
        operation: dict[str, Any] = {"responses": {"200": {"description": "ok"}}}
        if (method, path) in deprecated:
            operation["deprecated"] = True
        paths.setdefault(path, {})[method] = operation
    return {"openapi": "3.0.3", "info": {"title": "Pets", "version": "1"}, "paths": paths}


async def test_an_imported_document_deprecates_its_deprecated_operations(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running_accounts(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin, name="Pets")
        url = f"/v1/apis/{api['id']}/openapi"

        async def imported(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
            response = await svc.http.post(
                url,
                content=json.dumps(doc),
                headers={**admin.headers, "Content-Type": "application/json"},
            )
            assert response.status_code == 200, response.text
            routes = response.json()["api"]["routes"]
            return {(r["method"], r["path_template"]): r for r in routes}

        first = await imported(petstore({("post", "/pets")}))
        assert first[("POST", "/pets")]["deprecated"] is True
        assert first[("POST", "/pets")]["deprecated_at"] is not None
        assert first[("GET", "/pets")]["deprecated"] is False
        assert (await last_routes(svc, api["id"]))[("POST", "/pets")].deprecated is True

        # A later version deprecates an existing operation (its route keeps its id) ...
        second = await imported(petstore({("post", "/pets"), ("get", "/pets/{petId}")}))
        assert second[("GET", "/pets/{petId}")]["deprecated"] is True
        assert second[("GET", "/pets/{petId}")]["id"] == first[("GET", "/pets/{petId}")]["id"]
        assert (
            second[("POST", "/pets")]["deprecated_at"] == first[("POST", "/pets")]["deprecated_at"]
        )
        # ... and the changelog lists the newly deprecated operation as changed.
        changelog = await svc.http.get(f"/v1/apis/{api['id']}/changelog", headers=admin.headers)
        latest = changelog.json()["items"][0]["changes"]
        assert [(c["kind"], c["method"], c["path"]) for c in latest] == [
            ("changed", "GET", "/pets/{petId}")
        ]
        # A document without the mark never un-deprecates a route: an admin does.
        third = await imported(petstore(set()))
        assert third[("POST", "/pets")]["deprecated"] is True
