"""Odd provider answers cost one send each, never a round of sends again: a message id
the provider gave another message, and a Retry-After of centuries."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from aiohttp import web
from sqlalchemy import select

from tollgate.notifier.models import SmsOutbound

from ..factories import Receiver, receiver
from .test_send import ORG_A, Env, environment, send


async def json_provider(env: Env, provider: Receiver) -> None:
    """An HTTP provider in front of `provider`, the only one enabled."""
    added = await env.client.post(
        "/v1/admin/sms/providers",
        json={
            "name": "json-sms",
            "kind": "http",
            "priority": 0,
            "config": {
                "url_template": f"http://127.0.0.1:{provider.port}/send",
                "fields": {"to": "to", "text": "text"},
                "response_id_field": "id",
            },
            "credentials": {},
        },
        headers=env.admin,
    )
    assert added.status_code == 201, added.text
    for other in (await env.client.get("/v1/admin/sms/providers", headers=env.admin)).json():
        if other["name"] != "json-sms":
            await env.client.patch(
                f"/v1/admin/sms/providers/{other['id']}", json={"enabled": False}, headers=env.admin
            )


async def rounds(env: Env, count: int) -> None:
    for _ in range(count):
        await env.worker.run_once()
        env.clock.advance(seconds=31)  # past any lease


async def test_a_message_id_the_provider_repeats_sends_each_message_once(
    database_factory: Callable[[str], str],
) -> None:
    # Before: the second message's id broke the round's record (a unique key), so both
    # were sent again at every lease's end, for ever.
    async with receiver() as provider, environment(database_factory) as env:

        async def constant(request: web.Request) -> web.StreamResponse:
            return web.json_response({"id": "accepted"})  # a provider set up wrong

        provider.respond = constant
        await json_provider(env, provider)
        for text in ("one", "two"):
            assert (await send(env, ORG_A, text=text)).status_code == 202
        await rounds(env, 5)
        assert len(provider.captured) == 2
        async with env.sessions() as session:
            rows = (await session.scalars(select(SmsOutbound))).all()
        assert sorted((r.body, r.status, r.send_state) for r in rows) == [
            ("one", "sent", "done"),
            ("two", "sent", "done"),
        ]


@pytest.mark.parametrize("retry_after", ["999999999999", "²"])
async def test_an_odd_retry_after_costs_one_message_not_the_round(
    database_factory: Callable[[str], str], retry_after: str
) -> None:
    # Before: centuries overflowed the date, and "²" (a digit to `isdigit`, not to
    # `float`) raised: either way the round failed before its record, and every message
    # in it, accepted ones included, went again at each lease. Or, just under the
    # overflow, a charged message was parked for 3,000 years.
    async with receiver() as provider, environment(database_factory) as env:

        async def answer(request: web.Request) -> web.StreamResponse:
            if (await request.json())["text"] == "slow":
                headers = {"Retry-After": retry_after}
                return web.json_response({"error": "slow"}, status=429, headers=headers)
            return web.json_response({"id": "p-" + uuid.uuid4().hex})

        provider.respond = answer
        await json_provider(env, provider)
        for text in ("hello 1", "hello 2", "slow"):
            assert (await send(env, ORG_A, text=text)).status_code == 202
        sent_at = env.clock.now()
        await rounds(env, 3)
        async with env.sessions() as session:
            rows = {r.body: r for r in (await session.scalars(select(SmsOutbound))).all()}
        assert (rows["hello 1"].status, rows["hello 2"].status) == ("sent", "sent")
        assert len([c for c in provider.captured if b"hello" in c.body]) == 2  # once each
        slow = rows["slow"]
        if slow.send_state == "pending":
            assert slow.next_attempt_at is not None
            assert slow.next_attempt_at <= sent_at + timedelta(days=1, minutes=5)


async def test_nul_characters_in_a_provider_answer_cost_one_message_not_the_round(
    database_factory: Callable[[str], str],
) -> None:
    # PostgreSQL text cannot hold U+0000. Before: a refusal whose message carried one (or
    # an accepted id with one) broke the round's record, so every message of the round,
    # the accepted ones too, was sent again at each lease's end, and the refused one was
    # never failed nor refunded.
    async with receiver() as provider, environment(database_factory) as env:

        async def answer(request: web.Request) -> web.StreamResponse:
            text = (await request.json())["text"]
            if text == "refused":
                return web.json_response({"code": "E\x001", "message": "no\x00pe"}, status=400)
            if text == "odd id":
                return web.json_response({"id": "p\x00" + uuid.uuid4().hex})
            return web.json_response({"id": "p-" + uuid.uuid4().hex})

        provider.respond = answer
        await json_provider(env, provider)
        for text in ("fine", "refused", "odd id"):
            assert (await send(env, ORG_A, text=text)).status_code == 202
        await rounds(env, 4)
        async with env.sessions() as session:
            rows = {r.body: r for r in (await session.scalars(select(SmsOutbound))).all()}
    assert len(provider.captured) == 3  # once each
    assert (rows["fine"].status, rows["odd id"].status) == ("sent", "sent")
    refused = rows["refused"]
    assert (refused.status, refused.refunded) == ("failed", True)
    assert refused.error_message == "no\ufffdpe"
