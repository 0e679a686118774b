"""`GET /v1/audit`: every mutating call leaves an entry; admins see all, owners their
own orgs, others nothing; filters and cursor pagination."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tollgate.kit.testing.pages import check_list_contract

from ..factories import (
    add_member,
    make_admin,
    make_api,
    make_key,
    make_org,
    running,
    settings_for,
    signup,
)


async def test_audit_visibility_filters_and_pages(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        owner = await signup(svc)
        viewer = await signup(svc)
        other_owner = await signup(svc)
        org_id = await make_org(svc, owner)
        other_org = await make_org(svc, other_owner)
        await add_member(svc, org_id, viewer, "viewer")
        key = await make_key(svc, owner, org_id)
        await svc.http.patch(
            f"/v1/keys/{key['id']}", json={"name": "renamed"}, headers=owner.headers
        )
        rotated = await svc.http.post(f"/v1/keys/{key['id']}/rotate", headers=owner.headers)
        await make_key(svc, other_owner, other_org)
        await make_api(svc, admin, upstream_headers={"X-Upstream-Key": "zz-secret-zz"})

        own = await svc.http.get("/v1/audit", params={"org_id": str(org_id)}, headers=owner.headers)
        assert own.status_code == 200
        actions = [e["action"] for e in own.json()["items"]]
        assert actions == ["key.rotate", "key.update", "key.create", "org.create"]
        update = own.json()["items"][1]
        assert update["diff"] == {"before": {"name": "test key"}, "after": {"name": "renamed"}}
        assert update["actor_id"] == str(owner.id)
        assert update["ip"] == "127.0.0.1"
        assert update["request_id"]
        assert key["key"] not in own.text
        assert rotated.json()["key"] not in own.text

        mine_default = await svc.http.get("/v1/audit", headers=owner.headers)
        assert {e["org_id"] for e in mine_default.json()["items"]} == {str(org_id)}
        filtered = await svc.http.get(
            "/v1/audit",
            params={"action": "key.create", "target_id": key["id"]},
            headers=owner.headers,
        )
        assert [e["target_id"] for e in filtered.json()["items"]] == [key["id"]]

        assert (await svc.http.get("/v1/audit", headers=viewer.headers)).status_code == 403
        assert (
            await svc.http.get("/v1/audit", params={"org_id": str(org_id)}, headers=viewer.headers)
        ).status_code == 403
        assert (
            await svc.http.get(
                "/v1/audit", params={"org_id": str(org_id)}, headers=other_owner.headers
            )
        ).status_code == 404

        everything = await svc.http.get(
            "/v1/audit", params={"actor_id": str(admin.id)}, headers=admin.headers
        )
        api_entries = [e for e in everything.json()["items"] if e["action"] == "api.create"]
        assert len(api_entries) == 1
        assert "zz-secret-zz" not in json.dumps(api_entries)

        pages: list[list[int]] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"org_id": str(org_id), "limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = (await svc.http.get("/v1/audit", params=params, headers=admin.headers)).json()
            pages.append([e["id"] for e in page["items"]])
            cursor = page["next_cursor"]
            if not cursor:
                break
        flat = [i for p in pages for i in p]
        assert len(pages) == 2
        assert flat == sorted(flat, reverse=True)
        assert len(flat) == 4
        await check_list_contract(
            svc.http,
            "/v1/audit",
            headers=admin.headers,
            params={"org_id": str(org_id)},
            expected=set(flat),
        )
        bad = await svc.http.get("/v1/audit", params={"cursor": "bm9wZQ"}, headers=admin.headers)
        assert bad.status_code == 422
        nobody = await svc.http.get(
            "/v1/audit", params={"org_id": str(uuid.uuid4())}, headers=admin.headers
        )
        assert nobody.json()["items"] == []


async def test_updates_record_before_and_after_of_what_changed_without_secrets(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        api = await make_api(svc, admin, upstream_headers={"X-Upstream-Key": "old-zz-secret"})
        patched = await svc.http.patch(
            f"/v1/apis/{api['id']}",
            json={
                "name": api["name"],  # unchanged: not listed
                "timeout_ms": 1234,
                "upstream_headers": {"X-Upstream-Key": "new-zz-secret", "X-Tenant": "t1"},
            },
            headers=admin.headers,
        )
        assert patched.status_code == 200, patched.text
        audit = await svc.http.get(
            "/v1/audit",
            params={"action": "api.update", "target_id": api["id"]},
            headers=admin.headers,
        )
        [entry] = audit.json()["items"]
    assert entry["diff"]["before"] == {
        "timeout_ms": api["timeout_ms"],
        "upstream_header_names": ["X-Upstream-Key"],
        "upstream_headers": "sealed",
    }
    assert entry["diff"]["after"] == {
        "timeout_ms": 1234,
        "upstream_header_names": ["X-Tenant", "X-Upstream-Key"],
        "upstream_headers": "replaced",
    }
    assert "zz-secret" not in json.dumps(entry)
