"""Numbers and flags in request bodies are taken as sent, never coerced: `"10"`, `true`
and `1.5` are not integers (`10.0` is one in JSON Schema's sense, and is read as 10),
`0` and `"false"` are not booleans. A limit, a price or a timeout sent as a string is a
client bug the caller must hear about (422), not a value silently read one way by
accounts and perhaps another by a client library."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .factories import make_admin, make_api, make_key, make_org, running, settings_for, signup

NOT_INTS: list[Any] = ["10", True, 1.5, "1e3"]
NOT_BOOLS: list[Any] = [0, 1, "false", "true", "no"]


async def test_integers_and_flags_are_strict_in_every_body(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        admin = await make_admin(svc)
        owner = await signup(svc)
        org_id = await make_org(svc, owner)
        key = await make_key(svc, owner, org_id)
        api = await make_api(svc, admin, routes=[{"method": "GET", "path_template": "/a"}])
        route_id = api["routes"][0]["id"]
        new_route = {"method": "GET", "path_template": "/b"}
        api_base = {"slug": "strict-x", "name": "X", "upstream_url": "https://93.184.215.14"}

        int_cases: list[tuple[str, str, dict[str, Any], str]] = [
            ("POST", f"/v1/orgs/{org_id}/keys", {"name": "k"}, "limits.per_minute"),
            ("PATCH", f"/v1/keys/{key['id']}", {}, "limits.per_second"),
            ("POST", f"/v1/keys/{key['id']}/rotate", {}, "grace_seconds"),
            ("POST", "/v1/apis", api_base, "price"),
            ("POST", "/v1/apis", api_base, "timeout_ms"),
            ("POST", "/v1/apis", api_base, "limits.per_day"),
            ("PATCH", f"/v1/apis/{api['id']}", {}, "price"),
            ("PATCH", f"/v1/apis/{api['id']}", {}, "timeout_ms"),
            ("PATCH", f"/v1/apis/{api['id']}", {}, "limits.per_month"),
            ("POST", f"/v1/apis/{api['id']}/routes", new_route, "price"),
            ("PATCH", f"/v1/apis/{api['id']}/routes/{route_id}", {}, "price"),
            ("PATCH", f"/v1/apis/{api['id']}/routes/{route_id}", {}, "limits.per_hour"),
        ]
        bool_cases: list[tuple[str, str, dict[str, Any], str]] = [
            ("POST", f"/v1/orgs/{org_id}/keys", {"name": "k"}, "enabled"),
            ("PATCH", f"/v1/keys/{key['id']}", {}, "enabled"),
            ("POST", "/v1/apis", api_base, "charge_failed_calls"),
            ("PATCH", f"/v1/apis/{api['id']}", {}, "charge_failed_calls"),
        ]
        cases = [(c, v) for c in int_cases for v in NOT_INTS]
        cases += [(c, v) for c in bool_cases for v in NOT_BOOLS]
        accepted = []
        for (method, url, base, field), value in cases:
            body = dict(base)
            if field.startswith("limits."):
                body["limits"] = {field.split(".", 1)[1]: value}
            else:
                body[field] = value
            response = await svc.http.request(method, url, json=body, headers=admin.headers)
            if response.status_code != 422:
                accepted.append((method, url, field, value, response.status_code))
            else:
                assert response.headers["content-type"] == "application/problem+json"
        assert accepted == []

        # Logging out everywhere with a flag that is not a boolean changes nothing.
        out = await svc.http.post(
            "/v1/auth/logout",
            json={"refresh_token": owner.refresh_token, "everywhere": "true"},
            headers=owner.headers,
        )
        assert out.status_code == 422
        assert (await svc.http.get("/v1/auth/me", headers=owner.headers)).status_code == 200


@pytest.mark.parametrize("value", [1, 10**6])
async def test_real_integers_are_still_accepted(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path, value: int
) -> None:
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        owner = await signup(svc)
        org_id = await make_org(svc, owner)
        key = await make_key(svc, owner, org_id, limits={"per_minute": value}, enabled=False)
        assert key["limits"] == {"per_minute": value}
        assert key["enabled"] is False


async def test_the_published_document_states_every_bound_in_json_schema_terms(
    accounts_db: str, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    """Clients and the schema fuzzer read `minimum`/`maximum`; pydantic's own `ge`/`le`
    are not JSON Schema and would leave the bounds unstated."""
    settings = settings_for(
        accounts_db, kafka=kafka_bootstrap, prefix=topic_prefix, workdir=tmp_path
    )
    async with running(settings) as svc:
        document = (await svc.http.get("/openapi.json")).json()
    stray: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("ge", "le", "gt", "lt") and not isinstance(value, dict):
                    stray.append(f"{path}/{key}")
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(document["components"]["schemas"], "")
    assert stray == []
    limits = document["components"]["schemas"]["LimitsIn"]["properties"]["per_minute"]
    assert {"type": "integer", "minimum": 1, "maximum": 1_000_000_000} in limits["anyOf"]
