"""Retention on a real database and a controllable clock: old finished rows go (in
bounded batches), recent ones stay, and pending or unrouted work is never deleted."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import func, select, text

from tollgate.kit.db import SessionMaker
from tollgate.notifier.email import repository as emails
from tollgate.notifier.email import service as email
from tollgate.notifier.models import (
    EmailMessage,
    ReceivedEvent,
    SmsMessage,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)
from tollgate.notifier.retention.jobs import RetentionJob, policy_from
from tollgate.notifier.retention.service import RetentionPolicy
from tollgate.notifier.sms import service as sms
from tollgate.notifier.webhooks import repository as webhook_rows
from tollgate.notifier.webhooks import service as webhooks

from ..factories import FakeClock, database, make_endpoint, migrated, settings_for

START = datetime(2026, 1, 1, tzinfo=UTC)


async def make_delivery(
    sessions: SessionMaker, endpoint: WebhookEndpoint, clock: FakeClock, state: str
) -> int:
    """A delivery created now, left `state` (finished now unless pending), one attempt."""
    now = clock.now()
    async with sessions() as session, session.begin():
        delivery_id = await webhooks.queue_ping(session, endpoint, now)
        await webhook_rows.record_attempt(
            session,
            WebhookAttempt(
                delivery_id=delivery_id,
                attempted_at=now,
                succeeded=state == "succeeded",
                response_status=204 if state == "succeeded" else 503,
                duration_ms=5,
                response_body="",
                error=None,
            ),
        )
        if state != "pending":
            await webhook_rows.update_delivery(
                session, delivery_id, state=state, attempts=1, finished_at=now
            )
    return delivery_id


async def make_email(sessions: SessionMaker, clock: FakeClock, state: str) -> uuid.UUID:
    """A mail queued now, left `state` (finished now unless pending)."""
    key = f"test:{uuid.uuid4()}"
    async with sessions() as session, session.begin():
        await email.queue_email(
            session,
            kind="credits_low",
            locale="en",
            to="ops@example.com",
            context={"balance": 1, "threshold": 10},
            dedupe_key=key,
            now=clock.now(),
        )
        stmt = select(EmailMessage.id).where(EmailMessage.dedupe_key == key)
        email_id = (await session.scalars(stmt)).one()
        if state != "pending":
            await emails.update_email(session, email_id, state=state, finished_at=clock.now())
    return email_id


async def make_sms(sessions: SessionMaker, clock: FakeClock, *, routed: bool) -> uuid.UUID:
    """An inbound SMS received now, routed (to the admin inbox) or left unrouted."""
    async with sessions() as session, session.begin():
        message_id, _ = await sms.receive(
            session,
            sms.InboundSms("generic", uuid.uuid4().hex, "+15550001111", "+15559990000", "hi"),
            clock.now(),
        )
        if routed:
            await sms.route_pending(session, now=clock.now())
    return message_id


async def ids(sessions: SessionMaker, column: object) -> set[object]:
    async with sessions() as session:
        return set((await session.scalars(select(column))).all())  # type: ignore[call-overload]


async def remember_event(sessions: SessionMaker, clock: FakeClock) -> str:
    """An event id the intake took in now."""
    event_id = str(uuid.uuid4())
    async with sessions() as session, session.begin():
        session.add(
            ReceivedEvent(event_id=event_id, type="t", source_topic="s", received_at=clock.now())
        )
    return event_id


async def test_old_finished_rows_go_recent_and_pending_ones_stay(
    database_factory: Callable[[str], str],
) -> None:
    url = await migrated(database_factory("notifier"))
    clock = FakeClock(START)
    policy = RetentionPolicy(webhook_days=30, email_days=30, sms_days=90, batch_size=2)
    async with database(url) as sessions:
        job = RetentionJob(sessions=sessions, clock=clock, policy=policy)
        endpoint, _ = await make_endpoint(
            sessions, uuid.uuid4(), "https://example.com/hook", now=clock.now()
        )
        old_routed_sms = await make_sms(sessions, clock, routed=True)
        old_done = [await make_delivery(sessions, endpoint, clock, "succeeded") for _ in range(4)]
        old_done.append(await make_delivery(sessions, endpoint, clock, "failed"))
        still_pending = await make_delivery(sessions, endpoint, clock, "pending")
        old_mail = [await make_email(sessions, clock, s) for s in ("sent", "failed", "sent")]
        queued_mail = await make_email(sessions, clock, "pending")
        await remember_event(sessions, clock)

        clock.advance(days=25)
        recent_event = await remember_event(sessions, clock)
        recent_done = await make_delivery(sessions, endpoint, clock, "failed")
        recent_mail = await make_email(sessions, clock, "sent")
        recent_sms = await make_sms(sessions, clock, routed=True)
        # Received with the old rows, but never routed (made last: routing takes all).
        unrouted_sms = await make_sms(sessions, FakeClock(START), routed=False)

        clock.advance(days=10)  # the old rows are 35 days old, the recent ones 10
        deleted = await job.run_once()
        assert deleted == {
            "webhook_endpoints": 0,
            "webhook_deliveries": 5,
            "webhook_messages": 5,
            "email_messages": 3,
            "sms_messages": 0,
            "received_events": 1,
        }
        assert await ids(sessions, WebhookDelivery.id) == {still_pending, recent_done}
        async with sessions() as session:
            attempts = await session.scalars(select(WebhookAttempt.delivery_id))
            messages = await session.scalar(select(func.count()).select_from(WebhookMessage))
        assert set(attempts.all()) == {still_pending, recent_done}  # the log went with them
        assert messages == 2  # the messages of the deliveries that are left
        assert await ids(sessions, EmailMessage.id) == {queued_mail, recent_mail}
        assert await ids(sessions, SmsMessage.id) == {old_routed_sms, unrouted_sms, recent_sms}
        assert await ids(sessions, ReceivedEvent.event_id) == {recent_event}

        clock.advance(days=65)  # 100 days after the first SMS, 75 after the recent one
        assert (await job.run_once())["sms_messages"] == 1
        assert await ids(sessions, SmsMessage.id) == {unrouted_sms, recent_sms}
        assert await ids(sessions, WebhookDelivery.id) == {still_pending}
        assert await ids(sessions, EmailMessage.id) == {queued_mail}
        assert old_mail  # all three went in the first round

        assert await job.run_once() == dict.fromkeys(deleted, 0)


async def test_zero_days_keeps_rows_forever(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("notifier"))
    clock = FakeClock(START)
    settings = settings_for(
        url,
        webhook_retention_days=0,
        email_retention_days=0,
        sms_retention_days=0,
        dedup_retention_days=0,
    )
    async with database(url) as sessions:
        endpoint, _ = await make_endpoint(
            sessions, uuid.uuid4(), "https://example.com/hook", now=clock.now()
        )
        delivery = await make_delivery(sessions, endpoint, clock, "succeeded")
        mail = await make_email(sessions, clock, "sent")
        message = await make_sms(sessions, clock, routed=True)
        event = await remember_event(sessions, clock)
        clock.advance(days=3650)
        job = RetentionJob(sessions=sessions, clock=clock, policy=policy_from(settings))
        assert await job.run_once() == {}
        assert await ids(sessions, WebhookDelivery.id) == {delivery}
        assert await ids(sessions, EmailMessage.id) == {mail}
        assert await ids(sessions, SmsMessage.id) == {message}
        assert await ids(sessions, ReceivedEvent.event_id) == {event}


async def test_defaults_and_indexes(database_factory: Callable[[str], str]) -> None:
    url = await migrated(database_factory("notifier"))
    policy = policy_from(settings_for(url))
    days = (policy.webhook_days, policy.email_days, policy.sms_days, policy.dedup_days)
    assert days == (30, 30, 90, 30)
    async with database(url) as sessions, sessions() as session:
        names = await session.scalars(
            text("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_%'")
        )
        assert {
            "ix_webhook_deliveries_finished",
            "ix_webhook_messages_created",
            "ix_email_messages_finished",
            "ix_sms_messages_routed",
            "ix_received_events_received_at",
        } <= set(names.all())
