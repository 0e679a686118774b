"""`/v1/catalog`: anyone reads the active and deprecated APIs and their consumer documents,
never an upstream host, credential, credential header name, sandbox URL or internal route;
`public_catalog = false` closes it to everyone but org members and admins."""

from __future__ import annotations

import copy
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from tollgate.accounts.apis.openapi_import import parse_document
from tollgate.accounts.models import ApiChangelogEntry
from tollgate.contracts.ids import uuid7
from tollgate.kit.testing.pages import check_list_contract

from ..factories import make_admin, make_api, make_org, running, settings_for, signup

PETSTORE = Path(__file__).resolve().parent.parent / "data" / "petstore.yaml"
UPSTREAM = "https://93.184.215.14/petstore-upstream"
SANDBOX = "https://93.184.215.15/petstore-sandbox"
SECRET = "upstream-secret-7e41"


async def test_anyone_reads_the_catalog_without_upstream_or_credentials(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        gateway_url="https://gateway.example.com",
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        pets = await make_api(
            svc,
            admin,
            name="Petstore",
            upstream_url=UPSTREAM,
            sandbox_url=SANDBOX,
            price=2,
            upstream_headers={"X-Upstream-Token": SECRET},
        )
        imported = await svc.http.post(
            f"/v1/apis/{pets['id']}/openapi",
            content=PETSTORE.read_bytes(),
            headers={**admin.headers, "content-type": "application/yaml"},
        )
        assert imported.status_code == 200, imported.text
        old = await make_api(svc, admin, name="Old weather")
        sunset = {"status": "deprecated", "sunset_at": "2030-01-01T00:00:00Z"}
        patched = await svc.http.patch(f"/v1/apis/{old['id']}", json=sunset, headers=admin.headers)
        assert patched.status_code == 200, patched.text
        gone = await make_api(svc, admin, name="Gone")
        retired = {"status": "retired"}
        patched = await svc.http.patch(
            f"/v1/apis/{gone['id']}", json=retired, headers=admin.headers
        )
        assert patched.status_code == 200, patched.text

        listed = await svc.http.get("/v1/catalog")
        one = await svc.http.get(f"/v1/catalog/{pets['slug']}")
        document = await svc.http.get(f"/v1/catalog/{pets['slug']}/openapi")
        chinese = await svc.http.get(
            f"/v1/catalog/{pets['slug']}/openapi", params={"lang": "zh-Hans"}
        )
        klingon = await svc.http.get(f"/v1/catalog/{pets['slug']}/openapi", params={"lang": "tlh"})
        retired_one = await svc.http.get(f"/v1/catalog/{gone['slug']}")
        unknown = await svc.http.get("/v1/catalog/no-such-api/openapi")

    assert listed.status_code == one.status_code == document.status_code == 200
    by_slug = {a["slug"]: a for a in listed.json()["items"]}
    assert pets["slug"] in by_slug
    assert old["slug"] in by_slug
    assert gone["slug"] not in by_slug
    entry = by_slug[pets["slug"]]
    assert entry == one.json()
    assert entry["name"] == "Petstore"
    assert entry["tags"] == ["pets"]
    assert entry["price"] == 2
    assert by_slug[old["slug"]]["status"] == "deprecated"
    assert by_slug[old["slug"]]["sunset_at"].startswith("2030-01-01")
    assert document.json()["servers"] == [
        {"url": f"https://gateway.example.com/{pets['slug']}", "description": "Tollgate gateway"}
    ]
    assert document.json()["paths"]
    # The Chinese portal's document: Tollgate's words in Chinese, the same operations.
    assert chinese.json()["servers"][0]["description"] == "Tollgate 网关"
    assert chinese.json()["paths"].keys() == document.json()["paths"].keys()
    assert klingon.status_code == 422
    assert klingon.headers["content-type"].startswith("application/problem+json")
    for answer in (listed, one, document):
        for hidden in ("93.184.215", "petstore.swagger.io", SECRET, "X-Upstream-Token"):
            assert hidden.lower() not in answer.text.lower(), (answer.url, hidden)
    assert retired_one.status_code == unknown.status_code == 404
    assert unknown.json()["type"].endswith("/api-not-found")


async def test_a_closed_catalog_answers_members_only(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        public_catalog=False,
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin)
        member, loner = await signup(svc), await signup(svc)
        await make_org(svc, member)
        anonymous = await svc.http.get(f"/v1/catalog/{api['slug']}/openapi")
        outsider = await svc.http.get("/v1/catalog", headers=loner.headers)
        allowed = await svc.http.get("/v1/catalog", headers=member.headers)

    assert anonymous.status_code == 401
    assert outsider.status_code == 403
    assert allowed.status_code == 200
    assert api["slug"] in {a["slug"] for a in allowed.json()["items"]}


async def test_anyone_reads_the_changelog_of_what_customers_can_call(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(
            svc,
            admin,
            name="Petstore",
            api_version="2.0.0",
            upstream_headers={"X-Upstream-Token": SECRET},
        )
        v1 = parse_document(PETSTORE.read_bytes())
        v1["paths"]["/admin/purge"] = {
            "x-internal": True,
            "post": {"responses": {"204": {"description": "purged"}}},
        }
        v1["paths"]["/pets/{petId}"]["get"]["x-internal"] = True
        v2 = copy.deepcopy(v1)
        del v2["paths"]["/pets"]["post"]  # public: shown as removed
        v2["paths"]["/admin/purge"]["post"]["parameters"] = [  # internal: hidden
            {"name": "force", "in": "query", "required": True, "schema": {"type": "string"}}
        ]
        v2["paths"]["/pets/{petId}"]["get"]["parameters"].append(  # internal operation
            {"name": "vet", "in": "query", "required": True, "schema": {"type": "string"}}
        )
        v2["paths"]["/pets"]["get"]["parameters"] += [
            {"name": "owner", "in": "query", "required": True, "schema": {"type": "string"}},
            # the upstream's credential header: its name never leaves accounts
            {
                "name": "X-Upstream-Token",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
            },
        ]
        for doc in (v1, v2):
            imported = await svc.http.post(
                f"/v1/apis/{api['id']}/openapi", content=json.dumps(doc), headers=admin.headers
            )
            assert imported.status_code == 200, imported.text

        entries = await check_list_contract(
            svc.http,
            f"/v1/catalog/{api['slug']}/changelog",
            headers={},
            expected={0, 2},
            key=lambda e: e["breaking"],
            page_size=1,
        )
        unknown = await svc.http.get("/v1/catalog/no-such-api/changelog")
        admin_view = await svc.http.get(f"/v1/apis/{api['id']}/changelog", headers=admin.headers)

    latest, first = entries
    assert [(c["rule"], c["method"], c["path"], c["name"]) for c in latest["changes"]] == [
        ("new-required-parameter", "GET", "/pets", "owner"),
        ("removed-operation", "POST", "/pets", None),
    ]
    assert latest["breaking"] == 2
    assert latest["api_version"] == "2.0.0"
    assert {(c["method"], c["path"]) for c in first["changes"]} == {
        ("GET", "/pets"),
        ("POST", "/pets"),
    }
    shown = json.dumps(entries).lower()
    for hidden in ("/admin/purge", "petid", "vet", "x-upstream-token", "upstream_url", '"version"'):
        assert hidden not in shown, hidden
    # The operators' changelog still has all of them: 4 + 5 changes against 2 + 2.
    assert sum(len(e["changes"]) for e in admin_view.json()["items"]) == 4 + 5
    assert unknown.status_code == 404


async def test_a_removed_internal_operation_never_reaches_anonymous_visitors(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin, name="Petstore")
        url = f"/v1/apis/{api['id']}"
        v1 = parse_document(PETSTORE.read_bytes())
        v1["paths"]["/admin/purge"] = {  # a path item marked internal
            "x-internal": True,
            "post": {"responses": {"204": {"description": "purged"}}},
        }
        v1["paths"]["/pets/{petId}"]["get"]["x-internal"] = True  # an operation marked so
        v1["paths"]["/ledger/rebuild"] = {  # public in the document, but its route goes
            "post": {"responses": {"204": {"description": "rebuilt"}}}
        }
        imported = await svc.http.post(
            f"{url}/openapi", content=json.dumps(v1), headers=admin.headers
        )
        assert imported.status_code == 200, imported.text
        rebuild = next(
            r for r in imported.json()["api"]["routes"] if r["path_template"] == "/ledger/rebuild"
        )
        deleted = await svc.http.delete(f"{url}/routes/{rebuild['id']}", headers=admin.headers)
        assert deleted.status_code == 204, deleted.text
        v2 = copy.deepcopy(v1)
        for gone in ("/admin/purge", "/pets/{petId}", "/ledger/rebuild"):
            del v2["paths"][gone]
        del v2["paths"]["/pets"]["post"]  # public: shown as removed
        imported = await svc.http.post(
            f"{url}/openapi?replace=true", content=json.dumps(v2), headers=admin.headers
        )
        assert imported.status_code == 200, imported.text
        # An entry written before migration 0013 (no public_changes): nothing proves it
        # public, so only operators see it.
        async with svc.sessions() as session, session.begin():
            await session.execute(
                insert(ApiChangelogEntry).values(
                    id=uuid7(),
                    api_id=api["id"],
                    api_version="1.0.0",
                    version=99,
                    imported_at=datetime.now(UTC),
                    changes=[{"kind": "added", "method": "GET", "path": "/older"}],
                    breaking=0,
                )
            )

        anonymous = await svc.http.get(f"/v1/catalog/{api['slug']}/changelog")
        operators = await svc.http.get(f"{url}/changelog", headers=admin.headers)

    assert anonymous.status_code == operators.status_code == 200
    latest, first = anonymous.json()["items"]
    assert [(c["kind"], c["method"], c["path"]) for c in latest["changes"]] == [
        ("removed", "POST", "/pets")
    ]
    assert latest["breaking"] == 1
    assert {(c["method"], c["path"]) for c in first["changes"]} == {
        ("GET", "/pets"),
        ("POST", "/pets"),
        ("POST", "/ledger/rebuild"),  # it had its route when it was added
    }
    for hidden in ("purge", "petid", "/older"):
        assert hidden not in anonymous.text.lower(), hidden
    older, removal, _ = operators.json()["items"]
    assert older["changes"][0]["path"] == "/older"
    assert {(c["kind"], c["method"], c["path"]) for c in removal["changes"]} == {
        ("removed", "POST", "/pets"),
        ("removed", "POST", "/admin/purge"),
        ("removed", "GET", "/pets/{petId}"),
        ("removed", "POST", "/ledger/rebuild"),
    }


async def test_a_closed_catalog_closes_the_changelog_too(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        public_catalog=False,
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin)
        member, loner = await signup(svc), await signup(svc)
        await make_org(svc, member)
        path = f"/v1/catalog/{api['slug']}/changelog"
        anonymous = await svc.http.get(path)
        outsider = await svc.http.get(path, headers=loner.headers)
        allowed = await svc.http.get(path, headers=member.headers)

    assert anonymous.status_code == 401
    assert outsider.status_code == 403
    assert allowed.status_code == 200


async def test_anonymous_calls_are_limited_per_client_address(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db,
        kafka=kafka_bootstrap,
        prefix=topic_prefix,
        workdir=tmp_path,
        catalog_max_per_ip=3,
        catalog_window_seconds=3600,
    )
    address = f"198.51.100.{secrets.randbelow(250) + 1}"
    async with running(settings, client_ip=address) as svc:
        admin = await make_admin(svc)
        member = await signup(svc)
        await make_org(svc, member)
        api = await make_api(svc, admin)
        answers = [
            await svc.http.get("/v1/catalog"),
            await svc.http.get(f"/v1/catalog/{api['slug']}"),
            await svc.http.get("/v1/catalog/no-such-api"),  # a miss counts too
            await svc.http.get(f"/v1/catalog/{api['slug']}/openapi"),
            await svc.http.get("/v1/catalog", headers={"authorization": "Bearer forged"}),
        ]
        signed_in = await svc.http.get("/v1/catalog", headers=member.headers)
    async with running(settings, client_ip="2001:db8::" + secrets.token_hex(2)) as other:
        elsewhere = await other.http.get("/v1/catalog")

    assert [a.status_code for a in answers] == [200, 200, 404, 429, 429]
    refused = answers[3]
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith("/catalog-throttled")
    assert 1 <= int(refused.headers["retry-after"]) <= settings.catalog_window_seconds
    assert signed_in.status_code == 200
    assert elsewhere.status_code == 200


async def test_a_changed_api_is_shown_changed(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """The catalog keeps what it built per API version: every change shows at once."""
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin, name="Weather", price=2)
        before = await svc.http.get(f"/v1/catalog/{api['slug']}")
        document_before = await svc.http.get(f"/v1/catalog/{api['slug']}/openapi")
        route = {"method": "GET", "path_template": "/forecast", "price": 9}
        added = await svc.http.post(
            f"/v1/apis/{api['id']}/routes", json=route, headers=admin.headers
        )
        assert added.status_code == 201, added.text
        renamed = await svc.http.patch(
            f"/v1/apis/{api['id']}", json={"name": "Weather Pro"}, headers=admin.headers
        )
        assert renamed.status_code == 200, renamed.text
        listed = await svc.http.get("/v1/catalog")
        after = await svc.http.get(f"/v1/catalog/{api['slug']}")
        document_after = await svc.http.get(f"/v1/catalog/{api['slug']}/openapi")

    assert before.json()["price_high"] == 2
    assert after.json()["price_high"] == 9
    assert after.json()["name"] == "Weather Pro"
    assert {a["slug"]: a["name"] for a in listed.json()["items"]}[api["slug"]] == "Weather Pro"
    assert "/forecast" not in document_before.json()["paths"]
    assert "/forecast" in document_after.json()["paths"]
