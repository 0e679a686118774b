"""From the registry's OpenAPI import to the gateway's mock, every part a real process
on the real broker: an admin registers an API, turns request validation on and imports
the petstore document (accounts' own test data); accounts publishes it in
`ApiUpserted`, the gateway compiles it. A test key then gets the mock for every
operation, each answer valid against the document, and never the live upstream; a
malformed request is a 400 with its pointer; a live key reaches the live upstream."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from openapi_schema_validator import OAS30Validator

from tollgate.kit.testing.polling import eventually

from .services import platform

pytestmark = pytest.mark.system(timed=False)

ROOT = Path(__file__).resolve().parents[2]
PETSTORE_FILE = ROOT / "services/accounts/tests/data/petstore.yaml"
PETSTORE: dict[str, Any] = yaml.safe_load(PETSTORE_FILE.read_text())


def conforms(schema: dict[str, Any], value: Any) -> list[str]:
    validator = OAS30Validator({**schema, "components": PETSTORE["components"]})
    return [error.message for error in validator.iter_errors(value)]


async def test_imported_petstore_is_mocked_and_validated_by_the_gateway(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    stack = platform(
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_factory=database_factory,
        name="sandbox",
    )
    async with stack.running() as clients:
        acc, gw = clients.accounts, clients.gateway
        org = (await acc.post("/v1/orgs", json={"name": "Sandboxers"})).json()
        api = await acc.post(
            "/v1/apis",
            json={
                "slug": "petstore",
                "name": "Petstore",
                "upstream_url": f"{stack.upstream_url}/echo/live",
                "price": 2,
                "sandbox": {"validate_requests": True},
            },
        )
        assert api.status_code == 201, api.text
        imported = await acc.post(
            f"/v1/apis/{api.json()['id']}/openapi",
            content=PETSTORE_FILE.read_bytes(),
            headers={"content-type": "application/yaml"},
        )
        assert imported.status_code == 200, imported.text
        keys = {}
        for environment in ("live", "test"):
            issued = await acc.post(
                f"/v1/orgs/{org['id']}/keys",
                json={"name": environment, "environment": environment},
            )
            assert issued.status_code == 201, issued.text
            keys[environment] = {"X-API-Key": issued.json()["key"]}

        # The gateway has the key, the API and its compiled document once the mock answers.
        async def mocked() -> int:
            return (await gw.get("/petstore/pets/1", headers=keys["test"])).status_code

        assert await eventually(mocked, lambda status: status == 200, within=20) == 200

        operations = [
            ("GET", "/pets", None, ("/pets", "get")),
            ("GET", "/pets?limit=5", None, ("/pets", "get")),
            ("POST", "/pets", {"id": 3, "name": "Rex"}, ("/pets", "post")),
            ("GET", "/pets/42", None, ("/pets/{petId}", "get")),
        ]
        for method, path, body, (template, verb) in operations:
            for prefer in ({}, {"Prefer": "dynamic=true"}):
                answer = await gw.request(
                    method, "/petstore" + path, json=body, headers={**keys["test"], **prefer}
                )
                assert answer.status_code // 100 == 2, (method, path, answer.text)
                documented = PETSTORE["paths"][template][verb]["responses"]
                content = documented[str(answer.status_code)].get("content")
                if content is None:
                    assert answer.content == b""
                    continue
                schema = content["application/json"]["schema"]
                assert conforms(schema, answer.json()) == [], (method, path, answer.text)
                assert "path" not in answer.json()  # not the echoing live upstream

        # Prism's `Prefer: code=`: the documented `default` answer with that status.
        error = await gw.get("/petstore/pets/1", headers={**keys["test"], "Prefer": "code=500"})
        assert error.status_code == 500
        assert conforms(PETSTORE["components"]["schemas"]["Error"], error.json()) == []

        invalid = await gw.post(
            "/petstore/pets", json={"id": "seven", "tag": 1}, headers=keys["test"]
        )
        assert invalid.status_code == 400
        pointers = sorted(v["pointer"] for v in invalid.json()["violations"])
        assert pointers == ["/body/id", "/body/name", "/body/tag"]
        bad_query = await gw.get("/petstore/pets?limit=1000", headers=keys["live"])
        assert bad_query.status_code == 400
        assert [v["pointer"] for v in bad_query.json()["violations"]] == ["/query/limit"]

        live = await gw.get("/petstore/pets?limit=5", headers=keys["live"])
        assert live.status_code == 200
        assert live.json()["path"] == "/echo/live/pets"
