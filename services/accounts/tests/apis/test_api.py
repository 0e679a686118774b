"""`/v1/apis`: the registry through HTTP; credentials sealed at rest and in the event,
never returned; routes; OpenAPI import; every change on the APIs topic."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from sqlalchemy import text

from tollgate.contracts import topics
from tollgate.contracts.events.accounts import ApiUpserted
from tollgate.kit.sealing import Sealer
from tollgate.kit.testing.pages import check_list_contract

from ..factories import (
    SEALING_KEY,
    events,
    make_admin,
    make_api,
    make_org,
    outbox_records,
    running,
    settings_for,
    signup,
)

PETSTORE = Path(__file__).resolve().parent.parent / "data" / "petstore.yaml"
SECRET = "Bearer upstream-secret-5f2a9c"


def upserts(evts: list) -> list[ApiUpserted]:  # type: ignore[type-arg]
    return [e.data for e in evts if isinstance(e.data, ApiUpserted)]


async def test_create_read_credentials_never_shown_and_sealed(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        member = await signup(svc)
        await make_org(svc, member)
        loner = await signup(svc)
        api = await make_api(
            svc,
            admin,
            upstream_headers={"Authorization": SECRET},
            price=3,
            charge_failed_calls=True,
            limits={"per_second": 100},
            routes=[
                {
                    "method": "GET",
                    "path_template": "/forecast/{city}",
                    "price": 5,
                    "required_scopes": ["weather:read"],
                }
            ],
        )
        assert SECRET not in json.dumps(api)
        assert api["has_upstream_credentials"] is True
        assert api["upstream_header_names"] == ["Authorization"]
        assert api["routes"][0]["price"] == 5

        for who in (admin, member):
            got = await svc.http.get(f"/v1/apis/{api['id']}", headers=who.headers)
            assert got.status_code == 200
            assert SECRET not in got.text
            listed = await svc.http.get("/v1/apis", headers=who.headers)
            assert api["id"] in [a["id"] for a in listed.json()["items"]]
        as_member = await svc.http.get(f"/v1/apis/{api['id']}", headers=member.headers)
        assert as_member.json()["upstream_header_names"] == []
        # Where the gateway sends calls is the operator's (any registered user with an
        # org is a member): before, members read the upstream URL.
        assert as_member.json()["upstream_url"] is None
        listed = (await svc.http.get("/v1/apis", headers=member.headers)).json()["items"]
        assert {a["upstream_url"] for a in listed} == {None}
        as_admin = await svc.http.get(f"/v1/apis/{api['id']}", headers=admin.headers)
        assert as_admin.json()["upstream_url"] == api["upstream_url"]
        assert (await svc.http.get("/v1/apis", headers=loner.headers)).status_code == 403
        assert (
            await svc.http.post(
                "/v1/apis",
                json={"slug": "x", "name": "x", "upstream_url": "https://93.184.215.14"},
                headers=member.headers,
            )
        ).status_code == 403

        async with svc.sessions() as session:
            stored = await session.scalar(
                text("SELECT upstream_headers_sealed FROM apis WHERE id = :id"),
                {"id": uuid.UUID(api["id"])},
            )
            assert stored is not None
            assert SECRET not in stored
            everything = await session.scalar(
                text("SELECT string_agg(t::text, '') FROM apis t WHERE id = :id"),
                {"id": uuid.UUID(api["id"])},
            )
            assert SECRET not in everything

        records = await outbox_records(svc, api["id"])
        assert records
        assert all(SECRET.encode() not in (value or b"") for _, value in records)
        state = upserts(await events(svc, api["id"]))[-1]
        assert state.upstream_headers_sealed is not None
        opened = json.loads(Sealer(SEALING_KEY).unseal(state.upstream_headers_sealed))
        assert opened == {"Authorization": SECRET}
        assert state.price == 3
        assert state.charge_failed_calls is True
        assert state.routes[0].required_scopes == ["weather:read"]
        assert state.version == 1


async def test_update_status_routes_and_delete(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin)
        url = f"/v1/apis/{api['id']}"
        deprecated = await svc.http.patch(
            url,
            json={"status": "deprecated", "sunset_at": "2030-01-01T00:00:00Z"},
            headers=admin.headers,
        )
        assert deprecated.status_code == 200
        assert deprecated.json()["deprecated_at"] is not None
        assert deprecated.json()["version"] == 2
        for bad in (
            {"slug": "other"},
            {"status": "gone"},
            {"timeout_ms": 0},
            {"price": -1},
            {"price": 1.5},
            {"upstream_url": "http://169.254.169.254/"},
            {"name": None},
            {"upstream_headers": {"Host": "x"}},
            {"upstream_headers": {"X-A": "a\r\nb"}},
        ):
            response = await svc.http.patch(url, json=bad, headers=admin.headers)
            assert response.status_code == 422, (bad, response.text)

        removed_creds = await svc.http.patch(
            url, json={"upstream_headers": {"X-Key": SECRET}}, headers=admin.headers
        )
        assert removed_creds.json()["has_upstream_credentials"] is True
        cleared = await svc.http.patch(url, json={"upstream_headers": None}, headers=admin.headers)
        assert cleared.json()["has_upstream_credentials"] is False
        assert upserts(await events(svc, api["id"]))[-1].upstream_headers_sealed is None

        route = await svc.http.post(
            f"{url}/routes",
            json={"method": "POST", "path_template": "/orders", "price": 10},
            headers=admin.headers,
        )
        assert route.status_code == 201
        dup = await svc.http.post(
            f"{url}/routes",
            json={"method": "POST", "path_template": "/orders"},
            headers=admin.headers,
        )
        assert dup.status_code == 409
        bad_route = await svc.http.post(
            f"{url}/routes",
            json={"method": "post", "path_template": "orders"},
            headers=admin.headers,
        )
        assert bad_route.status_code == 422
        route_id = route.json()["id"]
        patched = await svc.http.patch(
            f"{url}/routes/{route_id}",
            json={"price": None, "limits": {"per_minute": 10}},
            headers=admin.headers,
        )
        assert patched.json()["price"] is None
        assert patched.json()["limits"] == {"per_minute": 10}
        listed = await check_list_contract(
            svc.http, f"{url}/routes", headers=admin.headers, expected={route_id}, page_size=1
        )
        assert [r["id"] for r in listed] == [route_id]
        assert upserts(await events(svc, api["id"]))[-1].routes[0].limits.per_minute == 10
        assert (
            await svc.http.delete(f"{url}/routes/{route_id}", headers=admin.headers)
        ).status_code == 204
        # A retried delete reaches the same state: 204 again.
        assert (
            await svc.http.delete(f"{url}/routes/{route_id}", headers=admin.headers)
        ).status_code == 204

        versions = [u.version for u in upserts(await events(svc, api["id"]))]
        assert versions == sorted(versions)
        assert len(set(versions)) == len(versions)

        taken = await svc.http.post(
            "/v1/apis",
            json={"slug": api["slug"], "name": "x", "upstream_url": "https://93.184.215.14"},
            headers=admin.headers,
        )
        assert taken.status_code == 409
        private = await svc.http.post(
            "/v1/apis",
            json={"slug": "private-one", "name": "x", "upstream_url": "http://2130706433:8080"},
            headers=admin.headers,
        )
        assert private.status_code == 422
        assert (await svc.http.delete(url, headers=admin.headers)).status_code == 204
        assert (await outbox_records(svc, api["id"]))[-1] == (topics.ACCOUNTS_APIS.name, None)
        assert (await svc.http.get(url, headers=admin.headers)).status_code == 404
        assert (await svc.http.delete(url, headers=admin.headers)).status_code == 204
        # ... without a second tombstone
        assert [r for r in await outbox_records(svc, api["id"]) if r[1] is None] == [
            (topics.ACCOUNTS_APIS.name, None)
        ]


async def test_local_runs_may_use_a_loopback_upstream(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        allow_private_upstreams=True,
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin, upstream_url="http://127.0.0.1:9000")
        assert api["upstream_url"] == "http://127.0.0.1:9000"
        metadata = await svc.http.post(
            "/v1/apis",
            json={"slug": "meta", "name": "x", "upstream_url": "http://169.254.169.254"},
            headers=admin.headers,
        )
        assert metadata.status_code == 422


async def test_petstore_import_creates_routes_and_keeps_the_document(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        member = await signup(svc)
        await make_org(svc, member)
        api = await make_api(svc, admin, name="Petstore")
        url = f"/v1/apis/{api['id']}/openapi"
        assert (await svc.http.get(url, headers=admin.headers)).status_code == 404
        imported = await svc.http.post(
            url,
            content=PETSTORE.read_bytes(),
            headers={**admin.headers, "Content-Type": "application/yaml"},
        )
        assert imported.status_code == 200, imported.text
        assert imported.json()["created"] == 3
        routes = {(r["method"], r["path_template"]) for r in imported.json()["api"]["routes"]}
        assert routes == {("GET", "/pets"), ("POST", "/pets"), ("GET", "/pets/{petId}")}
        state = upserts(await events(svc, api["id"]))[-1]
        assert {(r.method, r.path_template) for r in state.routes} == routes

        doc = await svc.http.get(url, headers=admin.headers)
        assert doc.json()["info"]["title"] == "Swagger Petstore"
        # Members read the catalog's document, without what the import marks internal.
        assert (await svc.http.get(url, headers=member.headers)).status_code == 403

        again = await svc.http.post(
            url,
            content=json.dumps(doc.json()),
            headers={**admin.headers, "Content-Type": "application/json"},
        )
        assert again.json()["created"] == 0
        assert again.json()["kept"] == 3
        smaller = doc.json()
        del smaller["paths"]["/pets/{petId}"]
        replaced = await svc.http.post(
            url,
            params={"replace": "true"},
            content=json.dumps(smaller),
            headers={**admin.headers, "Content-Type": "application/json"},
        )
        assert replaced.json()["removed"] == 1
        assert len(replaced.json()["api"]["routes"]) == 2

        invalid = await svc.http.post(
            url,
            content=b"swagger: '2.0'",
            headers={**admin.headers, "Content-Type": "application/yaml"},
        )
        assert invalid.status_code == 422
        by_member = await svc.http.post(url, content=PETSTORE.read_bytes(), headers=member.headers)
        assert by_member.status_code == 403


async def test_an_import_whose_event_kafka_would_refuse_changes_nothing(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    # Before: the routes were created and their API event (1.6 MB here) written to the
    # outbox, which Kafka refused for ever: every later accounts event (key
    # revocations among them) stayed unpublished behind it.
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    scopes = [f"https://api.example.com/auth/scope-number-{n:02d}.readonly" for n in range(50)]
    document = {
        "openapi": "3.0.3",
        "info": {"title": "Big", "version": "1"},
        "security": [{"oauth": scopes}],
        "paths": {f"/things/{n}": {"get": {}} for n in range(600)},
    }
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin)
        refused = await svc.http.post(
            f"/v1/apis/{api['id']}/openapi",
            content=json.dumps(document),
            headers={**admin.headers, "Content-Type": "application/json"},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["type"].endswith("/event-too-large")
        after = await svc.http.get(f"/v1/apis/{api['id']}", headers=admin.headers)
        assert after.json()["routes"] == []


async def test_deeply_nested_documents_are_refused_with_a_problem_not_a_crash(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin)
        url = f"/v1/apis/{api['id']}/openapi"
        deep_json = (
            b'{"openapi": "3.0.0", "paths": {}, "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        )
        deep_flow = b"openapi: 3.0.0\npaths: {}\nx: " + b"[" * 50_000 + b"]" * 50_000
        deep_block = b"openapi: 3.0.0\npaths: {}\nx:\n" + b"".join(
            b" " * (i + 1) + b"a:\n" for i in range(1_000)
        )
        # Any JSON body of the service is refused before parsing by the kit (400).
        as_json = await svc.http.post(
            url, content=deep_json, headers={**admin.headers, "Content-Type": "application/json"}
        )
        assert as_json.status_code == 400
        assert as_json.headers["content-type"] == "application/problem+json"
        # A document the import parses itself (YAML, or JSON sent as YAML) is a 422.
        bombs = {
            "application/yaml": deep_flow,
            "application/x-yaml": deep_block,
            "text/plain": deep_json,
        }
        for content_type, body in bombs.items():
            refused = await svc.http.post(
                url, content=body, headers={**admin.headers, "Content-Type": content_type}
            )
            assert refused.status_code == 422, (content_type, refused.text[:200])
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["type"].endswith("/invalid-openapi")
            assert "nested deeper than 64 levels" in refused.json()["detail"]
        assert (await svc.http.get(url, headers=admin.headers)).status_code == 404
