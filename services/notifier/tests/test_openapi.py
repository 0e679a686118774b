"""Schemathesis against the OpenAPI document, in process: generated valid and invalid
requests to every route get no 5xx and no response that contradicts the schema.

Every other valid case has its ids swapped for rows seeded beforehand, so the
handlers behind a 404 (an endpoint's deliveries, a message, a mail, a rule) are
reached as well; DELETE routes run last, so those rows are there until then. The
inbound SMS routes are exercised too: the test signs each generated body the way
Twilio and the generic provider do, so it gets past the signature check into parsing
and storage.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import schemathesis
from schemathesis.core import NotSet
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tollgate.kit.db import session_maker
from tollgate.kit.migrations import upgrade_head
from tollgate.kit.sealing import Sealer
from tollgate.kit.testing.fuzz import fuzz_operations, pooled_sessions
from tollgate.kit.testing.tokens import TokenMint
from tollgate.notifier.app import create_app
from tollgate.notifier.email import service as email
from tollgate.notifier.models import EmailMessage
from tollgate.notifier.sms import service as sms
from tollgate.notifier.sms.signatures import generic_signature, twilio_signature
from tollgate.notifier.webhooks import repository as webhook_rows
from tollgate.notifier.webhooks import service as webhooks

from .factories import SEALING_KEY, settings_for

EXAMPLES_PER_OPERATION = 5
SEMANTIC_RULES = {
    "POST /v1/orgs/{org_id}/webhooks/endpoints": "the URL must reach a public host",
    "PATCH /v1/orgs/{org_id}/webhooks/endpoints/{endpoint_id}": "the URL must reach a public host",
    "POST /v1/admin/sms/keyword-rules": "a regex rule must compile on RE2",
    "PATCH /v1/admin/sms/keyword-rules/{rule_id}": "a regex rule must compile on RE2",
    "PUT /v1/orgs/{org_id}/notification-contacts": "addresses deliverable and distinct",
    "POST /v1/admin/sms/providers": "the configuration must work for its kind",
    "PATCH /v1/admin/sms/providers/{provider_id}": "the configuration must work for its kind",
    "POST /v1/admin/sms/providers/{provider_id}/test-send": "`from` a number or a sender id",
    "POST /v1/orgs/{org_id}/webhooks/endpoints/{endpoint_id}/recover": "`since` not ahead",
    **{
        f"GET {path}": "a cursor must be one this API issued"
        for path in (
            "/v1/orgs/{org_id}/webhooks/endpoints",
            "/v1/orgs/{org_id}/webhooks/endpoints/{endpoint_id}/deliveries",
            "/v1/orgs/{org_id}/sms/messages",
            "/v1/admin/sms/messages",
            "/v1/admin/emails",
            "/v1/orgs/{org_id}/sms/sent",
            "/v1/admin/sms/sent",
            "/v1/sms/messages",
            "/v1/webhooks/event-types",
            "/v1/orgs/{org_id}/notification-contacts",
            "/v1/admin/sms/numbers",
            "/v1/admin/sms/keyword-rules",
            "/v1/orgs/{org_id}/sms/numbers",
            "/v1/orgs/{org_id}/sms/keyword-rules",
        )
    },
}
OPERATIONS = 53
PUBLIC = "https://notifier.example.com"
TWILIO_TOKEN = "twilio-token"
HMAC_SECRET = "generic-secret"


async def _seed(url: str) -> dict[str, str]:
    """One of each row a route can address; returns the path parameters naming them."""
    engine = create_async_engine(url, poolclass=NullPool)
    sessions = session_maker(engine)
    now = datetime.now(UTC)
    org = uuid.uuid4()
    try:
        async with sessions() as session, session.begin():
            endpoint, _ = await webhooks.create_endpoint(
                session,
                Sealer(SEALING_KEY),
                org,
                url="https://example.com/hook",
                description="seeded",
                event_types=[],
                enabled=True,
                now=now,
            )
            delivery = await webhooks.queue_ping(session, endpoint, now)
            await webhook_rows.update_delivery(session, delivery, state="failed", finished_at=now)
            await email.queue_email(
                session,
                kind="credits_low",
                locale="en",
                to="ops@example.com",
                context={"balance": 1, "threshold": 10},
                dedupe_key="seeded",
                now=now,
                org_id=org,
            )
            mail = await session.scalar(
                EmailMessage.__table__.select().with_only_columns(EmailMessage.id)
            )
            number = "+15550000001"
            await sms.repository.upsert_number(session, number, org, now)
            message, _ = await sms.receive(
                session, sms.InboundSms("generic", "seeded", "+15551112222", number, "hi"), now
            )
            await sms.route_pending(session, now=now)
            rule = await sms.add_keyword_rule(
                session, org_id=org, kind="first_word", pattern="PIZZA", priority=1, now=now
            )
    finally:
        await engine.dispose()
    return {
        "org_id": str(org),
        "endpoint_id": str(endpoint.id),
        "delivery_id": str(delivery),
        "email_id": str(mail),
        "message_id": str(message),
        "number": number,
        "rule_id": str(rule.id),
    }


def _signed_by_provider(case: schemathesis.Case) -> dict[str, Any]:
    """For the inbound SMS routes, the generated body signed as the provider would sign
    it (replacing the call's body and headers), so the call passes the check."""
    if not case.path.startswith("/v1/sms/inbound/"):
        return {}
    if case.path.endswith("/twilio"):
        if isinstance(case.body, bytes):  # negative mode: not a form at all
            raw = case.body
        else:
            form = case.body if isinstance(case.body, dict) else {}
            raw = urlencode(form, doseq=True).encode()
        params: dict[str, list[str]] = {}
        for name, value in parse_qsl(raw.decode(errors="replace"), keep_blank_values=True):
            params.setdefault(name, []).append(value)
        signature = twilio_signature(TWILIO_TOKEN, PUBLIC + case.formatted_path, params)
        headers = {
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
        }
        return {"headers": headers, "data": raw}
    if isinstance(case.body, bytes):
        body = case.body
    elif isinstance(case.body, NotSet):
        body = b""
    else:
        body = json.dumps(case.body).encode()
    headers = {
        "X-Tollgate-Signature": generic_signature(HMAC_SECRET, int(time.time()), body),
        "Content-Type": "application/json",
    }
    return {"headers": headers, "data": body}


def test_schemathesis_finds_no_server_errors_or_schema_violations(
    database_factory: Callable[[str], str],
) -> None:
    url = database_factory("notifier")
    upgrade_head("tollgate.notifier", url)
    seeded = asyncio.run(_seed(url))
    app = create_app(
        settings_for(
            url,
            sms_public_url=PUBLIC,
            sms_twilio_auth_token=TWILIO_TOKEN,
            sms_hmac_secret=HMAC_SECRET,
        )
    )
    mint = TokenMint()
    app.state.jwt_verifier = mint.verifier()
    with pooled_sessions(app, url):
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        report = fuzz_operations(
            schema,
            examples=EXAMPLES_PER_OPERATION,
            headers=mint.headers(admin=True),
            call_kwargs=_signed_by_provider,
            known_path_parameters=seeded,
            semantic_rules=SEMANTIC_RULES,
        )
    assert report.operations == OPERATIONS
    assert not report.failures, "\n".join(report.failures[:40])
