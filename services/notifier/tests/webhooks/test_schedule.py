"""The retry schedule, Retry-After, 410 and the 5-day disable, on a controllable
clock against a real receiver and database (no sleeping)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import timedelta

from aiohttp import web
from sqlalchemy import select

from tollgate.notifier.intake.service import queue_notifications
from tollgate.notifier.models import EmailMessage, WebhookDelivery, WebhookEndpoint
from tollgate.notifier.webhooks import service
from tollgate.notifier.webhooks.service import RETRY_SCHEDULE, retry_delay

from ..events import topped_up
from ..factories import FakeClock, database, delivery_worker, make_endpoint, migrated, receiver


async def _failing(request: web.Request) -> web.StreamResponse:
    return web.Response(status=503, text="down for maintenance")


def test_retry_delays_follow_the_schedule_within_jitter() -> None:
    rng = random.Random(7)
    for attempts, base in enumerate(RETRY_SCHEDULE):
        delays = [retry_delay(attempts, None, rng) for _ in range(200)]
        seconds = [d.total_seconds() for d in delays if d is not None]
        assert min(seconds) >= base * 0.8
        assert max(seconds) <= base * 1.2
        if base:
            assert len(set(seconds)) > 100  # jittered, not constant
    assert retry_delay(len(RETRY_SCHEDULE), None, rng) is None
    assert retry_delay(1, 3600, rng) == timedelta(seconds=3600)  # Retry-After wins
    assert retry_delay(1, 10**9, rng) == timedelta(hours=24)  # but is capped


async def test_failing_delivery_is_retried_on_schedule_then_failed(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    org = uuid.uuid4()
    clock = FakeClock()
    async with database(url) as sessions, receiver() as rec:
        rec.respond = _failing
        await make_endpoint(sessions, org, rec.url, now=clock.now())
        async with sessions() as session, session.begin():
            await queue_notifications(session, [topped_up(org)], clock.now())
        worker, sender = delivery_worker(sessions, clock)
        try:
            assert await worker.run_once() == 1  # attempt 1 at 0 s
            for base in RETRY_SCHEDULE[1:]:
                clock.advance(seconds=base * 0.8 - 1)
                assert await worker.run_once() == 0, f"retried before {base} s"
                clock.advance(seconds=base * 0.4 + 2)
                assert await worker.run_once() == 1, f"not retried after {base} s"
            clock.advance(days=2)
            assert await worker.run_once() == 0
        finally:
            await sender.close()
        async with sessions() as session:
            delivery = (await session.scalars(select(WebhookDelivery))).one()
    assert len(rec.captured) == len(RETRY_SCHEDULE) == 8
    assert len(set(rec.ids())) == 1  # the same webhook-id on every attempt
    assert delivery.state == "failed"
    assert delivery.attempts == 8
    assert delivery.last_status == 503


async def test_retry_after_is_honoured(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("notifier"))
    org = uuid.uuid4()
    clock = FakeClock()

    async def busy(request: web.Request) -> web.StreamResponse:
        return web.Response(status=429, headers={"Retry-After": "600"})

    async with database(url) as sessions, receiver() as rec:
        rec.respond = busy
        await make_endpoint(sessions, org, rec.url, now=clock.now())
        async with sessions() as session, session.begin():
            await queue_notifications(session, [topped_up(org)], clock.now())
        worker, sender = delivery_worker(sessions, clock)
        try:
            await worker.run_once()
            clock.advance(seconds=590)  # the schedule alone would have retried at ~5 s
            assert await worker.run_once() == 0
            clock.advance(seconds=11)
            assert await worker.run_once() == 1
        finally:
            await sender.close()


async def test_410_disables_the_endpoint_at_once(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("notifier"))
    org = uuid.uuid4()
    clock = FakeClock()

    async def gone(request: web.Request) -> web.StreamResponse:
        return web.Response(status=410)

    async with database(url) as sessions, receiver() as rec:
        rec.respond = gone
        endpoint, _ = await make_endpoint(sessions, org, rec.url, now=clock.now())
        async with sessions() as session, session.begin():
            await queue_notifications(session, [topped_up(org), topped_up(org)], clock.now())
        worker, sender = delivery_worker(sessions, clock, org_concurrency=1)
        try:
            await worker.run_once()
            clock.advance(days=1)
            assert await worker.run_once() == 0
        finally:
            await sender.close()
        async with sessions() as session:
            row = await session.get(WebhookEndpoint, endpoint.id)
            states = (await session.scalars(select(WebhookDelivery.state))).all()
    assert len(rec.captured) == 1
    assert row is not None
    assert not row.enabled
    assert row.disabled_reason == "gone"
    assert sorted(states) == ["failed", "failed"]


async def test_endpoint_failing_for_five_days_is_disabled_and_contacts_emailed(
    database_factory: Callable[[str], str],
) -> None:
    from tollgate.notifier.email import service as email

    url = await migrated(database_factory("notifier"))
    org = uuid.uuid4()
    clock = FakeClock()
    async with database(url) as sessions, receiver() as rec:
        rec.respond = _failing
        endpoint, _ = await make_endpoint(sessions, org, rec.url, now=clock.now())
        async with sessions() as session, session.begin():
            await email.replace_contacts(
                session, org, [email.Contact("ops@example.com", "zh-CN")], clock.now()
            )
        worker, sender = delivery_worker(sessions, clock)
        try:
            # A new event every 12 h, each retried on schedule; all fail.
            for _ in range(14):
                async with sessions() as session, session.begin():
                    await queue_notifications(session, [topped_up(org)], clock.now())
                for _ in range(48):
                    await worker.run_once()
                    clock.advance(minutes=15)
                async with sessions() as session:
                    row = await session.get(WebhookEndpoint, endpoint.id)
                assert row is not None
                if not row.enabled:
                    break
        finally:
            await sender.close()
        async with sessions() as session:
            mails = (await session.scalars(select(EmailMessage))).all()
            pending = (
                await session.scalars(
                    select(WebhookDelivery).where(WebhookDelivery.state == "pending")
                )
            ).all()
    assert row.disabled_reason == "failing"
    assert row.failing_since is not None
    disabled_after = row.updated_at - row.failing_since
    assert timedelta(days=5) <= disabled_after < timedelta(days=5, hours=1)
    assert [(m.kind, m.to_address, m.locale) for m in mails] == [
        ("webhook_endpoint_disabled", "ops@example.com", "zh-CN")
    ]
    assert pending == []


async def test_a_success_resets_the_failing_streak(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("notifier"))
    org = uuid.uuid4()
    clock = FakeClock()
    async with database(url) as sessions, receiver() as rec:
        rec.respond = _failing
        endpoint, _ = await make_endpoint(sessions, org, rec.url, now=clock.now())
        async with sessions() as session, session.begin():
            await queue_notifications(session, [topped_up(org)], clock.now())
        worker, sender = delivery_worker(sessions, clock)
        try:
            await worker.run_once()
            clock.advance(days=4)
            rec.respond = _ok
            async with sessions() as session, session.begin():
                await queue_notifications(session, [topped_up(org)], clock.now())
            await worker.run_once()
        finally:
            await sender.close()
        async with sessions() as session:
            row = await session.get(WebhookEndpoint, endpoint.id)
    assert row is not None
    assert row.enabled
    assert row.failing_since is None


async def _ok(request: web.Request) -> web.StreamResponse:
    return web.Response(status=200)


async def test_per_org_cap_keeps_a_slow_org_from_starving_others(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    slow_org, other_org = uuid.uuid4(), uuid.uuid4()
    clock = FakeClock()
    async with database(url) as sessions, receiver() as rec:
        await make_endpoint(sessions, slow_org, rec.url, now=clock.now())
        await make_endpoint(sessions, other_org, rec.url, now=clock.now())
        async with sessions() as session, session.begin():
            await queue_notifications(
                session, [topped_up(slow_org) for _ in range(50)], clock.now()
            )
            await queue_notifications(session, [topped_up(other_org)], clock.now())
        _worker, sender = delivery_worker(sessions, clock, concurrency=10, org_concurrency=3)
        try:
            async with sessions() as session, session.begin():
                from tollgate.notifier.webhooks import repository

                claimed = await repository.claim_due(
                    session,
                    now=clock.now(),
                    lease_until=clock.now() + timedelta(minutes=1),
                    limit=10,
                    org_cap=3,
                )
            # The slow org's 3 leases are still live: a second claim gets nothing of it.
            async with sessions() as session, session.begin():
                again = await repository.claim_due(
                    session,
                    now=clock.now(),
                    lease_until=clock.now() + timedelta(minutes=1),
                    limit=10,
                    org_cap=3,
                )
        finally:
            await sender.close()
    by_org = [c.org_id for c in claimed]
    assert by_org.count(slow_org) == 3
    assert by_org.count(other_org) == 1
    assert again == []
    assert service.RETRY_SCHEDULE[0] == 0


async def test_a_disabled_endpoint_mail_names_its_host_only_once_a_day(
    database_factory: Callable[[str], str],
) -> None:
    # Before: the mail quoted the whole URL, whose path the tenant writes, to every
    # contact the owner listed, once per endpoint: phishing text from the operator's
    # domain, as often as the owner liked to create endpoints that answer 410.
    from tollgate.notifier.email import service as email
    from tollgate.notifier.email.templates import render

    url = await migrated(database_factory("notifier"))
    org = uuid.uuid4()
    clock = FakeClock()
    async with database(url) as sessions:
        made = [
            await make_endpoint(
                sessions, org, f"http://127.0.0.1:9/YOUR-ACCOUNT-IS-LOCKED-{n}", now=clock.now()
            )
            for n in range(3)
        ]
        async with sessions() as session, session.begin():
            await email.replace_contacts(
                session, org, [email.Contact("ops@example.com", "en")], clock.now()
            )
            for endpoint, _secret in made:
                row = await session.get(WebhookEndpoint, endpoint.id)
                assert row is not None
                await service.disable_endpoint(session, row, "gone", clock.now())
        async with sessions() as session:
            mails = (await session.scalars(select(EmailMessage))).all()
    assert len(mails) == 1
    text = render(mails[0].kind, mails[0].locale, mails[0].context).text
    assert "127.0.0.1" in text
    assert "LOCKED" not in text
