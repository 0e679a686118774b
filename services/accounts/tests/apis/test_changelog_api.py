"""`GET /v1/apis/{id}/changelog` and `tollgate.accounts.api.changed.v1`: every OpenAPI
import that changes operations is kept and announced through the outbox."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import pytest

from tollgate.accounts.apis import service
from tollgate.accounts.apis.openapi_import import parse_document
from tollgate.contracts.events.accounts import ApiChanged, BreakingRule
from tollgate.kit.testing.pages import check_list_contract

from ..factories import events, make_admin, make_api, make_org, running, settings_for, signup

PETSTORE = Path(__file__).resolve().parent.parent / "data" / "petstore.yaml"


async def test_second_import_is_in_the_changelog_and_announced(
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
        api = await make_api(svc, admin, name="Petstore", api_version="2.0.0")
        url = f"/v1/apis/{api['id']}"
        v1 = parse_document(PETSTORE.read_bytes())
        v2 = copy.deepcopy(v1)
        del v2["paths"]["/pets"]["post"]
        v2["paths"]["/pets"]["get"]["parameters"].append(
            {"name": "owner", "in": "query", "required": True, "schema": {"type": "string"}}
        )
        for doc in (v1, v1, v2):  # the repeated import changes nothing: no entry
            imported = await svc.http.post(
                f"{url}/openapi", content=json.dumps(doc), headers=admin.headers
            )
            assert imported.status_code == 200, imported.text

        entries = await check_list_contract(
            svc.http,
            f"{url}/changelog",
            headers=admin.headers,
            expected={0, 2},
            key=lambda e: e["breaking"],
            page_size=1,
        )
        latest, first = entries
        assert latest["version"] > first["version"]
        assert latest["api_version"] == "2.0.0"
        assert latest["breaking"] == 2
        assert [(c["rule"], c["method"], c["path"], c["name"]) for c in latest["changes"]] == [
            ("new-required-parameter", "GET", "/pets", "owner"),
            ("removed-operation", "POST", "/pets", None),
        ]
        assert first["breaking"] == 0
        assert [c["kind"] for c in first["changes"]] == ["added"] * 3

        announced = [e.data for e in await events(svc, api["id"]) if isinstance(e.data, ApiChanged)]
        assert [(a.version, a.breaking) for a in announced] == [
            (first["version"], 0),
            (latest["version"], 2),
        ]
        assert [c.rule for c in announced[-1].changes] == [
            BreakingRule.NEW_REQUIRED_PARAMETER,
            BreakingRule.REMOVED_OPERATION,
        ]

        assert (await svc.http.get(f"{url}/changelog", headers=loner.headers)).status_code == 403
        # Members read the catalog's changelog: only what customers can call.
        assert (await svc.http.get(f"{url}/changelog", headers=member.headers)).status_code == 403
        unknown = await svc.http.get(f"/v1/apis/{uuid.uuid4()}/changelog", headers=admin.headers)
        assert unknown.status_code == 404
        assert unknown.json()["type"].endswith("/api-not-found")


async def test_the_event_carries_the_first_changes_and_the_changelog_all(
    accounts_db: str,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "MAX_EVENT_CHANGES", 2)  # one Kafka record must stay small
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin, name="Petstore")
        imported = await svc.http.post(
            f"/v1/apis/{api['id']}/openapi", content=PETSTORE.read_bytes(), headers=admin.headers
        )
        assert imported.status_code == 200, imported.text
        kept = (await svc.http.get(f"/v1/apis/{api['id']}/changelog", headers=admin.headers)).json()
        evts = await events(svc, api["id"])

    announced = [e.data for e in evts if isinstance(e.data, ApiChanged)]
    assert [len(a.changes) for a in announced] == [2]
    assert len(kept["items"][0]["changes"]) == 3


async def test_the_event_every_org_receives_tells_only_what_customers_may_see(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """`ApiChanged` goes to every org's webhooks: changes of `x-internal` operations stay
    in the operators' changelog, and an import that changed only those announces nothing."""
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin, name="Petstore")
        v1 = parse_document(PETSTORE.read_bytes())
        v1["paths"]["/admin/purge"] = {
            "x-internal": True,
            "post": {"responses": {"204": {"description": "purged"}}},
        }
        internal_only = copy.deepcopy(v1)
        internal_only["paths"]["/admin/purge"]["post"]["parameters"] = [
            {"name": "force", "in": "query", "required": True, "schema": {"type": "string"}}
        ]
        both = copy.deepcopy(internal_only)
        del both["paths"]["/admin/purge"]
        del both["paths"]["/pets"]["post"]
        for doc in (v1, internal_only, both):
            imported = await svc.http.post(
                f"/v1/apis/{api['id']}/openapi", content=json.dumps(doc), headers=admin.headers
            )
            assert imported.status_code == 200, imported.text
        kept = (await svc.http.get(f"/v1/apis/{api['id']}/changelog", headers=admin.headers)).json()
        announced = [e.data for e in await events(svc, api["id"]) if isinstance(e.data, ApiChanged)]

    assert len(kept["items"]) == 3  # operators keep every import's changes
    assert [(c["method"], c["path"]) for c in kept["items"][0]["changes"]] == [
        ("POST", "/admin/purge"),
        ("POST", "/pets"),
    ]
    assert len(announced) == 2  # the first import and the last; not the internal-only one
    last = announced[-1]
    assert [(c.method, c.path) for c in last.changes] == [("POST", "/pets")]
    assert last.breaking == 1
    assert "/admin/purge" not in json.dumps(
        [c.model_dump(mode="json") for a in announced for c in a.changes]
    )
