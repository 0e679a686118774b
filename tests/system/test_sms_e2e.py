"""The SMS product end to end, every part a real process on the real broker and
Postgres: a customer sends 1,000 messages (150 in CI, see MESSAGES) through the
gateway with its API key (mixed GSM-7 / UCS-2, 1-4 segments) → the notifier
(trusting only the gateway's signed identity) prices and queues them → the loopback
fake Twilio takes them and reports `sent` and `delivered` with signed callbacks →
every status reaches the customer's webhook endpoint, signed (Standard Webhooks,
verified here) → billing debits exactly segments times price per message, once → a
reply from a recipient lands in the sender's inbox (sent to the org's number; one
to a shared number is not the org's to read).

Also: identity headers a client forges through the gateway are stripped (the
notifier answers as for the caller's real org), forged headers sent to the notifier
directly are refused, a forged delivery report is refused, and an org whose credits
cannot cover a message gets 402 from the notifier (no overdraft). Prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from tollgate.kit.localdeps import free_port
from tollgate.kit.sealing import new_sealing_key
from tollgate.kit.testing.loopback import serving
from tollgate.kit.upstream_identity import identity_headers
from tollgate.notifier.outbound.encoding import segment
from tollgate.notifier.outbound.fake_twilio import FakeTwilio

from .services import ServiceProcess, service_process, start_all

pytestmark = pytest.mark.system

# CI size; the full size: SMS_E2E_MESSAGES=1000 (waits scale with the count).
MESSAGES = int(os.environ.get("SMS_E2E_MESSAGES", "150"))
WAIT_SECONDS = max(90.0, MESSAGES * 0.3)
CONCURRENCY = 24
ORG_NUMBER = "+41445550100"
PRICES = {"+": 9, "+41": 7, "+4179": 5}
IDENTITY_SECRET = "e2e-identity-" + uuid.uuid4().hex


def price_of(to: str) -> int:
    return max(((p, v) for p, v in PRICES.items() if to.startswith(p)), key=lambda x: len(x[0]))[1]


def texts(count: int, seed: int = 15) -> list[tuple[str, str]]:
    """(recipient, text) pairs: GSM-7 and UCS-2 (emoji, CJK), 1 to 4 segments."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        kind = i % 8
        if kind < 4:  # GSM-7, 1-4 segments, some extension characters
            length = rng.choice([20, 120, 250, 380, 480])
            body = (f"Order {i} ready [ok] {{x}} € " * 40)[:length]
        elif kind < 6:  # UCS-2 through an emoji
            body = ("Hi 👋 " + "a" * rng.choice([10, 100, 190, 260]))[:266]
        else:  # UCS-2 CJK
            body = "你好" * rng.choice([10, 40, 90, 130])
        to = rng.choice(["+41791", "+41441", "+1415555"]) + f"{i:06d}"
        out.append((to, body))
    return out


@dataclass
class WebhookSink:
    """The customer's webhook receiver: keeps each verified status event."""

    secret: str = ""
    port: int = field(default_factory=free_port)
    statuses: dict[str, list[str]] = field(default_factory=dict)
    ids: Counter[str] = field(default_factory=Counter)
    refused: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:
            self.refused += 1
            return web.Response(status=400)
        self.ids[request.headers["webhook-id"]] += 1
        if self.ids[request.headers["webhook-id"]] == 1 and payload["type"].endswith(
            "sms.status.v1"
        ):
            data = payload["data"]
            self.statuses.setdefault(data["message_id"], []).append(data["status"])
        return web.Response(status=204)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[WebhookSink]:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        async with serving(app, self.port):
            yield self


@dataclass
class Stack:
    accounts: ServiceProcess
    billing: ServiceProcess
    gateway: ServiceProcess
    notifier: ServiceProcess
    fake: FakeTwilio
    notifier_db: str
    billing_db: str

    @property
    def all(self) -> list[ServiceProcess]:
        return [self.accounts, self.billing, self.gateway, self.notifier]


def make_stack(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
    fake: FakeTwilio,
) -> Stack:
    secrets = {"SEALING_KEYS": new_sealing_key(), "KEY_PEPPER": uuid.uuid4().hex}
    accounts = service_process(
        "accounts",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_factory("sms_accounts"),
        extra={
            **secrets,
            "SIGNING_KEY_FILE": str(tmp_path / "signing.pem"),
            "SIGNING_KEY_GENERATE": "true",
            "ALLOW_PRIVATE_UPSTREAMS": "true",
            "ADMIN_EMAIL": "ops@example.com",
            "ADMIN_PASSWORD": "operator-Pass-2026",
        },
    )
    jwks = {"JWKS_URL": f"{accounts.url}/.well-known/jwks.json"}
    billing = service_process(
        "billing",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=(billing_db := database_factory("sms_billing")),
        extra={**jwks, "BALANCE_PUBLISH_INTERVAL_SECONDS": "1"},
    )
    gateway = service_process(
        "gateway",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        extra={
            **secrets,
            "SPOOL_DIR": str(tmp_path / "spool"),
            "ALLOW_PRIVATE_UPSTREAMS": "true",
            "IDENTITY_SECRETS": IDENTITY_SECRET,
        },
    )
    notifier = service_process(
        "notifier",
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=(notifier_db := database_factory("sms_notifier")),
        extra={
            **jwks,
            "SEALING_KEYS": secrets["SEALING_KEYS"],
            "GATEWAY_IDENTITY_SECRETS": IDENTITY_SECRET,
            "SMS_TWILIO_AUTH_TOKEN": fake.auth_token,
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
            "WEBHOOK_CONCURRENCY": "48",
            "WEBHOOK_ORG_CONCURRENCY": "48",
            "WEBHOOK_POLL_SECONDS": "0.1",
            "SMS_SEND_POLL_SECONDS": "0.05",
            "SMS_SEND_CONCURRENCY": "64",
            "SMS_SEND_LEASE_SECONDS": "5",
        },
    )
    # Twilio signs the URL it calls: the notifier's own address here.
    notifier.env["TOLLGATE_NOTIFIER_SMS_PUBLIC_URL"] = notifier.url
    return Stack(accounts, billing, gateway, notifier, fake, notifier_db, billing_db)


@dataclass
class Customer:
    org_id: str
    key: str
    admin: dict[str, str]
    gateway: httpx.AsyncClient
    notifier: httpx.AsyncClient
    billing: httpx.AsyncClient


@contextlib.asynccontextmanager
async def customer(stack: Stack, sink: WebhookSink, credits: int) -> AsyncIterator[Customer]:
    """An org with the SMS API, a key, credits, a number, prices, the fake provider
    and a webhook endpoint subscribed to SMS statuses."""
    async with (
        httpx.AsyncClient(base_url=stack.accounts.url, timeout=30) as acc,
        httpx.AsyncClient(base_url=stack.billing.url, timeout=30) as bil,
        httpx.AsyncClient(base_url=stack.gateway.url, timeout=30) as gw,
        httpx.AsyncClient(base_url=stack.notifier.url, timeout=30) as nt,
    ):
        login = await acc.post(
            "/v1/auth/token", data={"username": "ops@example.com", "password": "operator-Pass-2026"}
        )
        assert login.status_code == 200, login.text
        admin = {"authorization": f"Bearer {login.json()['access_token']}"}
        for client in (acc, bil, nt):
            client.headers.update(admin)
        org = (await acc.post("/v1/orgs", json={"name": "Texter"})).json()
        api = await acc.post(
            "/v1/apis",
            json={
                "slug": "sms",
                "name": "SMS",
                "upstream_url": f"{stack.notifier.url}/v1",
                "price": 0,  # each message is charged per segment by the notifier
            },
        )
        assert api.status_code == 201, api.text
        issued = await acc.post(f"/v1/orgs/{org['id']}/keys", json={"name": "texter"})
        assert issued.status_code == 201, issued.text
        if credits:
            answer = await bil.post(
                f"/v1/orgs/{org['id']}/credits",
                json={"amount": credits, "reason": "e2e"},
                headers={"idempotency-key": uuid.uuid4().hex},
            )
            assert answer.status_code in (200, 201), answer.text
        answer = await nt.put(
            "/v1/admin/sms/numbers", json={"number": ORG_NUMBER, "org_id": org["id"]}
        )
        assert answer.status_code == 200, answer.text
        for prefix, price in PRICES.items():
            answer = await nt.put(
                "/v1/admin/sms/prices", json={"prefix": prefix, "price_per_segment": price}
            )
            assert answer.status_code == 200, answer.text
        answer = await nt.post(
            "/v1/admin/sms/providers",
            json={
                "name": "fake-twilio",
                "kind": "twilio",
                "config": {"base_url": stack.fake.base_url, "account_sid": stack.fake.account_sid},
                "credentials": {"auth_token": stack.fake.auth_token},
                "rate_per_second": 2000,
            },
        )
        assert answer.status_code == 201, answer.text
        endpoint = await nt.post(
            f"/v1/orgs/{org['id']}/webhooks/endpoints",
            json={
                "url": f"http://127.0.0.1:{sink.port}/hook",
                "event_types": ["tollgate.notifier.sms.status.v1"],
            },
        )
        assert endpoint.status_code == 201, endpoint.text
        sink.secret = endpoint.json()["secret"]
        yield Customer(org["id"], issued.json()["key"], admin, gw, nt, bil)


@dataclass
class Outage:
    """The notifier being killed and restarted under the customer's feet: calls may
    fail, and a message's minute to be accepted counts from the notifier's last return
    (a restart on a slow host takes many seconds)."""

    down: bool = False
    back_at: float = 0.0


async def send_all(
    c: Customer, batch: list[tuple[str, str]], *, outage: Outage | None = None
) -> tuple[dict[str, dict[str, Any]], int]:
    """POST every message through the gateway; returns accepted messages by id and
    the count of calls that did not get an answer (only while `outage` goes on)."""
    accepted: dict[str, dict[str, Any]] = {}
    failures = 0
    queue: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue()
    for i, (to, text) in enumerate(batch):
        queue.put_nowait((i, to, text))

    async def worker() -> None:
        nonlocal failures
        while not queue.empty():
            i, to, text = queue.get_nowait()
            first_try = time.monotonic()
            while True:
                try:
                    answer = await c.gateway.post(
                        "/sms/sms/messages",
                        json={
                            "to": to,
                            "from": ORG_NUMBER,
                            "text": text,
                            "client_reference": str(i),
                        },
                        headers={"X-API-Key": c.key},
                    )
                except httpx.HTTPError:
                    answer = None
                if answer is not None and answer.status_code == 202:
                    accepted[answer.json()["id"]] = answer.json()
                    break
                if answer is not None and answer.status_code not in (401, 502, 503, 504):
                    raise AssertionError(answer.text)
                if answer is None or answer.status_code >= 502:
                    assert outage is not None, answer.text if answer else "no answer"
                    failures += 1
                # 401 while the key replays at the gateway; 502 while the notifier is down:
                # the customer retries with a new reference (a 502 may have been accepted).
                waited = time.monotonic() - max(first_try, outage.back_at if outage else 0.0)
                assert (outage is not None and outage.down) or waited < 60, (
                    "not accepted in 60 s; last answer: "
                    + (f"{answer.status_code} {answer.text}" if answer else "none")
                )
                await asyncio.sleep(0.05)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return accepted, failures


async def wait_for(predicate: Callable[[], Any], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not await predicate():
        assert time.monotonic() - started < seconds, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def balance(c: Customer) -> int:
    return int((await c.billing.get(f"/v1/orgs/{c.org_id}/balance")).json()["balance"])


async def test_a_thousand_messages_billed_reported_and_answered(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    # Reports come a little after the send, as from a carrier (fewer early 404s).
    fake = FakeTwilio(callback_delay=0.2)
    await fake.start()
    stack = make_stack(tmp_path, kafka_bootstrap, topic_prefix, database_factory, fake)
    sink = WebhookSink()
    credits = 1_000_000
    try:
        start_all(stack.all)
        async with sink.running(), customer(stack, sink, credits) as c:
            # The key reaches the gateway by replay: wait for the first answer that is not 401.
            batch = texts(MESSAGES)
            started = time.monotonic()
            accepted, _ = await send_all(c, batch)
            send_seconds = time.monotonic() - started
            assert len(accepted) == MESSAGES
            by_ref = {m["client_reference"]: m for m in accepted.values()}
            expected_total = 0
            shapes: Counter[tuple[str, int]] = Counter()
            for i, (to, text) in enumerate(batch):
                shape = segment(text)
                message = by_ref[str(i)]
                assert (message["encoding"], message["segments"]) == (
                    shape.encoding,
                    shape.segments,
                )
                assert message["price"] == shape.segments * price_of(to)
                expected_total += message["price"]
                shapes[(shape.encoding, shape.segments)] += 1
            assert {s for _, s in shapes} == {1, 2, 3, 4}
            assert {e for e, _ in shapes} == {"gsm7", "ucs2"}

            async def all_reported() -> bool:
                return sum(1 for s in sink.statuses.values() if s[-1:] == ["delivered"]) >= MESSAGES

            async def all_sent() -> bool:
                return len(fake.messages) >= MESSAGES

            async def all_called_back() -> bool:
                return sum(fake.callbacks_acknowledged.values()) >= 2 * MESSAGES

            provider_seconds = await wait_for(all_sent, WAIT_SECONDS, "sends to the provider")
            callback_seconds = await wait_for(all_called_back, WAIT_SECONDS, "delivery reports")
            report_seconds = await wait_for(all_reported, WAIT_SECONDS, "delivery webhooks")
            assert len(fake.messages) == MESSAGES  # each sent to the provider once
            assert set(sink.statuses) == set(accepted)
            assert all(s == ["queued", "sent", "delivered"] for s in sink.statuses.values())
            assert sink.refused == 0

            async def billed() -> bool:
                return await balance(c) == credits - expected_total

            bill_seconds = await wait_for(billed, 60, "billing")
            ledger = (
                await c.billing.get(f"/v1/orgs/{c.org_id}/transactions", params={"limit": 500})
            ).json()
            sms_debits = [e for e in ledger["items"] if e.get("kind") == "debit"]
            assert sms_debits, ledger

            # A recipient answers the number that wrote: it lands in the org's inbox.
            replier = batch[0][0]
            assert await fake.reply(
                f"{stack.notifier.url}/v1/sms/inbound/twilio",
                from_=replier,
                to=ORG_NUMBER,
                body="Thanks, see you!",
            )

            async def replied() -> bool:
                inbox = (await c.notifier.get(f"/v1/orgs/{c.org_id}/sms/messages")).json()
                return any(m["from_number"] == replier for m in inbox["items"])

            await wait_for(replied, 20, "the reply in the inbox")
            inbox = (await c.notifier.get(f"/v1/orgs/{c.org_id}/sms/messages")).json()
            assert inbox["items"][0]["routed_by"] == "assigned_number"

            # Forged identity through the gateway: stripped, the real org answers.
            some_id = next(iter(accepted))
            other_org = str(uuid.uuid4())
            forged = await c.gateway.get(
                f"/sms/sms/messages/{some_id}",
                headers={"X-API-Key": c.key, "X-Tollgate-Org-Id": other_org},
            )
            assert forged.status_code == 200
            assert forged.json()["org_id"] == c.org_id
            # Straight to the notifier with headers of another request: refused.
            direct = await c.notifier.get(
                f"/v1/sms/messages/{some_id}",
                headers=identity_headers(
                    "not-the-gateway-secret",
                    method="GET",
                    path=f"/v1/sms/messages/{some_id}",
                    org_id=c.org_id,
                    key_id=str(uuid.uuid4()),
                    request_id=str(uuid.uuid4()),
                ),
            )
            assert direct.status_code == 401
            # A forged delivery report: refused, nothing changes.
            message = next(iter(fake.messages.values()))
            params, _ = fake.callback_form(message, "failed", "30008")
            provider_id = message.callback.rsplit("/", 1)[1] if message.callback else ""
            forged_report = await c.notifier.post(
                f"/v1/sms/status/twilio/{provider_id}",
                data=params,
                headers={"X-Twilio-Signature": "bm90LWEtc2lnbmF0dXJl"},
            )
            assert forged_report.status_code == 403
            assert await balance(c) == credits - expected_total
        print(
            f"\n{MESSAGES} SMS through the gateway in {send_seconds:.1f} s "
            f"({MESSAGES / send_seconds:.0f}/s, {CONCURRENCY} concurrent); all at the provider "
            f"{provider_seconds:.1f} s later, reported {callback_seconds:.1f} s after, every "
            f"delivery webhook {report_seconds:.1f} s after that; billed exactly "
            f"{expected_total} credits ({bill_seconds:.1f} s after); "
            f"segments/encodings {dict(sorted(shapes.items()))}"
        )
    finally:
        for svc in reversed(stack.all):
            svc.stop()
        await fake.stop()


async def test_an_org_out_of_credits_gets_402(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    fake = FakeTwilio()
    await fake.start()
    stack = make_stack(tmp_path, kafka_bootstrap, topic_prefix, database_factory, fake)
    sink = WebhookSink()
    try:
        start_all(stack.all)
        async with sink.running(), customer(stack, sink, credits=12) as c:
            sent = 0
            deadline = time.monotonic() + 30
            while True:
                answer = await c.gateway.post(
                    "/sms/sms/messages",
                    json={"to": "+41791234567", "from": ORG_NUMBER, "text": "hello"},
                    headers={"X-API-Key": c.key},
                )
                if answer.status_code == 402:
                    break
                assert answer.status_code in (202, 401), answer.text
                sent += answer.status_code == 202
                assert time.monotonic() < deadline, "never refused"
                if sent == 1 and answer.status_code == 202:
                    # Billing applies the first message before the second is sent: its
                    # debit must not be counted again against the 7 credits left.
                    async def first_debited() -> bool:
                        return await balance(c) == 7

                    await wait_for(first_debited, 30, "the first message debited")
                    await asyncio.sleep(1)  # billing's balance reaches the notifier
                await asyncio.sleep(0.05)
            assert answer.headers["content-type"] == "application/problem+json"
            # 5 credits each: 12 credits cover two messages, and the notifier refuses the
            # third itself, whether or not billing has applied the first ones yet: no
            # overdraft, and no credit counted twice.
            assert answer.json()["type"].endswith("insufficient-credits"), answer.text
            assert sent == 2

            async def debited() -> bool:
                return await balance(c) == 2

            await wait_for(debited, 30, "the two messages debited")
            print(f"\n402 after {sent} messages of 5 credits on 12 credits")
    finally:
        for svc in reversed(stack.all):
            svc.stop()
        await fake.stop()
