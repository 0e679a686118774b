"""Receivers that answer what no well-behaved server would: the delivery is still
recorded once, never re-sent in a loop because its answer could not be stored."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from aiohttp import web
from sqlalchemy import select

from tollgate.notifier.intake.service import queue_notifications
from tollgate.notifier.models import WebhookAttempt, WebhookDelivery

from ..events import topped_up
from ..factories import FakeClock, database, delivery_worker, make_endpoint, migrated, receiver


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
