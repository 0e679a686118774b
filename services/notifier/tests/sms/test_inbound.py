"""Inbound SMS: provider signatures (checked against Twilio's own RequestValidator),
deduplication, every routing rule, the inboxes and the admin APIs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from urllib.parse import urlencode

import httpx
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from tollgate.contracts.decoding import decode
from tollgate.kit.testing.pages import check_list_contract
from tollgate.kit.testing.tokens import TokenMint
from tollgate.notifier.models import SmsMessage, WebhookDelivery, outbox
from tollgate.notifier.sms.service import route_pending
from tollgate.notifier.sms.signatures import generic_signature

from ..factories import FakeClock, api_client, database, make_endpoint, migrated, settings_for

TWILIO_TOKEN = "12345678901234567890123456789012"
PUBLIC = "https://notifier.example.com"
TWILIO_URL = f"{PUBLIC}/v1/sms/inbound/twilio"
HMAC_SECRET = "generic-provider-secret"


def _settings(url: str) -> object:
    return settings_for(
        url,
        sms_public_url=PUBLIC,
        sms_twilio_auth_token=TWILIO_TOKEN,
        sms_hmac_secret=HMAC_SECRET,
    )


def twilio_params(
    sid: str, body: str, *, to: str = "+14155550199", sender: str = "+14155550100"
) -> dict[str, str]:
    return {"MessageSid": sid, "From": sender, "To": to, "Body": body, "AccountSid": "AC1"}


async def post_twilio(
    client: httpx.AsyncClient, params: dict[str, str], signature: str | None = None
) -> httpx.Response:
    if signature is None:
        signature = RequestValidator(TWILIO_TOKEN).compute_signature(TWILIO_URL, params)
    return await client.post(
        "/v1/sms/inbound/twilio",
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )


async def route(sessions: object, clock: FakeClock) -> int:
    async with sessions() as session, session.begin():  # type: ignore[operator]
        return await route_pending(session, now=clock.now())


async def test_twilio_signature_and_replays(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("notifier"))
    mint, clock = TokenMint(), FakeClock()
    async with api_client(_settings(url), mint, clock) as (client, _), database(url) as sessions:  # type: ignore[arg-type]
        params = twilio_params("SM" + uuid.uuid4().hex, "hello there")
        genuine = RequestValidator(TWILIO_TOKEN).compute_signature(TWILIO_URL, params)
        assert RequestValidator(TWILIO_TOKEN).validate(TWILIO_URL, params, genuine)

        forged = RequestValidator("0" * 32).compute_signature(TWILIO_URL, params)
        assert (await post_twilio(client, params, forged)).status_code == 403
        altered = {**params, "Body": "hello therE"}
        assert (await post_twilio(client, altered, genuine)).status_code == 403
        other_url = RequestValidator(TWILIO_TOKEN).compute_signature(TWILIO_URL + "x", params)
        assert (await post_twilio(client, params, other_url)).status_code == 403
        unsigned = await client.post(
            "/v1/sms/inbound/twilio",
            content=urlencode(params),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert unsigned.status_code == 403
        assert unsigned.headers["content-type"].startswith("application/problem+json")

        for _ in range(10):
            response = await post_twilio(client, params, genuine)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/xml")
            assert "<Response>" in response.text
        assert await route(sessions, clock) == 1
        assert await route(sessions, clock) == 0
        async with sessions() as session:
            rows = (await session.scalars(select(SmsMessage))).all()
            events = [decode(v) for v in (await session.scalars(select(outbox.c.value))).all()]
        assert len(rows) == 1
        assert rows[0].routed_by == "admin_inbox"
        assert [e.type for e in events] == ["tollgate.notifier.sms.received.v1"]


async def test_generic_hmac_scheme(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("notifier"))
    mint, clock = TokenMint(), FakeClock()
    async with api_client(_settings(url), mint, clock) as (client, _):  # type: ignore[arg-type]
        body = json.dumps(
            {"message_id": "gen-1", "from": "+4930123456", "to": "+4930999999", "body": "hi"}
        ).encode()
        now = int(clock.now().timestamp())

        async def post(signature: str, content: bytes = body) -> httpx.Response:
            return await client.post(
                "/v1/sms/inbound/generic",
                content=content,
                headers={"X-Tollgate-Signature": signature, "Content-Type": "application/json"},
            )

        first = await post(generic_signature(HMAC_SECRET, now, body))
        assert first.status_code == 200
        assert first.json()["duplicate"] is False
        again = await post(generic_signature(HMAC_SECRET, now, body))
        assert again.json() == {"message_id": first.json()["message_id"], "duplicate": True}
        assert (await post(generic_signature("wrong", now, body))).status_code == 403
        assert (await post(generic_signature(HMAC_SECRET, now - 301, body))).status_code == 403
        tampered = body.replace(b'"hi"', b'"ho"')
        assert (await post(generic_signature(HMAC_SECRET, now, body), tampered)).status_code == 403
        assert (await client.post("/v1/sms/inbound/nope", content=b"")).status_code == 404


async def test_routing_rules_in_order(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("notifier"))
    mint, clock = TokenMint(), FakeClock()
    numbered, first_word, regex = (uuid.uuid4() for _ in range(3))
    admin = mint.headers(admin=True)
    async with api_client(_settings(url), mint, clock) as (client, _), database(url) as sessions:  # type: ignore[arg-type]
        await make_endpoint(
            sessions,
            numbered,
            "http://127.0.0.1:9/hook",
            event_types=["tollgate.notifier.sms.received.v1"],
        )
        assert (
            await client.put(
                "/v1/admin/sms/numbers",
                json={"number": "+15550000001", "org_id": str(numbered)},
                headers=mint.headers(),
            )
        ).status_code == 403
        assert (
            await client.put(
                "/v1/admin/sms/numbers",
                json={"number": "555", "org_id": str(numbered)},
                headers=admin,
            )
        ).status_code == 422
        numbers = await client.put(
            "/v1/admin/sms/numbers",
            json={"number": "+15550000001", "org_id": str(numbered)},
            headers=admin,
        )
        assert numbers.json()["items"][0]["org_id"] == str(numbered)
        rule_a = (
            await client.post(
                "/v1/admin/sms/keyword-rules",
                json={"org_id": str(first_word), "kind": "first_word", "pattern": "PIZZA"},
                headers=admin,
            )
        ).json()
        rule_b = (
            await client.post(
                "/v1/admin/sms/keyword-rules",
                json={
                    "org_id": str(regex),
                    "kind": "regex",
                    "pattern": r"order\s+#\d+",
                    "priority": 200,
                },
                headers=admin,
            )
        ).json()
        bad_regex = await client.post(
            "/v1/admin/sms/keyword-rules",
            json={"org_id": str(regex), "kind": "regex", "pattern": "("},
            headers=admin,
        )
        assert bad_regex.status_code == 422
        await check_list_contract(
            client,
            "/v1/admin/sms/keyword-rules",
            headers=admin,
            expected={rule_a["id"], rule_b["id"]},
            page_size=1,
        )

        shared = "+15559999999"
        cases = [
            ("+15551110000", "+15550000001", "anything", numbered, "assigned_number", None),
            ("+15552220000", shared, "pizza, large please", first_word, "keyword", rule_a["id"]),
            ("+15553330000", shared, "where is order #42?", regex, "keyword", rule_b["id"]),
            ("+15554440000", shared, "who is this?", None, "admin_inbox", None),
            # The sender who wrote to the pizza shop before: a message without a keyword
            # follows the history on this number, one with another org's keyword goes to
            # that org (before, history won: the pizza shop read it).
            ("+15552220000", shared, "thanks!", first_word, "conversation", None),
            ("+15552220000", shared, "order #7 status", regex, "keyword", rule_b["id"]),
            # History on another number decides nothing here.
            ("+15551110000", shared, "hello?", None, "admin_inbox", None),
        ]
        for i, (sender, to, body, org, routed_by, rule_id) in enumerate(cases):
            params = twilio_params(f"SM{i}", body, to=to, sender=sender)
            assert (await post_twilio(client, params)).status_code == 200
            assert await route(sessions, clock) == 1
            async with sessions() as session:
                row = (
                    await session.scalars(
                        select(SmsMessage).where(SmsMessage.provider_message_id == f"SM{i}")
                    )
                ).one()
            assert (row.org_id, row.routed_by) == (org, routed_by), body
            assert (str(row.rule_id) if row.rule_id else None) == rule_id
            clock.advance(seconds=1)

        async with sessions() as session:
            deliveries = (await session.scalars(select(WebhookDelivery))).all()
        assert [d.org_id for d in deliveries] == [numbered]  # the org's SMS webhook

        # Inboxes: filter, mark read, tenant isolation, admin inbox.
        owner = mint.headers(orgs={first_word: "viewer"})
        inbox = (await client.get(f"/v1/orgs/{first_word}/sms/messages", headers=owner)).json()[
            "items"
        ]
        await check_list_contract(
            client,
            f"/v1/orgs/{first_word}/sms/messages",
            headers=owner,
            expected={m["id"] for m in inbox},
            page_size=1,
        )
        assert [m["body"] for m in inbox] == ["thanks!", "pizza, large please"]
        message_id = inbox[0]["id"]
        marked = await client.post(
            f"/v1/orgs/{first_word}/sms/messages/{message_id}/read",
            json={"read": True},
            headers=owner,
        )
        assert marked.json()["read"] is True
        unread = (
            await client.get(f"/v1/orgs/{first_word}/sms/messages?unread=true", headers=owner)
        ).json()
        assert [m["body"] for m in unread["items"]] == ["pizza, large please"]
        by_sender = (
            await client.get(
                f"/v1/orgs/{first_word}/sms/messages?from_number=%2B15552220000", headers=owner
            )
        ).json()
        assert len(by_sender["items"]) == 2

        stranger = mint.headers(orgs={regex: "owner"})
        assert (
            await client.get(f"/v1/orgs/{first_word}/sms/messages", headers=stranger)
        ).status_code == 404
        for path in (
            f"/v1/orgs/{regex}/sms/messages/{message_id}",
            f"/v1/orgs/{first_word}/sms/messages/{message_id}",
        ):
            assert (await client.get(path, headers=stranger)).status_code == 404
            assert (await client.post(path + "/read", json={}, headers=stranger)).status_code == 404

        admin_inbox = (await client.get("/v1/admin/sms/messages", headers=admin)).json()
        assert [m["body"] for m in admin_inbox["items"]] == ["hello?", "who is this?"]
        assert (await client.get("/v1/admin/sms/messages", headers=owner)).status_code == 403
        assert (
            await client.post(f"/v1/admin/sms/messages/{message_id}/read", json={}, headers=admin)
        ).status_code == 404

        assert (
            await client.delete(f"/v1/admin/sms/keyword-rules/{rule_a['id']}", headers=admin)
        ).status_code == 204
        # A retried delete reaches the same state: 204 again, not 404.
        assert (
            await client.delete(f"/v1/admin/sms/keyword-rules/{rule_a['id']}", headers=admin)
        ).status_code == 204
        for _ in range(2):
            assert (
                await client.delete("/v1/admin/sms/numbers/+15550000001", headers=admin)
            ).status_code == 204
        assert (await client.get("/v1/admin/sms/numbers", headers=admin)).json()["items"] == []
