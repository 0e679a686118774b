"""Outbound SMS in process on a real Postgres, against the loopback fake Twilio:
identity from the gateway, validation, ownership, pricing, the send queue (retries,
permanent failures refunded, a crash mid-send not sending twice), delivery reports
(forged ones refused), tenant isolation and conversations routing replies."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, select

from tollgate.contracts.decoding import decode
from tollgate.kit.db import SessionMaker
from tollgate.kit.sealing import Sealer
from tollgate.kit.testing.tokens import TokenMint
from tollgate.kit.upstream_identity import identity_headers
from tollgate.notifier.models import SmsMessage, SmsNumber, SmsOutbound, outbox
from tollgate.notifier.outbound.fake_twilio import FakeTwilio
from tollgate.notifier.outbound.worker import SmsSendWorker
from tollgate.notifier.sms import repository as numbers
from tollgate.notifier.sms.service import InboundSms, receive, route_pending

from ..factories import SEALING_KEY, FakeClock, api_client, database, migrated, settings_for

SECRET = "gateway-identity-secret"
PUBLIC = "https://notifier.example.com"
ORG_A, ORG_B = uuid.uuid4(), uuid.uuid4()
NUMBER_A, NUMBER_B = "+41445550100", "+14155550199"


@dataclass
class Env:
    client: httpx.AsyncClient
    sessions: SessionMaker
    clock: FakeClock
    fake: FakeTwilio
    worker: SmsSendWorker
    admin: dict[str, str]
    mint: TokenMint
    app: FastAPI


def caller(
    org: uuid.UUID, path: str = "/v1/sms/messages", method: str = "POST", **kw: Any
) -> dict[str, str]:
    return identity_headers(
        SECRET,
        method=method,
        path=path,
        org_id=str(org),
        key_id=str(kw.pop("key_id", uuid.uuid4())),
        key_name="backend",
        scopes=["sms:send"],
        request_id=str(uuid.uuid4()),
        **kw,
    )


@asynccontextmanager
async def environment(
    database_factory: Callable[[str], str], **overrides: Any
) -> AsyncIterator[Env]:
    url = await migrated(database_factory("notifier"))
    settings = settings_for(
        url,
        gateway_identity_secrets=SECRET,
        sms_public_url=PUBLIC,
        sms_send_max_attempts=3,
        **overrides,
    )
    mint, clock = TokenMint(), FakeClock()
    fake = FakeTwilio(auto_callbacks=False)
    await fake.start()
    try:
        async with api_client(settings, mint, clock) as (client, app), database(url) as sessions:
            admin = mint.headers(admin=True)
            async with sessions() as session, session.begin():
                await numbers.upsert_number(session, NUMBER_A, ORG_A, clock.now())
                await numbers.upsert_number(session, NUMBER_B, ORG_B, clock.now())
            for prefix, price in (("+", 10), ("+41", 7), ("+4179", 5)):
                response = await client.put(
                    "/v1/admin/sms/prices",
                    json={"prefix": prefix, "price_per_segment": price},
                    headers=admin,
                )
                assert response.status_code == 200, response.text
            response = await client.post(
                "/v1/admin/sms/providers",
                json={
                    "name": "twilio-main",
                    "kind": "twilio",
                    "config": {"base_url": fake.base_url, "account_sid": fake.account_sid},
                    "credentials": {"auth_token": fake.auth_token},
                    "rate_per_second": 1000,
                },
                headers=admin,
            )
            assert response.status_code == 201, response.text
            assert fake.auth_token not in response.text
            worker = SmsSendWorker(
                sessions=sessions, sealer=Sealer(SEALING_KEY), clock=clock, settings=settings
            )
            try:
                yield Env(client, sessions, clock, fake, worker, admin, mint, app)
            finally:
                await worker.close()
    finally:
        await fake.stop()


async def send(env: Env, org: uuid.UUID, **body: Any) -> httpx.Response:
    payload = {"to": "+41791234567", "from": NUMBER_A if org == ORG_A else NUMBER_B, "text": "hi"}
    payload.update(body)
    return await env.client.post("/v1/sms/messages", json=payload, headers=caller(org))


async def outbox_types(sessions: SessionMaker) -> list[Any]:
    """The SMS events in the outbox (audit records of admin calls left out)."""
    async with sessions() as session:
        rows = (await session.execute(select(outbox.c.value))).scalars().all()
    events = [decode(bytes(v)).data for v in rows]
    return [e for e in events if type(e).__name__.startswith("Sms")]


async def report(env: Env, sid: str, status: str, error: str = "", forge: bool = False) -> int:
    message = env.fake.messages[sid]
    params, signature = env.fake.callback_form(message, status, error)
    if forge:
        params["MessageStatus"] = "failed"
    path = message.callback.removeprefix(PUBLIC) if message.callback else ""
    response = await env.client.post(
        path,
        content=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
    )
    return response.status_code


async def test_only_the_gateways_signed_identity_is_trusted(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        body = {"to": "+41791234567", "from": NUMBER_A, "text": "hi"}
        missing = await env.client.post("/v1/sms/messages", json=body)
        assert missing.status_code == 401
        assert missing.json()["type"].endswith("identity-missing")
        forged = caller(ORG_A)
        forged["X-Tollgate-Org-Id"] = str(ORG_B)
        response = await env.client.post("/v1/sms/messages", json=body, headers=forged)
        assert response.status_code == 401
        assert response.json()["type"].endswith("identity-forged")
        stale = caller(ORG_A, signed_at=int(env.clock.now().timestamp()) - 120)
        response = await env.client.post("/v1/sms/messages", json=body, headers=stale)
        assert response.json()["type"].endswith("identity-stale")
        genuine = caller(ORG_A)
        assert (
            await env.client.post("/v1/sms/messages", json=body, headers=genuine)
        ).status_code == 202
        replayed = await env.client.post("/v1/sms/messages", json=body, headers=genuine)
        assert replayed.status_code == 401
        assert replayed.json()["type"].endswith("identity-replayed")
        # A JWT (a user's token) is not a gateway identity.
        user = await env.client.post("/v1/sms/messages", json=body, headers=env.admin)
        assert user.status_code == 401
        async with env.sessions() as session:
            assert len((await session.scalars(select(SmsOutbound))).all()) == 1


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"to": "0791234567"}, 422, "invalid-phone-number"),
        ({"to": "+41 79 123 45 67"}, 422, "invalid-phone-number"),
        ({"from": "+41 44 555"}, 422, "invalid-phone-number"),
        ({"from": "Tollgate"}, 403, "sender-not-owned"),  # a sender id nobody approved
        ({"from": "Tollgate Shop"}, 422, "invalid-sender-id"),  # 13 characters
        ({"from": "12345"}, 422, "invalid-sender-id"),  # no letter
        ({"from": NUMBER_B}, 403, "sender-not-owned"),  # the other org's number
        ({"from": "+41445550999"}, 403, "sender-not-owned"),  # nobody's number
        ({"text": "a" * 1531}, 422, "invalid-text"),  # 11 GSM-7 segments
        ({"text": "你" * 671}, 422, "invalid-text"),  # 11 UCS-2 segments
        ({"text": ""}, 422, "validation"),
        ({"status_callback": "yes"}, 422, "validation"),
        ({"extra": 1}, 422, "validation"),
    ],
)
async def test_bad_messages_are_refused_and_nothing_is_charged(
    database_factory: Callable[[str], str], body: dict[str, Any], status: int, slug: str
) -> None:
    async with environment(database_factory) as env:
        response = await send(env, ORG_A, **body)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith(slug)
        assert await outbox_types(env.sessions) == []


async def test_price_is_segments_times_the_longest_prefix(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        cases = [
            ("+41791234567", "hi", 1, "gsm7", 5),  # +4179 beats +41 and +
            ("+41441234567", "a" * 161, 2, "gsm7", 2 * 7),  # +41
            ("+14155550123", "Grüß dich 👋", 1, "ucs2", 10),  # only + matches
            ("+41781234567", "你" * 135, 3, "ucs2", 3 * 7),
        ]
        for to, text, segments, encoding, price in cases:
            response = await send(env, ORG_A, to=to, text=text, client_reference="r1")
            assert response.status_code == 202, response.text
            sent = response.json()
            assert (sent["segments"], sent["encoding"], sent["price"]) == (
                segments,
                encoding,
                price,
            )
            assert sent["status"] == "queued"
            assert sent["from"] == NUMBER_A
        charges = [e for e in await outbox_types(env.sessions) if type(e).__name__ == "SmsCharged"]
        assert sorted(c.amount for c in charges) == sorted(c[4] for c in cases)
        assert {c.org_id for c in charges} == {ORG_A}
        # The price table: no prefix for a destination means it is not offered.
        response = await env.client.delete(
            "/v1/admin/sms/prices", params={"prefix": "+"}, headers=env.admin
        )
        assert response.status_code == 204
        response = await send(env, ORG_A, to="+14155550123")
        assert response.status_code == 422
        assert response.json()["type"].endswith("destination-not-priced")


async def test_send_report_and_isolation(database_factory: Callable[[str], str]) -> None:
    async with environment(database_factory) as env:
        ids = []
        for i in range(3):
            response = await send(env, ORG_A, text=f"code {i}")
            ids.append(response.json()["id"])
        other = (await send(env, ORG_B)).json()["id"]
        assert await env.worker.run_once() == 4
        assert len(env.fake.messages) == 4
        sids = {m.body: sid for sid, m in env.fake.messages.items()}

        assert await report(env, sids["code 0"], "sent") == 204
        assert await report(env, sids["code 0"], "delivered") == 204
        assert await report(env, sids["code 0"], "sent") == 204  # late: changes nothing
        assert await report(env, sids["code 1"], "undelivered", "30005") == 204
        assert await report(env, sids["code 2"], "delivered", forge=True) == 403

        path = f"/v1/sms/messages/{ids[0]}"
        got = await env.client.get(path, headers=caller(ORG_A, path, "GET"))
        assert got.status_code == 200
        message = got.json()
        assert message["status"] == "delivered"
        assert [s["status"] for s in message["timeline"]] == ["queued", "sent", "delivered"]
        assert message["delivered_at"] is not None
        path1 = f"/v1/sms/messages/{ids[1]}"
        got1 = (await env.client.get(path1, headers=caller(ORG_A, path1, "GET"))).json()
        assert (got1["status"], got1["error_code"], got1["refunded"]) == (
            "undelivered",
            "30005",
            False,
        )
        path2 = f"/v1/sms/messages/{ids[2]}"
        assert (await env.client.get(path2, headers=caller(ORG_A, path2, "GET"))).json()[
            "status"
        ] == "sent"

        # Another org's message id is a 404 for the key and for the org's members.
        path = f"/v1/sms/messages/{other}"
        assert (await env.client.get(path, headers=caller(ORG_A, path, "GET"))).status_code == 404
        member = env.mint.headers(orgs={ORG_A: "viewer"})
        mine = await env.client.get(f"/v1/orgs/{ORG_A}/sms/sent/{ids[0]}", headers=member)
        assert mine.status_code == 200
        assert mine.json()["status"] == "delivered"
        response = await env.client.get(f"/v1/orgs/{ORG_A}/sms/sent/{other}", headers=member)
        assert response.status_code == 404
        # Another org's log: not even its existence is told.
        response = await env.client.get(f"/v1/orgs/{ORG_B}/sms/sent/{other}", headers=member)
        assert response.status_code == 404

        statuses = [
            (e.message_id, e.status.value)
            for e in await outbox_types(env.sessions)
            if type(e).__name__ == "SmsStatusChanged"
        ]
        assert (uuid.UUID(ids[0]), "delivered") in statuses
        assert sum(1 for m, s in statuses if m == uuid.UUID(ids[0])) == 3

        # The customer's log: a list with the kit's page contract.
        headers_for_list = caller(ORG_A, "/v1/sms/messages", "GET")
        listed = await env.client.get(
            "/v1/sms/messages", params={"limit": 2}, headers=headers_for_list
        )
        assert listed.status_code == 200
        assert len(listed.json()["items"]) == 2
        assert listed.json()["next_cursor"]


async def test_transient_errors_retry_and_permanent_ones_fail_and_refund(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        env.fake.flaky["+41790000001"] = 2  # two 503s, then accepted
        env.fake.flaky["+41790000002"] = 9  # always 503: fails after 3 attempts
        env.fake.refused.add("+41790000003")  # 21211: fails at once
        ids = {}
        for n in (1, 2, 3):
            response = await send(env, ORG_A, to=f"+4179000000{n}", text="x" * 200)
            ids[n] = uuid.UUID(response.json()["id"])
        for _ in range(4):
            await env.worker.run_once()
            env.clock.advance(minutes=2)
        async with env.sessions() as session:
            rows = {m.id: m for m in (await session.scalars(select(SmsOutbound))).all()}
        assert (rows[ids[1]].status, rows[ids[1]].attempts) == ("sent", 3)
        assert (rows[ids[2]].status, rows[ids[2]].attempts, rows[ids[2]].error_code) == (
            "failed",
            3,
            "20500",
        )
        assert (rows[ids[3]].status, rows[ids[3]].attempts, rows[ids[3]].error_code) == (
            "failed",
            1,
            "21211",
        )
        refunds = [e for e in await outbox_types(env.sessions) if type(e).__name__ == "SmsRefunded"]
        assert sorted(r.message_id for r in refunds) == sorted([ids[2], ids[3]])
        assert all(r.amount == 2 * 5 for r in refunds)
        # Another round finds nothing to send and refunds nothing more.
        await env.worker.run_once()
        assert (
            len([e for e in await outbox_types(env.sessions) if type(e).__name__ == "SmsRefunded"])
            == 2
        )


async def test_a_crash_between_send_and_record_resends_with_the_same_token(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory, sms_send_lease_seconds=30) as env:
        message_id = uuid.UUID((await send(env, ORG_A)).json()["id"])
        # The process dies after the provider accepted, before the outcome is recorded.
        record = env.worker._record

        async def crash(*_: Any) -> None:  # the round's outcomes are never recorded
            raise SystemExit("kill -9")

        env.worker._record = crash  # type: ignore[method-assign,assignment]
        with pytest.raises(SystemExit):
            await env.worker.run_once()
        env.worker._record = record  # type: ignore[method-assign]
        assert await env.worker.run_once() == 0  # leased: not sent again yet
        env.clock.advance(seconds=31)
        assert await env.worker.run_once() == 1
        assert env.fake.posts_by_token[str(message_id)] == 2
        assert len(env.fake.messages) == 1  # the provider sent it once
        async with env.sessions() as session:
            row = await session.get(SmsOutbound, message_id)
            assert row is not None
            assert (row.status, row.attempts) == ("sent", 2)
            assert row.provider_message_id == next(iter(env.fake.messages))


async def test_a_reply_routes_to_the_org_that_wrote_until_the_conversation_expires(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory, sms_conversation_hours=24) as env:
        assert (
            await send(env, ORG_B, to="+41791112233", text="Your table is ready")
        ).status_code == 202

        async def inbound(to: str) -> SmsMessage:
            async with env.sessions() as session, session.begin():
                message_id, _ = await receive(
                    session,
                    InboundSms("twilio", "SM" + uuid.uuid4().hex, "+41791112233", to, "Thanks!"),
                    env.clock.now(),
                )
                await route_pending(session, now=env.clock.now())
                routed = await session.get(SmsMessage, message_id)
                assert routed is not None
                return routed

        async def forget_inbound() -> None:
            # Without earlier inbound messages the history rule cannot decide.
            async with env.sessions() as session, session.begin():
                await session.execute(delete(SmsMessage))

        # To a shared number no org owns: not the conversation's. Before, the org that
        # wrote from its own number read what the sender sent anywhere else.
        elsewhere = await inbound("+41445550000")
        assert (elsewhere.org_id, elsewhere.routed_by) == (None, "admin_inbox")
        await forget_inbound()
        # The number B wrote from is released: replies to it still reach B while the
        # conversation is open.
        async with env.sessions() as session, session.begin():
            await session.execute(delete(SmsNumber).where(SmsNumber.number == NUMBER_B))
        reply = await inbound(NUMBER_B)
        assert (reply.org_id, reply.routed_by) == (ORG_B, "conversation")
        await forget_inbound()
        env.clock.advance(hours=23)
        still = await inbound(NUMBER_B)
        assert (still.org_id, still.routed_by) == (ORG_B, "conversation")
        await forget_inbound()
        env.clock.advance(hours=2)  # 25 h after the message: the conversation is over
        late = await inbound(NUMBER_B)
        assert (late.org_id, late.routed_by) == (None, "admin_inbox")


async def test_providers_never_show_credentials_and_report_balance(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        listed = await env.client.get("/v1/admin/sms/providers", headers=env.admin)
        assert listed.status_code == 200
        assert env.fake.auth_token not in listed.text
        provider = listed.json()[0]
        balance = await env.client.get(
            f"/v1/admin/sms/providers/{provider['id']}/balance", headers=env.admin
        )
        assert balance.json()["balance"] == "12.50"
        assert balance.json()["currency"] == "USD"
        bad = await env.client.post(
            "/v1/admin/sms/providers",
            json={"name": "x", "kind": "http", "config": {"url_template": "ftp://x"}},
            headers=env.admin,
        )
        assert bad.status_code == 422
        assert (
            await env.client.get("/v1/admin/sms/providers", headers=caller(ORG_A))
        ).status_code == 401
        await send(env, ORG_A, text="a" * 200)
        usage = await env.client.get("/v1/admin/sms/usage", headers=env.admin)
        assert usage.json() == [
            {
                "org_id": str(ORG_A),
                "messages": 1,
                "segments": 2,
                "credits_charged": 10,
                "credits_refunded": 0,
            }
        ]
