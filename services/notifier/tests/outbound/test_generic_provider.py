"""The generic HTTP/JSON provider adapter against a loopback JSON SMS API: URL template,
auth header, field mapping, idempotency key, status mapping of signed callbacks."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy import select

from tollgate.notifier.models import SmsOutbound
from tollgate.notifier.sms.signatures import generic_signature

from ..factories import receiver
from .test_send import ORG_A, environment, send

CALLBACK_SECRET = "json-provider-callback-secret"


async def test_a_configured_json_provider_sends_and_reports(
    database_factory: Callable[[str], str],
) -> None:
    async with receiver() as provider, environment(database_factory) as env:
        answers: dict[str, str] = {}

        async def respond(request: web.Request) -> web.StreamResponse:
            body = await request.json()
            key = request.headers.get("Idempotency-Key", "")
            answers.setdefault(key, f"msg-{len(answers) + 1}")
            assert body["route"] == "premium"
            return web.json_response({"result": {"message_id": answers[key]}}, status=200)

        provider.respond = respond
        added = await env.client.post(
            "/v1/admin/sms/providers",
            json={
                "name": "json-sms",
                "kind": "http",
                "priority": 1,  # preferred over the Twilio one
                "config": {
                    "url_template": f"http://127.0.0.1:{provider.port}/v2/send/{{to}}",
                    "auth_header": "X-Api-Token",
                    "fields": {"from": "sender", "text": "message.body", "to": "msisdn"},
                    "extra": [{"name": "route", "value": "premium"}],
                    "response_id_field": "result.message_id",
                    "callback_id_field": "id",
                    "callback_status_field": "state",
                    "callback_error_field": "err",
                    "status_map": [
                        {"theirs": "DELIVRD", "ours": "delivered"},
                        {"theirs": "UNDELIV", "ours": "undelivered"},
                        {"theirs": "ACCEPTD", "ours": "sent"},
                    ],
                },
                "credentials": {"auth_value": "tok-123", "callback_secret": CALLBACK_SECRET},
            },
            headers=env.admin,
        )
        assert added.status_code == 201, added.text
        assert "tok-123" not in added.text
        assert CALLBACK_SECRET not in added.text
        provider_id = added.json()["id"]

        message_id = uuid.UUID(
            (await send(env, ORG_A, to="+41791234567", text="Grüezi")).json()["id"]
        )
        assert await env.worker.run_once() == 1
        call = provider.captured[-1]
        assert call.path == "/v2/send/+41791234567"  # sent as %2B, decoded by the server
        assert call.headers["X-Api-Token"] == "tok-123"
        assert call.headers["Idempotency-Key"] == str(message_id)
        assert json.loads(call.body) == {
            "route": "premium",
            "sender": "+41445550100",
            "msisdn": "+41791234567",
            "message": {"body": "Grüezi"},
        }

        async def report(payload: dict[str, Any], secret: str = CALLBACK_SECRET) -> int:
            body = json.dumps(payload).encode()
            response = await env.client.post(
                f"/v1/sms/status/http/{provider_id}",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Tollgate-Signature": generic_signature(secret, int(time.time()), body),
                },
            )
            return response.status_code

        assert await report({"id": "msg-1", "state": "DELIVRD"}, secret="guessed") == 403
        assert await report({"id": "msg-1", "state": "BUFFERED"}) == 204  # unmapped: no change
        assert await report({"id": "msg-9", "state": "DELIVRD"}) == 404
        async with env.sessions() as session:
            row = (await session.scalars(select(SmsOutbound))).one()
            assert (row.status, row.provider_message_id) == ("sent", "msg-1")
        assert await report({"id": "msg-1", "state": "DELIVRD", "err": None}) == 204
        async with env.sessions() as session:
            row = (await session.scalars(select(SmsOutbound))).one()
            assert row.status == "delivered"
            assert row.delivered_at is not None


async def test_a_signed_report_with_nul_characters_is_answered_not_a_500(
    database_factory: Callable[[str], str],
) -> None:
    # Before: the NUL reached PostgreSQL (the lookup by id, or the stored error code)
    # and the provider got a 500 for every retry of its report.
    async with receiver() as provider, environment(database_factory) as env:

        async def respond(request: web.Request) -> web.StreamResponse:
            return web.json_response({"id": "msg-1"})

        provider.respond = respond
        added = await env.client.post(
            "/v1/admin/sms/providers",
            json={
                "name": "json-sms",
                "kind": "http",
                "priority": 1,
                "config": {
                    "url_template": f"http://127.0.0.1:{provider.port}/send",
                    "fields": {"to": "to", "text": "text"},
                    "status_map": [{"theirs": "FAILED", "ours": "failed"}],
                },
                "credentials": {"callback_secret": CALLBACK_SECRET},
            },
            headers=env.admin,
        )
        assert added.status_code == 201, added.text
        provider_id = added.json()["id"]
        assert (await send(env, ORG_A, text="hello")).status_code == 202
        assert await env.worker.run_once() == 1

        async def report(payload: dict[str, Any]) -> int:
            body = json.dumps(payload).encode()
            signature = generic_signature(CALLBACK_SECRET, int(time.time()), body)
            response = await env.client.post(
                f"/v1/sms/status/http/{provider_id}",
                content=body,
                headers={"Content-Type": "application/json", "X-Tollgate-Signature": signature},
            )
            return response.status_code

        assert await report({"id": "msg\x001", "status": "FAILED"}) == 404
        assert await report({"id": "msg-1", "status": "FAILED", "error_code": "E\x0042"}) == 204
        async with env.sessions() as session:
            row = (await session.scalars(select(SmsOutbound))).one()
        assert (row.status, row.refunded, row.error_code) == ("failed", True, "E\ufffd42")
