"""The audit trail every service gets from `create_app`: a successful state-changing
call of a signed-in caller leaves one `AuditRecorded` in the service's outbox (actor,
org, target, request id, the body sent with secrets masked) before the answer goes
out; failures, reads and anonymous calls leave none. Real PostgreSQL outbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import MetaData, select

from tollgate.kit.audit import (
    MASK,
    RecordedChange,
    audit_coverage,
    changed_fields,
    mask_secrets,
)
from tollgate.kit.auth import CurrentPrincipal, Role, authorize_org
from tollgate.kit.db import create_engine, session_maker
from tollgate.kit.outbox import outbox_table
from tollgate.kit.problems import Conflict
from tollgate.kit.service import create_app
from tollgate.kit.testing.tokens import TokenMint


class EndpointIn(BaseModel):
    url: str
    signing_secret: str | None = None
    description: str = ""


def audited_app(mint: TokenMint) -> FastAPI:
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = create_app(
        service="notifier", title="t", description="t", lifespan=lifespan, max_body_bytes=65536
    )
    app.state.jwt_verifier = mint.verifier()

    @app.put("/v1/orgs/{org_id}/endpoints/{endpoint_id}")
    async def replace_endpoint(
        org_id: uuid.UUID, endpoint_id: uuid.UUID, body: EndpointIn, principal: CurrentPrincipal
    ) -> dict[str, str]:
        authorize_org(principal, org_id, Role.developer)
        return {"id": str(endpoint_id), "secret": "whsec_revealed_once"}

    @app.patch("/v1/orgs/{org_id}/endpoints/{endpoint_id}")
    async def update_endpoint(
        org_id: uuid.UUID,
        endpoint_id: uuid.UUID,
        body: dict[str, Any],
        principal: CurrentPrincipal,
        change: RecordedChange,
    ) -> dict[str, str]:
        stored = {"url": "https://old.example", "signing_secret": "old-s3cr3t", "n": 1}
        change.note(stored, {**stored, **body})
        return {"id": str(endpoint_id)}

    @app.post("/v1/orgs/{org_id}/endpoints", status_code=201)
    async def create_endpoint(
        org_id: uuid.UUID, body: EndpointIn, principal: CurrentPrincipal
    ) -> dict[str, str]:
        return {"id": "ep_created_1", "secret": "whsec_revealed_once"}

    @app.post("/v1/orgs/{org_id}/conflict")
    async def always_conflicts(org_id: uuid.UUID, principal: CurrentPrincipal) -> None:
        raise Conflict("conflict", "No.")

    @app.get("/v1/orgs/{org_id}/endpoints")
    async def list_endpoints(org_id: uuid.UUID, principal: CurrentPrincipal) -> list[str]:
        return []

    @app.post("/v1/sms/inbound")
    async def provider_callback(payload: dict[str, Any]) -> dict[str, str]:
        return {"ok": "yes"}

    return app


async def outbox_events(app: FastAPI) -> list[dict[str, Any]]:
    async with app.state.sessions() as session:
        table = outbox_table(MetaData())
        rows = (await session.execute(select(table.c.value).order_by(table.c.id))).all()
    return [orjson.loads(row.value) for row in rows]


async def test_successful_changes_are_recorded_with_secrets_masked(
    database_factory: Callable[[str], str],
) -> None:
    mint = TokenMint()
    app = audited_app(mint)
    metadata = MetaData()
    outbox_table(metadata)
    engine = create_engine(database_factory("kit_audit"))
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    app.state.sessions = session_maker(engine)
    user, org, endpoint = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    member = mint.headers(user_id=user, orgs={org: "developer"})
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            changed = await client.put(
                f"/v1/orgs/{org}/endpoints/{endpoint}",
                json={
                    "url": "https://hooks.example.com/in",
                    "signing_secret": "s3cr3t-value",
                    "description": "whsec_pasted_by_mistake",
                },
                headers={**member, "X-Request-ID": "req-audit-0001"},
            )
            assert changed.status_code == 200
            created = await client.post(
                f"/v1/orgs/{org}/endpoints", json={"url": "https://h.example"}, headers=member
            )
            assert created.json() == {"id": "ep_created_1", "secret": "whsec_revealed_once"}
            assert (
                await client.post(f"/v1/orgs/{org}/conflict", headers=member)
            ).status_code == 409
            assert (
                await client.get(f"/v1/orgs/{org}/endpoints", headers=member)
            ).status_code == 200
            assert (await client.post("/v1/sms/inbound", json={"body": "hi"})).status_code == 200
            patched = await client.patch(
                f"/v1/orgs/{org}/endpoints/{endpoint}",
                json={"url": "https://new.example", "signing_secret": "new-s3cr3t", "n": 1},
                headers=member,
            )
            assert patched.status_code == 200
            refused = await client.put(
                f"/v1/orgs/{uuid.uuid4()}/endpoints/{endpoint}",
                json={"url": "https://x.example"},
                headers=member,
            )
            assert refused.status_code == 404

        events = await outbox_events(app)
    finally:
        await engine.dispose()
    assert [e["type"] for e in events] == ["tollgate.audit.recorded.v1"] * 3
    record, creation, update = (e["data"] for e in events)
    # Only the fields that changed, the secret masked on both sides.
    assert update["diff"]["before"] == {"url": "https://old.example", "signing_secret": MASK}
    assert update["diff"]["after"] == {"url": "https://new.example", "signing_secret": MASK}
    assert "before" not in record["diff"]  # the PUT noted nothing
    assert (creation["target_type"], creation["target_id"]) == ("endpoint", "ep_created_1")
    assert record["service"] == "notifier"
    assert record["action"] == "notifier.replace_endpoint"
    assert record["actor_id"] == str(user)
    assert record["org_id"] == str(org)
    assert (record["target_type"], record["target_id"]) == ("endpoint", str(endpoint))
    assert record["request_id"] == "req-audit-0001"
    assert record["diff"]["request"] == {
        "url": "https://hooks.example.com/in",
        "signing_secret": MASK,
        "description": MASK,
    }
    text = orjson.dumps(events).decode()
    assert "s3cr3t" not in text
    assert "whsec_" not in text  # neither the one sent nor the one revealed


def test_changed_fields_keeps_what_differs_in_json_terms() -> None:
    at = datetime(2030, 1, 2, tzinfo=UTC)
    ident = uuid.uuid4()
    assert changed_fields(
        {"name": "a", "at": None, "ids": [ident], "role": Role.viewer, "same": 1},
        {"name": "b", "at": at, "ids": [ident], "role": Role.owner, "same": 1, "token": "x"},
    ) == {
        "before": {"name": "a", "at": None, "role": "viewer", "token": MASK},
        "after": {"name": "b", "at": "2030-01-02T00:00:00+00:00", "role": "owner", "token": MASK},
    }
    assert changed_fields({"a": 1}, {"a": 1}) == {}


def test_secret_names_and_secret_looking_values_are_masked_at_any_depth() -> None:
    masked = mask_secrets(
        {
            "name": "ok",
            "upstream": {"Authorization": "Basic abc", "headers": [{"x_api_key": "k"}]},
            "keys": ["tg_live_abcdef", "plain"],
            "password": {"nested": "whatever"},
        }
    )
    assert masked == {
        "name": "ok",
        "upstream": {"Authorization": MASK, "headers": [{"x_api_key": MASK}]},
        "keys": [MASK, "plain"],
        "password": MASK,
    }


def test_coverage_lists_anonymous_routes_as_exempt_with_a_reason() -> None:
    coverage = audit_coverage(audited_app(TokenMint()))
    assert coverage["PUT /v1/orgs/{org_id}/endpoints/{endpoint_id}"] is None
    assert coverage["POST /v1/orgs/{org_id}/conflict"] is None
    assert "no signed-in user" in (coverage["POST /v1/sms/inbound"] or "")
    assert not any(route.startswith("GET ") for route in coverage)
