"""Receivers that answer what no well-behaved server would: the delivery is still
recorded once, never re-sent in a loop because its answer could not be stored."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from aiohttp import web
from sqlalchemy import select

from tollgate.kit.sealing import Sealer, new_sealing_key
from tollgate.notifier.intake.service import queue_notifications
from tollgate.notifier.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tollgate.notifier.webhooks import service
from tollgate.notifier.webhooks.signing import signature

from ..events import topped_up
from ..factories import (
    SEALING_KEY,
    FakeClock,
    database,
    delivery_worker,
    make_endpoint,
    migrated,
    receiver,
)


async def test_a_response_body_with_nul_bytes_is_recorded_and_not_sent_again(
    database_factory: Callable[[str], str],
) -> None:
    # PostgreSQL text cannot hold U+0000: before, recording the attempt failed, the
    # lease expired and the (delivered!) message was sent again every lease, forever.
    url = await migrated(database_factory("notifier"))
    org = uuid.uuid4()
    clock = FakeClock()

    async def binary(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, body=b"ok\x00\x00binary")

    async with database(url) as sessions, receiver() as rec:
        rec.respond = binary
        await make_endpoint(sessions, org, rec.url, now=clock.now())
        async with sessions() as session, session.begin():
            await queue_notifications(session, [topped_up(org)], clock.now())
        worker, sender = delivery_worker(sessions, clock)
        try:
            assert await worker.run_once() == 1
            clock.advance(minutes=5)  # well past any lease
            assert await worker.run_once() == 0
        finally:
            await sender.close()
        async with sessions() as session:
            delivery = (await session.scalars(select(WebhookDelivery))).one()
            attempt = (await session.scalars(select(WebhookAttempt))).one()
    assert len(rec.captured) == 1
    assert delivery.state == "succeeded"
    assert attempt.response_body == "ok\ufffd\ufffdbinary"


async def test_a_secret_sealed_with_a_retired_key_fails_attempts_until_rotated(
    database_factory: Callable[[str], str],
) -> None:
    # The operator dropped the sealing key an endpoint's secret was sealed with. Before:
    # every claim raised, no attempt was counted or logged for the customer, and the
    # delivery was claimed again at each lease's end, for ever; rotating the secret did
    # not help (the old secret, still signing for 24 h, could not be opened either).
    url = await migrated(database_factory("notifier"))
    org = uuid.uuid4()
    clock = FakeClock()
    async with database(url) as sessions, receiver() as rec:
        endpoint, _ = await make_endpoint(sessions, org, rec.url, now=clock.now())
        async with sessions() as session, session.begin():
            row = await session.get(WebhookEndpoint, endpoint.id)
            assert row is not None
            row.secret_sealed = Sealer(new_sealing_key()).seal("whsec_" + "A" * 44)
            await queue_notifications(session, [topped_up(org)], clock.now())
        worker, sender = delivery_worker(sessions, clock)
        try:
            assert await worker.run_once() == 1
            async with sessions() as session:
                delivery = (await session.scalars(select(WebhookDelivery))).one()
                attempt = (await session.scalars(select(WebhookAttempt))).one()
            assert rec.captured == []
            assert (delivery.state, delivery.attempts) == ("pending", 1)
            assert attempt.error is not None
            assert "rotate" in attempt.error
            async with sessions() as session, session.begin():
                row = await session.get(WebhookEndpoint, endpoint.id)
                assert row is not None
                secret = await service.rotate_secret(session, Sealer(SEALING_KEY), row, clock.now())
            clock.advance(minutes=1)
            assert await worker.run_once() == 1
        finally:
            await sender.close()
        async with sessions() as session:
            delivery = (await session.scalars(select(WebhookDelivery))).one()
    assert delivery.state == "succeeded"
    assert len(rec.captured) == 1
    signatures = rec.captured[0].headers["webhook-signature"].split()
    assert len(signatures) == 1  # the new secret's; the unreadable old one is left out
    message_id = rec.captured[0].headers["webhook-id"]
    timestamp = int(rec.captured[0].headers["webhook-timestamp"])
    body = rec.captured[0].body.decode()
    assert signatures[0] == signature(secret, message_id, timestamp, body)
