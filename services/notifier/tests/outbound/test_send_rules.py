"""The rules a send must pass before it is queued and charged, in process on a real
Postgres: an `Idempotency-Key` makes a retried send harmless, a prepaid org's credits
must cover the message, and alphanumeric sender ids are the org's only when the
operator approved them (and open no conversation: nobody can reply to one)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select

from tollgate.contracts.events.billing import BalanceMode, BalanceState, BalanceStatus
from tollgate.notifier.models import SmsConversation
from tollgate.notifier.state import NotifierState

from .test_send import NUMBER_A, ORG_A, ORG_B, Env, caller, environment, outbox_types


async def send_keyed(env: Env, org: uuid.UUID, key: str | None, **body: Any) -> httpx.Response:
    payload = {"to": "+41791234567", "from": NUMBER_A, "text": "hi"}
    payload.update(body)
    headers = caller(org)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await env.client.post("/v1/sms/messages", json=payload, headers=headers)


async def charges(env: Env) -> list[Any]:
    return [e for e in await outbox_types(env.sessions) if type(e).__name__ == "SmsCharged"]


def publish_balance(
    env: Env,
    org: uuid.UUID,
    balance: int,
    version: int,
    *,
    at: datetime,
    charged: int | None = 0,
    prepaid: bool = True,
) -> None:
    """What billing's balances topic would bring in: `balance` with the SMS charges
    (less refunds) worth `charged` applied (None: a billing version that did not say)."""
    notifier: NotifierState = env.app.state.notifier
    notifier.sms_balances.apply(
        BalanceState(
            org_id=org,
            balance=balance,
            status=BalanceStatus.OK if balance > 0 else BalanceStatus.EXHAUSTED,
            mode=BalanceMode.PREPAID if prepaid else BalanceMode.POSTPAID,
            low_threshold=0,
            version=version,
            as_of=at,
            sms_charged=charged,
        )
    )


async def test_a_retried_send_with_its_idempotency_key_is_sent_and_charged_once(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        first = await send_keyed(env, ORG_A, "order-42", text="Your code is 1234")
        assert first.status_code == 202, first.text
        assert "Idempotent-Replayed" not in first.headers
        again = await send_keyed(env, ORG_A, "order-42", text="Your code is 1234")
        assert again.status_code == 202
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        # Concurrent retries of one key: one message between them.
        racing = await asyncio.gather(
            *(send_keyed(env, ORG_A, "order-43", text="race") for _ in range(6))
        )
        assert {r.status_code for r in racing} == {202}
        assert len({r.json()["id"] for r in racing}) == 1

        changed = await send_keyed(env, ORG_A, "order-42", text="Your code is 9999")
        assert changed.status_code == 422
        assert changed.headers["content-type"] == "application/problem+json"
        assert changed.json()["type"].endswith("idempotency-key-reused")
        for bad in ("", "with space", "x" * 256):
            refused = await send_keyed(env, ORG_A, bad)
            assert refused.status_code == 422, bad
        # Keys are per org: another org's identical key is its own message.
        other = await send_keyed(env, ORG_B, "order-42", **{"from": "+14155550199"})
        assert other.status_code == 202
        assert other.json()["id"] != first.json()["id"]

        assert len(await charges(env)) == 3
        assert await env.worker.run_once() == 3
        assert sorted(m.body for m in env.fake.messages.values()) == [
            "Your code is 1234",
            "hi",
            "race",
        ]


async def test_a_prepaid_org_is_refused_a_message_its_credits_cannot_cover(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        now = env.clock.now()
        publish_balance(env, ORG_A, 20, 1, at=now)  # +4179: 5 credits per segment
        assert (await send_keyed(env, ORG_A, None, text="a" * 200)).status_code == 202  # 10
        refused = await send_keyed(env, ORG_A, None, text="a" * 400)  # 3 segments: 15
        assert refused.status_code == 402, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("insufficient-credits")
        assert "10 available" in refused.json()["detail"]
        # Sends racing for the last 10 credits: exactly two of them fit.
        racing = await asyncio.gather(*(send_keyed(env, ORG_A, None) for _ in range(6)))
        assert sorted(r.status_code for r in racing) == [202, 202, 402, 402, 402, 402]
        assert sum(c.amount for c in await charges(env)) == 20

        # Billing applied the first 10 (balance 10): the other 10 are still to come.
        env.clock.advance(seconds=1)
        publish_balance(env, ORG_A, 10, 2, at=env.clock.now(), charged=10)
        assert (await send_keyed(env, ORG_A, None)).status_code == 402
        # Billing applied all 20 (balance 0): still nothing to spend until a top-up.
        publish_balance(env, ORG_A, 0, 3, at=env.clock.now(), charged=20)
        assert (await send_keyed(env, ORG_A, None)).status_code == 402
        env.clock.advance(seconds=1)
        publish_balance(env, ORG_A, 100, 4, at=env.clock.now(), charged=20)
        publish_balance(env, ORG_A, 5, 3, at=env.clock.now(), charged=20)  # stale: ignored
        assert (await send_keyed(env, ORG_A, None)).status_code == 202
        # Billing applies that charge at once (balance 95): every one of the 95 credits
        # left is spendable, none counted twice, whenever billing's balance was taken.
        publish_balance(env, ORG_A, 95, 5, at=env.clock.now(), charged=25)
        env.fake.refused.add("+41790000003")  # the last of them fails at the provider
        spent = [await send_keyed(env, ORG_A, None) for _ in range(18)]
        spent.append(await send_keyed(env, ORG_A, None, to="+41790000003"))
        assert [r.status_code for r in spent] == [202] * 19
        refused = await send_keyed(env, ORG_A, None)
        assert refused.status_code == 402
        assert "0 available" in refused.json()["detail"]
        # The failed message is refunded: spendable once billing has applied the refund.
        while await env.worker.run_once():
            pass
        publish_balance(env, ORG_A, 0, 6, at=env.clock.now(), charged=120)
        assert (await send_keyed(env, ORG_A, None)).status_code == 402
        publish_balance(env, ORG_A, 5, 7, at=env.clock.now(), charged=115)
        assert (await send_keyed(env, ORG_A, None)).status_code == 202

        # A balance from a billing version before `sms_charged` (still on the compacted
        # topic after an upgrade): checked, conservatively, by the charges queued since
        # shortly before it.
        env.clock.advance(seconds=15)  # past LEGACY_SETTLE, within the identity skew
        publish_balance(env, ORG_A, 20, 8, at=env.clock.now(), charged=None)
        assert (await send_keyed(env, ORG_A, None, text="a" * 200)).status_code == 202  # 10
        legacy = await send_keyed(env, ORG_A, None, text="a" * 400)  # 15
        assert legacy.status_code == 402
        assert "10 available" in legacy.json()["detail"]

        # Postpaid orgs, and orgs billing has not published, are left to the gateway.
        publish_balance(env, ORG_B, -500, 1, at=env.clock.now(), prepaid=False)
        other = await send_keyed(env, ORG_B, None, **{"from": "+14155550199"})
        assert other.status_code == 202


async def test_alphanumeric_sender_ids_are_the_orgs_the_operator_approved(
    database_factory: Callable[[str], str],
) -> None:
    async with environment(database_factory) as env:
        approve = {"sender_id": "ACME Shop", "org_id": str(ORG_A)}
        developer = env.mint.headers(orgs={ORG_A: "owner"})
        assert (
            await env.client.put("/v1/admin/sms/sender-ids", json=approve, headers=developer)
        ).status_code == 403
        for bad in ("1234", " ACME", "ACME-Shop-Ltd"):
            response = await env.client.put(
                "/v1/admin/sms/sender-ids",
                json={"sender_id": bad, "org_id": str(ORG_A)},
                headers=env.admin,
            )
            assert response.status_code == 422, bad
        response = await env.client.put("/v1/admin/sms/sender-ids", json=approve, headers=env.admin)
        assert response.status_code == 200, response.text

        sent = await send_keyed(env, ORG_A, None, **{"from": "ACME Shop", "to": "+14155550123"})
        assert sent.status_code == 202, sent.text
        assert sent.json()["from"] == "ACME Shop"
        stolen = await send_keyed(env, ORG_B, None, **{"from": "ACME Shop"})
        assert stolen.status_code == 403
        assert stolen.json()["type"].endswith("sender-not-owned")
        assert await env.worker.run_once() == 1
        assert [m.from_ for m in env.fake.messages.values()] == ["ACME Shop"]
        async with env.sessions() as session:  # nobody can answer a sender id
            assert await session.scalar(select(func.count()).select_from(SmsConversation)) == 0

        viewer = env.mint.headers(orgs={ORG_A: "viewer"})
        listed = await env.client.get(f"/v1/orgs/{ORG_A}/sms/sender-ids", headers=viewer)
        assert [s["sender_id"] for s in listed.json()] == ["ACME Shop"]
        other_org = await env.client.get(f"/v1/orgs/{ORG_B}/sms/sender-ids", headers=viewer)
        assert other_org.status_code == 404  # another org: not even its existence

        withdrawn = await env.client.delete(
            "/v1/admin/sms/sender-ids", params={"sender_id": "ACME Shop"}, headers=env.admin
        )
        assert withdrawn.status_code == 204
        assert (await send_keyed(env, ORG_A, None, **{"from": "ACME Shop"})).status_code == 403
