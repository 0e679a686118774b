"""Hostile input gets a 4xx, never a 500: provider signature headers with non-ASCII
bytes or absurd timestamps, deeply nested JSON, flags and priorities that are not JSON
booleans and integers, and webhook URLs that hide an internal IPv4 address inside an
IPv6 one (6to4, NAT64, Teredo, compatible)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tollgate.kit.testing.tokens import TokenMint
from tollgate.notifier.sms.signatures import generic_signature

from .factories import FakeClock, api_client, migrated, settings_for

TWILIO_TOKEN = "12345678901234567890123456789012"
HMAC_SECRET = "generic-provider-secret"
GENERIC_BODY = b'{"message_id": "m1", "from": "+14155550100", "to": "+14155550199", "body": "hi"}'


def _settings(url: str) -> Any:
    return settings_for(
        url,
        sms_public_url="https://notifier.example.com",
        sms_twilio_auth_token=TWILIO_TOKEN,
        sms_hmac_secret=HMAC_SECRET,
        webhook_allowed_networks="",
    )


def _fields(reply: Any) -> set[str]:
    """The body fields the validation errors name."""
    return {str(e["loc"][1]) for e in reply.json().get("errors", []) if len(e["loc"]) > 1}


async def test_sms_signature_headers_with_non_ascii_bytes_are_refused(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    genuine = generic_signature(HMAC_SECRET, int(time.time()), GENERIC_BODY)
    hostile_generic = [
        genuine[:-4].encode() + "é€".encode(),  # a valid prefix, then UTF-8 bytes
        b"t=" + str(int(time.time())).encode() + b",v1=\xff\xfe",
        b"t=\xb2\xb3,v1=00",  # latin-1 superscript digits
        b"t=" + b"9" * 400 + b",v1=00",  # a timestamp no float can hold
        b"t=" + b"9" * 5000 + b",v1=00",  # more digits than int() converts
        b"t=-" + b"9" * 400 + b",v1=00",
    ]
    async with api_client(_settings(url), TokenMint(), FakeClock()) as (client, _):
        twilio = await client.post(
            "/v1/sms/inbound/twilio",
            content=b"MessageSid=SM1&From=%2B14155550100&To=%2B14155550199&Body=hi",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": "c2lnbmF0dXJl\xe9\xff".encode("latin-1"),
            },
        )
        generic = [
            await client.post(
                "/v1/sms/inbound/generic",
                content=GENERIC_BODY,
                headers={"Content-Type": "application/json", "X-Tollgate-Signature": header},
            )
            for header in hostile_generic
        ]
    for reply in [twilio, *generic]:
        assert reply.status_code == 403, reply.text
        assert reply.headers["content-type"] == "application/problem+json"


async def test_deeply_nested_bodies_are_refused_with_a_4xx(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    mint = TokenMint()
    org = uuid.uuid4()
    owner = mint.headers(orgs={org: "owner"})
    nested = "[" * 5000 + "]" * 5000
    async with api_client(_settings(url), mint, FakeClock()) as (client, _):
        endpoint = await client.post(
            f"/v1/orgs/{org}/webhooks/endpoints",
            content=f'{{"url": "https://example.com/hook", "event_types": {nested}}}',
            headers={**owner, "Content-Type": "application/json"},
        )
        contacts = await client.put(
            f"/v1/orgs/{org}/notification-contacts",
            content=f'{{"contacts": {nested}}}',
            headers={**owner, "Content-Type": "application/json"},
        )
        signed = f'{{"message_id": "m1", "from": "+1", "to": "+2", "body": "x", "x": {nested}}}'
        generic = await client.post(
            "/v1/sms/inbound/generic",
            content=signed,
            headers={
                "Content-Type": "application/json",
                "X-Tollgate-Signature": generic_signature(
                    HMAC_SECRET, int(time.time()), signed.encode()
                ),
            },
        )
        listed = await client.get(f"/v1/orgs/{org}/webhooks/endpoints", headers=owner)
    for reply in (endpoint, contacts, generic):
        assert reply.status_code == 400, reply.text
        assert reply.headers["content-type"] == "application/problem+json"
        assert "nested" in reply.json()["detail"]
    assert listed.json()["items"] == []


@pytest.mark.parametrize("flag", ["true", 1, 0, "false", None, 1.0])
async def test_flags_are_json_booleans_only(
    database_factory: Callable[[str], str], flag: Any
) -> None:
    url = await migrated(database_factory("notifier"))
    mint = TokenMint()
    org = uuid.uuid4()
    owner = mint.headers(orgs={org: "owner"})
    async with api_client(_settings(url), mint, FakeClock()) as (client, _):
        created = await client.post(
            f"/v1/orgs/{org}/webhooks/endpoints",
            json={"url": "https://example.com/hook", "enabled": flag},
            headers=owner,
        )
        good = await client.post(
            f"/v1/orgs/{org}/webhooks/endpoints",
            json={"url": "https://example.com/hook", "enabled": False},
            headers=owner,
        )
        patched = await client.patch(
            f"/v1/orgs/{org}/webhooks/endpoints/{good.json()['id']}",
            json={"enabled": flag},
            headers=owner,
        )
        read = await client.post(
            f"/v1/orgs/{org}/sms/messages/{uuid.uuid4()}/read",
            json={"read": flag},
            headers=owner,
        )
        after = await client.get(
            f"/v1/orgs/{org}/webhooks/endpoints/{good.json()['id']}", headers=owner
        )
    assert good.status_code == 201, good.text
    for reply in (created, read) if flag is None else (created, patched, read):
        assert reply.status_code == 422, reply.text
        assert _fields(reply) == {"read" if reply is read else "enabled"}
    assert after.json()["enabled"] is False


@pytest.mark.parametrize("priority", ["5", True, 1.5])
async def test_keyword_rule_priorities_are_json_integers_only(
    database_factory: Callable[[str], str], priority: Any
) -> None:
    url = await migrated(database_factory("notifier"))
    mint = TokenMint()
    async with api_client(_settings(url), mint, FakeClock()) as (client, _):
        reply = await client.post(
            "/v1/admin/sms/keyword-rules",
            json={
                "org_id": str(uuid.uuid4()),
                "kind": "first_word",
                "pattern": "PIZZA",
                "priority": priority,
            },
            headers=mint.headers(admin=True),
        )
        rules = await client.get("/v1/admin/sms/keyword-rules", headers=mint.headers(admin=True))
    assert reply.status_code == 422, reply.text
    assert _fields(reply) == {"priority"}
    assert rules.json()["items"] == []


@pytest.mark.parametrize(
    "hook",
    [
        "http://[2002:a9fe:a9fe::]/",  # 6to4 of 169.254.169.254 (metadata)
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of the metadata address
        "http://[64:ff9b:1::a00:1]/",  # local-use NAT64 of 10.0.0.1
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
        "http://[::a9fe:a9fe]/",  # IPv4-compatible 169.254.169.254
    ],
)
async def test_webhook_urls_hiding_internal_ipv4_addresses_are_refused(
    database_factory: Callable[[str], str], hook: str
) -> None:
    url = await migrated(database_factory("notifier"))
    mint = TokenMint()
    org = uuid.uuid4()
    owner = mint.headers(orgs={org: "owner"})
    async with api_client(_settings(url), mint, FakeClock()) as (client, _):
        created = await client.post(
            f"/v1/orgs/{org}/webhooks/endpoints", json={"url": hook}, headers=owner
        )
        good = await client.post(
            f"/v1/orgs/{org}/webhooks/endpoints",
            json={"url": "https://example.com/hook"},
            headers=owner,
        )
        patched = await client.patch(
            f"/v1/orgs/{org}/webhooks/endpoints/{good.json()['id']}",
            json={"url": hook},
            headers=owner,
        )
    for reply in (created, patched):
        assert reply.status_code == 422, reply.text
        assert "internal" in reply.json()["detail"]
