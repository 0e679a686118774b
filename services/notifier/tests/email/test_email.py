"""Email: the Resend client against a local fake Resend, retries, permanent failures
visible to admins, the file backend, and the templates in both languages."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select

from tollgate.contracts.envelope import new_event
from tollgate.contracts.events.accounts import (
    EmailVerificationRequested,
    MemberInvited,
    OrgRole,
    PasswordResetRequested,
)
from tollgate.kit.sealing import Sealer
from tollgate.kit.testing.pages import check_list_contract
from tollgate.kit.testing.tokens import TokenMint
from tollgate.notifier.email import service
from tollgate.notifier.email.backends import FileBackend, ResendBackend
from tollgate.notifier.email.templates import KINDS, render
from tollgate.notifier.email.worker import EmailWorker
from tollgate.notifier.intake.service import queue_notifications
from tollgate.notifier.models import EmailMessage

from ..events import credits_low
from ..factories import (
    SEALING_KEY,
    FakeClock,
    api_client,
    database,
    migrated,
    receiver,
    settings_for,
)

API_KEY = "re_test_0123456789"


def reset_event(token: str, locale: str = "en") -> object:
    return new_event(
        PasswordResetRequested(
            user_id=uuid.uuid4(),
            email="ada@example.com",
            locale=locale,
            reset_token_sealed=Sealer(SEALING_KEY).seal(token),
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        ),
        source="tollgate/accounts/test",
    )


async def test_resend_request_shape_retries_and_permanent_failures(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    clock = FakeClock()
    mint = TokenMint()
    problems: list[str] = []
    answers = [web.Response(status=429, headers={"Retry-After": "30"}), None]

    async with database(url) as sessions, receiver() as fake:

        async def resend(request: web.Request) -> web.StreamResponse:
            body = json.loads(fake.captured[-1].body)
            if request.method != "POST" or request.path != "/emails":
                problems.append(f"{request.method} {request.path}")
            if request.headers.get("Authorization") != f"Bearer {API_KEY}":
                problems.append("auth")
            if set(body) != {"from", "to", "subject", "html", "text"} or not isinstance(
                body["to"], list
            ):
                problems.append(f"shape {sorted(body)}")
            if body["to"] == ["bounce@example.com"]:
                return web.json_response({"message": "invalid"}, status=422)
            answer = answers.pop(0) if answers else None
            return answer or web.json_response({"id": "re_msg_1"})

        fake.respond = resend
        token = "raw-reset-token-Zx9"
        async with sessions() as session, session.begin():
            event = reset_event(token, locale="zh-CN")
            await queue_notifications(session, [event, event], clock.now())  # type: ignore[list-item]
            await service.queue_email(
                session,
                kind="credits_low",
                locale="en",
                to="bounce@example.com",
                context={"balance": 5, "threshold": 10},
                dedupe_key="bounce",
                now=clock.now(),
            )
        backend = ResendBackend(base_url=f"http://127.0.0.1:{fake.port}", api_key=API_KEY)
        worker = EmailWorker(
            sessions=sessions,
            backend=backend,
            sealer=Sealer(SEALING_KEY),
            clock=clock,
            sender="Tollgate <no-reply@example.com>",
            console_url="https://console.example.com",
            max_attempts=5,
            rng=random.Random(1),
        )
        try:
            assert await worker.run_once() == 2  # reset (429) + bounce (422)
            clock.advance(seconds=20)
            assert await worker.run_once() == 0  # Retry-After: 30 honoured
            clock.advance(seconds=15)
            assert await worker.run_once() == 1
            clock.advance(hours=1)
            assert await worker.run_once() == 0
        finally:
            await backend.close()

        assert problems == []
        reset_calls = [c for c in fake.captured if b"ada@example.com" in c.body]
        assert len(reset_calls) == 2
        keys = {c.headers["Idempotency-Key"] for c in reset_calls}
        assert len(keys) == 1  # the retry reuses the key
        sent = json.loads(reset_calls[-1].body)
        assert sent["subject"] == "重置您的 Tollgate 密码"
        assert f"https://console.example.com/reset-password?token={token}" in sent["text"]
        assert f"https://console.example.com/reset-password?token={token}" in sent["html"]

        async with api_client(settings_for(url), mint, clock) as (client, _):
            admin = mint.headers(admin=True)
            assert (await client.get("/v1/admin/emails", headers=mint.headers())).status_code == 403
            failed = (await client.get("/v1/admin/emails?state=failed", headers=admin)).json()[
                "items"
            ]
            assert [(m["to"], m["attempts"]) for m in failed] == [("bounce@example.com", 1)]
            assert "HTTP 422" in failed[0]["last_error"]
            sent_list = (await client.get("/v1/admin/emails?state=sent", headers=admin)).json()[
                "items"
            ]
            everything = await client.get("/v1/admin/emails?limit=500", headers=admin)
            await check_list_contract(
                client,
                "/v1/admin/emails",
                headers=admin,
                expected={m["id"] for m in everything.json()["items"]},
                page_size=1,
            )
            assert [m["provider_id"] for m in sent_list] == ["re_msg_1"]
            assert token not in json.dumps(sent_list)
            retried = await client.post(f"/v1/admin/emails/{failed[0]['id']}/retry", headers=admin)
            assert retried.json()["state"] == "pending"


async def test_server_errors_are_retried_until_max_attempts(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    clock = FakeClock()
    async with database(url) as sessions, receiver() as fake:

        async def broken(request: web.Request) -> web.StreamResponse:
            return web.Response(status=503)

        fake.respond = broken
        async with sessions() as session, session.begin():
            await service.queue_email(
                session,
                kind="credits_exhausted",
                locale="en",
                to="ops@example.com",
                context={"balance": 0, "mode": "prepaid"},
                dedupe_key="x",
                now=clock.now(),
            )
        backend = ResendBackend(base_url=f"http://127.0.0.1:{fake.port}", api_key=API_KEY)
        worker = EmailWorker(
            sessions=sessions,
            backend=backend,
            sealer=Sealer(SEALING_KEY),
            clock=clock,
            sender="t@example.com",
            console_url="http://c",
            max_attempts=4,
        )
        try:
            for _ in range(10):
                await worker.run_once()
                clock.advance(hours=1)
        finally:
            await backend.close()
    assert len(fake.captured) == 4
    assert len({c.headers["Idempotency-Key"] for c in fake.captured}) == 1


async def test_an_error_body_with_nul_fails_the_mail_once(
    database_factory: Callable[[str], str],
) -> None:
    # Before: the error (Resend's body, kept as last_error) could not be stored, so the
    # try was never recorded and the mail went to Resend again at every lease's end.
    url = await migrated(database_factory("notifier"))
    clock = FakeClock()
    async with database(url) as sessions, receiver() as fake:

        async def refused(request: web.Request) -> web.StreamResponse:
            return web.Response(status=422, body=b'{"message":"bad \x00 address"}')

        fake.respond = refused
        async with sessions() as session, session.begin():
            await service.queue_email(
                session,
                kind="credits_exhausted",
                locale="en",
                to="ops@example.com",
                context={"balance": 0, "mode": "prepaid"},
                dedupe_key="x",
                now=clock.now(),
            )
        backend = ResendBackend(base_url=f"http://127.0.0.1:{fake.port}", api_key=API_KEY)
        worker = EmailWorker(
            sessions=sessions,
            backend=backend,
            sealer=Sealer(SEALING_KEY),
            clock=clock,
            sender="t@example.com",
            console_url="http://c",
            max_attempts=4,
        )
        try:
            for _ in range(3):
                await worker.run_once()
                clock.advance(hours=1)
        finally:
            await backend.close()
        async with sessions() as session:
            mail = (await session.scalars(select(EmailMessage))).one()
    assert len(fake.captured) == 1
    assert (mail.state, mail.attempts) == ("failed", 1)
    assert mail.last_error is not None
    assert "bad \ufffd address" in mail.last_error


async def test_org_mails_go_to_notification_contacts_and_file_backend(
    database_factory: Callable[[str], str], tmp_path: Path
) -> None:
    url = await migrated(database_factory("notifier"))
    mint, clock = TokenMint(), FakeClock()
    org, other = uuid.uuid4(), uuid.uuid4()
    async with (
        database(url) as sessions,
        api_client(settings_for(url), mint, clock) as (client, _),
    ):
        path = f"/v1/orgs/{org}/notification-contacts"
        body = {"contacts": [{"email": "Ops@Example.com", "locale": "en"}]}
        dev = mint.headers(orgs={org: "developer"})
        assert (await client.put(path, json=body, headers=dev)).status_code == 403
        stranger = mint.headers(orgs={other: "owner"})
        assert (await client.put(path, json=body, headers=stranger)).status_code == 404
        assert (await client.get(path, headers=stranger)).status_code == 404
        owner = mint.headers(orgs={org: "owner"})
        stored = await client.put(path, json=body, headers=owner)
        assert stored.json()["items"] == [{"email": "ops@example.com", "locale": "en"}]
        invalid = await client.put(path, json={"contacts": [{"email": "nope"}]}, headers=owner)
        assert invalid.status_code == 422
        listed = uuid.uuid4()
        three = {"contacts": [{"email": f"{n}@example.com"} for n in ("a", "b", "c")]}
        listed_owner = mint.headers(orgs={listed: "owner"})
        contacts_path = f"/v1/orgs/{listed}/notification-contacts"
        assert (await client.put(contacts_path, json=three, headers=listed_owner)).is_success
        await check_list_contract(
            client,
            contacts_path,
            headers=listed_owner,
            expected={"a@example.com", "b@example.com", "c@example.com"},
            key=lambda c: c["email"],
        )

        invite = new_event(
            MemberInvited(
                org_id=org,
                org_name="Acme <script>",
                email="new@example.com",
                role=OrgRole.DEVELOPER,
                invited_by=uuid.uuid4(),
                invitation_token_sealed=Sealer(SEALING_KEY).seal("inv-token-1"),
                expires_at=datetime.now(UTC),
                locale="en",
            ),
            source="tollgate/accounts/test",
        )
        async with sessions() as session, session.begin():
            queued = await queue_notifications(
                session, [credits_low(org), credits_low(other), invite], clock.now()
            )
        assert queued.emails == 2  # the other org has no contacts
        worker = EmailWorker(
            sessions=sessions,
            backend=FileBackend(str(tmp_path)),
            sealer=Sealer(SEALING_KEY),
            clock=clock,
            sender="t@example.com",
            console_url="http://localhost:8081",
            max_attempts=3,
        )
        assert await worker.run_once() == 2
    texts, htmls = _mail_files(tmp_path)
    assert len(texts) == 2
    assert any("To: ops@example.com" in t and "running low" in t for t in texts)
    invitation = next(t for t in texts if "To: new@example.com" in t)
    assert "http://localhost:8081/accept-invitation?token=inv-token-1" in invitation
    html = next(h for h in htmls if "Acme" in h)
    assert "Acme &lt;script&gt;" in html


def _mail_files(directory: Path) -> tuple[list[str], list[str]]:
    texts = sorted(p.read_text() for p in directory.glob("*.txt"))
    return texts, sorted(p.read_text() for p in directory.glob("*.html"))


def test_every_template_renders_in_english_and_chinese() -> None:
    context = {
        "expires_at": "2025-01-01 00:00 UTC",
        "org_name": "Acme",
        "role": "owner",
        "balance": 5,
        "threshold": 10,
        "key_id": "k1",
        "period": "day",
        "threshold_percent": 80,
        "used": 8,
        "limit": 10,
        "host": "hooks.example.com",
        "endpoint_id": "0192f0c4-0000-7000-8000-000000000001",
        "reason": "gone",
        "mode": "prepaid",
        "plan_name": "Pro",
        "invoice_id": "in_1",
        "grace_until": "2025-01-04 00:00 UTC",
        "api_name": "Weather",
        "api_version": "v1",
        "api_slug": "weather",
        "route": "GET /forecast/{city}",
        "path_template": "/forecast/{city}",
        "requests": 12,
        "sunset": "none",
    }
    for kind in KINDS:
        en = render(kind, "en-GB", context, "https://c/x")
        zh = render(kind, "zh-Hant-TW", context, "https://c/x")
        assert en.subject != zh.subject
        assert en.text.strip()
        assert "<html" in en.html
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh.subject + zh.text)
    assert "410 Gone" in render("webhook_endpoint_disabled", "en", context).text
    suspended = {"plan_name": "Pro", "reason": "the subscription ended"}
    assert "订阅已结束" in render("plan_suspended", "zh-CN", suspended).text
    assert "the subscription ended" in render("plan_suspended", "en", suspended).text


async def test_a_verification_request_queues_one_mail_linking_to_the_console(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = f"verify-{uuid.uuid4().hex}"
    event = new_event(
        EmailVerificationRequested(
            user_id=uuid.uuid4(),
            email="new@example.com",
            locale="zh-CN",
            verification_token_sealed=Sealer(SEALING_KEY).seal(token),
            expires_at=datetime(2030, 1, 2, 3, 4, tzinfo=UTC),
        ),
        source="tollgate/accounts/test",
    )
    queued: list[dict[str, object]] = []

    async def insert_email(_: object, row: dict[str, object]) -> bool:
        queued.append(row)
        return True

    monkeypatch.setattr(service.repository, "insert_email", insert_email)
    assert await service.queue_for_event(None, event, datetime.now(UTC)) == 1  # type: ignore[arg-type]
    row = queued[0]
    assert (row["kind"], row["to_address"]) == ("email_verification", "new@example.com")
    assert token not in json.dumps(row, default=str)  # sealed while queued
    message = EmailMessage(kind=row["kind"], locale=row["locale"], context=row["context"])
    mail = service.compose(message, Sealer(SEALING_KEY), "https://console.example.com/")
    assert f"https://console.example.com/verify-email?token={token}" in mail.text
    assert mail.subject == "确认您在 Tollgate 的邮箱地址"
