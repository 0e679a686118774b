"""Prepaid credits enforced end to end, with every part a real process on the real
broker: keys and APIs from accounts, debits and balance states from billing, decisions
at the gateway. An org spends its credits through proxied requests and gets 402 soon
after they run out; a top-up serves it again; a key revoked in accounts is refused.

Prints the figures: time from exhaustion to the first 402, from top-up to the first
200, the overshoot in credits at the request rate used, and revocation time.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from .services import platform

pytestmark = pytest.mark.system

TRIALS = 5
CREDITS_PER_TRIAL = 40
INTERVAL = 0.01  # between requests: ~70-100 requests/s from one client


async def top_up(billing: httpx.AsyncClient, org_id: str, amount: int) -> None:
    answer = await billing.post(
        f"/v1/orgs/{org_id}/credits",
        json={"amount": amount, "reason": "e2e"},
        headers={"idempotency-key": uuid.uuid4().hex},
    )
    assert answer.status_code in (200, 201), answer.text


async def test_credits_run_out_and_come_back_within_a_second(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
) -> None:
    stack = platform(
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_factory=database_factory,
        name="e2e",
        billing={"BALANCE_PUBLISH_INTERVAL_SECONDS": "1"},
    )
    async with stack.running() as clients:
        acc, bil, gw = clients.accounts, clients.billing, clients.gateway
        org = (await acc.post("/v1/orgs", json={"name": "Spender"})).json()
        api = await acc.post(
            "/v1/apis",
            json={
                "slug": "paid",
                "name": "Paid API",
                "upstream_url": stack.upstream_url,
                "price": 1,
            },
        )
        assert api.status_code == 201, api.text
        issued = await acc.post(f"/v1/orgs/{org['id']}/keys", json={"name": "spender"})
        assert issued.status_code == 201, issued.text
        key = issued.json()["key"]
        headers = {"X-API-Key": key}

        topped_total = 0  # credits bought so far
        served_total = 0  # requests the gateway let through (each costs 1)

        async def settled() -> int:
            """Billing's balance once every served request is debited."""
            expected = topped_total - served_total
            deadline = time.monotonic() + 15
            while True:
                balance = (await bil.get(f"/v1/orgs/{org['id']}/balance")).json()
                if balance["balance"] == expected or time.monotonic() > deadline:
                    return int(balance["balance"])
                await asyncio.sleep(0.05)

        to_refusal: list[float] = []
        to_service: list[float] = []
        overshoot: list[int] = []
        sent = 0
        started = time.monotonic()
        for trial in range(TRIALS):
            assert await settled() == topped_total - served_total
            # Pay the overdraft of the last trial too, or the org stays exhausted.
            amount = CREDITS_PER_TRIAL + max(0, served_total - topped_total)
            await top_up(bil, org["id"], amount)
            topped_total += amount
            topped = time.monotonic()
            limit = 20 if trial == 0 else 5  # the first trial waits for key replay too
            while (answer := await gw.get("/paid/hello", headers=headers)).status_code != 200:
                sent += 1
                assert answer.status_code in (401, 402), answer.text
                assert time.monotonic() - topped < limit, "not served after top-up"
                await asyncio.sleep(INTERVAL)
            if trial:
                to_service.append(time.monotonic() - topped)
            sent += 1
            served_total += 1
            # Spend the rest, then keep asking until the gateway answers 402.
            exhausted_at = time.monotonic() if served_total >= topped_total else None
            while True:
                answer = await gw.get("/paid/hello", headers=headers)
                sent += 1
                if answer.status_code == 402:
                    break
                assert answer.status_code == 200, answer.text
                served_total += 1
                if exhausted_at is None and served_total >= topped_total:
                    exhausted_at = time.monotonic()
                assert exhausted_at is None or time.monotonic() - exhausted_at < 5
                await asyncio.sleep(INTERVAL)
            assert exhausted_at is not None, "402 before the credits ran out"
            assert answer.headers["content-type"] == "application/problem+json"
            to_refusal.append(time.monotonic() - exhausted_at)
            overshoot.append(served_total - topped_total)
        rate = sent / (time.monotonic() - started)

        # Billing charged exactly what the gateway served: the overdraft is real debt.
        assert await settled() == topped_total - served_total
        status = (await bil.get(f"/v1/orgs/{org['id']}/balance")).json()["status"]
        assert status == "exhausted"

        # A key revoked in accounts is refused by the gateway.
        revoked = await acc.post(f"/v1/keys/{issued.json()['id']}/revoke")
        assert revoked.status_code == 200, revoked.text
        revoked_at = time.monotonic()
        while (await gw.get("/paid/hello", headers=headers)).status_code != 401:
            assert time.monotonic() - revoked_at < 5, "revoked key still accepted"
            await asyncio.sleep(0.01)
        to_revocation = time.monotonic() - revoked_at

    print(
        f"\n{TRIALS} trials at ~{rate:.0f} requests/s: "
        f"exhaustion->402 p50 {statistics.median(to_refusal) * 1000:.0f} ms "
        f"max {max(to_refusal) * 1000:.0f} ms; "
        f"top-up->200 p50 {statistics.median(to_service) * 1000:.0f} ms "
        f"max {max(to_service) * 1000:.0f} ms; "
        f"overshoot {overshoot} credits; revocation->401 {to_revocation * 1000:.0f} ms"
    )
    assert max(to_refusal) < 1.0
    assert max(to_service) < 1.0
    assert to_revocation < 1.0
