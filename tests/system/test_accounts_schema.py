"""Schemathesis against the running accounts service's own OpenAPI schema, with auth:
generated valid and invalid requests to every operation produce no 5xx and no
response that contradicts the schema (bodies of errors included: problem+json)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis

from tollgate.kit.sealing import new_sealing_key
from tollgate.kit.testing.fuzz import fuzz_operations

from .services import service_process

pytestmark = pytest.mark.system

# Small by default to keep the suite fast; raise it for a deeper local run.
EXAMPLES = int(os.environ.get("ACCOUNTS_FUZZ_EXAMPLES", "6"))


def _keep_own_session(case: schemathesis.Case) -> dict[str, Any]:
    # Logging out everywhere would end the fuzzer's own session.
    if case.path == "/v1/auth/logout" and isinstance(case.body, dict):
        case.body["everywhere"] = False
    return {}


def test_schemathesis_finds_no_server_errors_or_schema_violations(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    password = "admin-" + secrets.token_urlsafe(12)
    accounts = service_process(
        "accounts",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_factory("accounts"),
        extra={
            "SIGNING_KEY_FILE": str(tmp_path / "signing-keys.pem"),
            "SIGNING_KEY_GENERATE": "true",
            "SEALING_KEYS": new_sealing_key(),
            "BCRYPT_ROUNDS": "4",
            "ADMIN_EMAIL": "root@example.com",
            "ADMIN_PASSWORD": password,
            "LOGIN_MAX_FAILURES_PER_IP": "100000",
            "RESOLVE_UPSTREAM_HOSTS": "false",
            "LOG_LEVEL": "WARNING",
        },
    )
    accounts.start()
    try:
        with httpx.Client(base_url=accounts.url, timeout=10) as http:
            token = http.post(
                "/v1/auth/token", data={"username": "root@example.com", "password": password}
            ).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            org = http.post("/v1/orgs", json={"name": "Fuzzed"}, headers=auth).json()
            key = http.post(f"/v1/orgs/{org['id']}/keys", json={"name": "k"}, headers=auth).json()
            api = http.post(
                "/v1/apis",
                json={"slug": "fuzzed", "name": "F", "upstream_url": "https://93.184.215.14"},
                headers=auth,
            ).json()
        real_ids = {
            "org_id": org["id"],
            "key_id": key["id"],
            "api_id": api["id"],
            "user_id": org["id"],
            "route_id": api["id"],
            "invitation_id": key["id"],
        }
        schema = schemathesis.openapi.from_url(
            f"{accounts.url}/openapi.json",
            # No crash cache in the working tree.
            config=schemathesis.Config.from_dict({"cache": {"enabled": False}}),
        )
        report = fuzz_operations(
            schema,
            examples=EXAMPLES,
            headers=auth,
            call_kwargs=_keep_own_session,
            known_path_parameters=real_ids,
        )
        print(f"\nschemathesis: {report}")
        assert not report.failures, "\n".join(report.failures[:10])
    finally:
        accounts.stop()
    assert "Traceback" not in accounts.logs()
