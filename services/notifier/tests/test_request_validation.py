"""What callers send is refused with a 422 problem, never a 500 from PostgreSQL: NUL
characters and unknown fields in bodies, NUL in text parameters, ids past BIGINT,
times outside what UTC can hold. Provider payloads keep their extra fields."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import select

from tollgate.kit.testing.tokens import TokenMint
from tollgate.notifier.models import SmsMessage
from tollgate.notifier.sms.signatures import generic_signature, twilio_signature

from .factories import api_client, database, migrated, settings_for

PUBLIC = "https://notifier.example.com"
TWILIO_TOKEN = "twilio-token"
HMAC_SECRET = "generic-secret"
# A cursor in the shared format holding a delivery id beyond PostgreSQL's bigint.
BEYOND_BIGINT_CURSOR = base64.urlsafe_b64encode(f'{{"v":1,"k":[{2**64}]}}'.encode()).decode()
ORG = uuid.uuid4()
ENDPOINT = f"/v1/orgs/{ORG}/webhooks/endpoints/{uuid.uuid4()}"

BODIES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", f"/v1/orgs/{ORG}/webhooks/endpoints", {"url": "https://example.com/hook"}),
    ("PATCH", ENDPOINT, {"description": "billing hooks"}),
    ("POST", f"{ENDPOINT}/recover", {"since": "2026-01-01T00:00:00Z"}),
    (
        "PUT",
        f"/v1/orgs/{ORG}/notification-contacts",
        {"contacts": [{"email": "ops@example.com", "locale": "en"}]},
    ),
    ("POST", f"/v1/orgs/{ORG}/sms/messages/{uuid.uuid4()}/read", {"read": True}),
    ("PUT", "/v1/admin/sms/numbers", {"number": "+15550000001", "org_id": str(ORG)}),
    ("POST", "/v1/admin/sms/keyword-rules", {"org_id": str(ORG), "kind": "regex", "pattern": "x"}),
]


def with_nul(value: Any) -> Any:
    """`value` with a NUL in its first string (nested ones included), or in a key."""
    if isinstance(value, str):
        return value[:1] + "\x00" + value[1:]
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str | list | dict):
                return {**value, key: with_nul(item)}
        return {**value, "read\x00": True}
    if isinstance(value, list):
        return [with_nul(value[0]), *value[1:]]
    return value


def assert_problem(response: httpx.Response, status: int = 422) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_bodies_refuse_nul_and_unknown_fields(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    mint = TokenMint()
    admin = mint.headers(admin=True)
    async with api_client(settings_for(url), mint) as (client, _):
        for method, path, body in BODIES:
            nul = await client.request(method, path, json=with_nul(body), headers=admin)
            assert_problem(nul)
            extra = await client.request(method, path, json={**body, "extra": 1}, headers=admin)
            assert_problem(extra)
        # A NUL in a dictionary key or deep inside a list is found too.
        contacts = {"contacts": [{"email": "ops@example.com", "locale": "en\x00"}]}
        deep = await client.put(f"/v1/orgs/{ORG}/notification-contacts", json=contacts)
        assert deep.status_code in (401, 422)  # unauthenticated: no leak either way
        assert_problem(
            await client.put(f"/v1/orgs/{ORG}/notification-contacts", json=contacts, headers=admin)
        )


async def test_parameters_that_reach_the_database_are_checked(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    mint = TokenMint()
    admin = mint.headers(admin=True)
    async with api_client(settings_for(url), mint) as (client, _):
        refused = [
            ("GET", "/v1/admin/sms/messages?from_number=%2B1%00"),
            ("GET", f"/v1/orgs/{ORG}/sms/messages?from_number=%00"),
            ("GET", "/v1/admin/emails?kind=credits%00low"),
            ("DELETE", "/v1/admin/sms/numbers/%2B1555%00"),
            ("GET", f"/v1/orgs/{ORG}/webhooks/deliveries/{2**63}"),
            ("POST", f"/v1/orgs/{ORG}/webhooks/deliveries/{2**63}/retry"),
            ("GET", f"{ENDPOINT}/deliveries?cursor={BEYOND_BIGINT_CURSOR}"),
            ("GET", "/v1/admin/sms/messages?since=0001-01-01T00:00:00%2B01:00"),
            ("GET", "/v1/admin/sms/messages?since=9999-12-31T23:59:59-01:00"),
        ]
        for method, path in refused:
            assert_problem(await client.request(method, path, headers=admin))
        late = {"since": "9999-12-31T23:30:00-01:00"}
        assert_problem(await client.post(f"{ENDPOINT}/recover", json=late, headers=admin))
        fine = await client.get(
            "/v1/admin/sms/messages?from_number=%2B15550001111&since=2026-01-01T00:00:00%2B01:00",
            headers=admin,
        )
        assert fine.status_code == 200
        assert (
            await client.get(f"/v1/orgs/{ORG}/webhooks/deliveries/7", headers=admin)
        ).status_code == 404


async def test_provider_payloads_keep_messages_with_nul_text(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    settings = settings_for(
        url, sms_public_url=PUBLIC, sms_twilio_auth_token=TWILIO_TOKEN, sms_hmac_secret=HMAC_SECRET
    )
    async with api_client(settings, TokenMint()) as (client, _), database(url) as sessions:

        async def generic(fields: dict[str, Any]) -> httpx.Response:
            raw = json.dumps(fields).encode()
            signature = generic_signature(HMAC_SECRET, int(time.time()), raw)
            return await client.post(
                "/v1/sms/inbound/generic",
                content=raw,
                headers={"X-Tollgate-Signature": signature, "Content-Type": "application/json"},
            )

        async def twilio(fields: dict[str, str]) -> httpx.Response:
            path = "/v1/sms/inbound/twilio"
            params = {name: [value] for name, value in fields.items()}
            signature = twilio_signature(TWILIO_TOKEN, PUBLIC + path, params)
            return await client.post(
                path,
                content=urlencode(fields),
                headers={
                    "X-Twilio-Signature": signature,
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )

        sms = {"message_id": "g-1", "from": "+15550001111", "to": "+15559990000"}
        stored = await generic({**sms, "body": "mail me\x00example.com", "carrier": "x"})
        assert stored.status_code == 200, stored.text
        assert_problem(await generic({**sms, "message_id": "g\x002", "body": "hi"}))
        assert_problem(await generic({**sms, "from": "+1" * 20, "body": "hi"}))

        twilio_sms = {"MessageSid": "SM1", "From": "+15550002222", "To": "+15559990000"}
        answer = await twilio({**twilio_sms, "Body": "at\x00home", "NumMedia": "0"})
        assert answer.status_code == 200, answer.text
        assert_problem(await twilio({**twilio_sms, "MessageSid": "SM\x002", "Body": "x"}))
        assert_problem(await twilio({"From": "+15550002222", "To": "+15559990000"}))

        async with sessions() as session:
            bodies = set((await session.scalars(select(SmsMessage.body))).all())
        assert bodies == {"mail me\ufffdexample.com", "at\ufffdhome"}
