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

pytestmark = pytest.mark.system(timed=False)

# Small by default to keep the suite fast; raise it for a deeper local run.
EXAMPLES = int(os.environ.get("ACCOUNTS_FUZZ_EXAMPLES", "6"))

_CURSOR = "a cursor must be one the API issued"
SEMANTIC_RULES = {
    "POST /v1/auth/register": "a deliverable email; a password of at most 72 UTF-8 bytes",
    "POST /v1/auth/password-reset": "a deliverable email",
    "POST /v1/auth/password-reset/confirm": "a reset token the API issued; 72 UTF-8 bytes",
    "POST /v1/auth/password": "a new password of at most 72 UTF-8 bytes",
    "POST /v1/auth/verify-email": "a verification token the API issued",
    "POST /v1/auth/verify-email/resend": "a caller whose email is not verified yet",
    "POST /v1/auth/logout": "the refresh token of an open session of the caller",
    "POST /v1/auth/totp/verify": "enrolled first; the password and the current one-time code",
    "POST /v1/auth/totp/disable": "two-factor on; the password and a current code",
    "POST /v1/invitations/accept": "an invitation token the API issued",
    "POST /v1/orgs/{org_id}/invitations": "a deliverable email",
    "POST /v1/orgs/{org_id}/keys": "networks that parse; allowed APIs that exist; metadata",
    "PATCH /v1/keys/{key_id}": "networks that parse; allowed APIs that exist; metadata",
    "POST /v1/apis": "a public http(s) upstream; no hop-by-hop credential header; "
    "route Sunsets in the future",
    "PATCH /v1/apis/{api_id}": "a public http(s) upstream; no hop-by-hop credential header",
    "POST /v1/apis/{api_id}/routes": "a Sunset in the future",
    "PATCH /v1/apis/{api_id}/routes/{route_id}": "a Sunset in the future",
    "POST /v1/apis/{api_id}/openapi": "an OpenAPI 3.x document",
    "POST /v1/apis/{api_id}/openapi/from-url": "a public URL serving an OpenAPI 3.x document",
    "GET /v1/users": _CURSOR,
    "GET /v1/orgs": _CURSOR,
    "GET /v1/orgs/{org_id}/members": _CURSOR,
    "GET /v1/orgs/{org_id}/invitations": _CURSOR,
    "GET /v1/orgs/{org_id}/keys": _CURSOR,
    "GET /v1/apis": _CURSOR,
    "GET /v1/apis/{api_id}/routes": _CURSOR,
    "GET /v1/apis/{api_id}/changelog": _CURSOR,
    "GET /v1/catalog/{slug}/changelog": _CURSOR,
    "GET /v1/audit": _CURSOR,
    "GET /v1/auth/sessions": _CURSOR,
}
"""Operations whose schema-valid input may still be refused by a rule the document
cannot state (a 400/409/422 problem with its own slug, never the generic `validation`)."""


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
            semantic_rules=SEMANTIC_RULES,
        )
        print(f"\nschemathesis: {report}")
        assert not report.failures, "\n".join(report.failures[:10])
    finally:
        accounts.stop()
    assert "Traceback" not in accounts.logs()
