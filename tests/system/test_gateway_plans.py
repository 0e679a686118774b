"""Plans enforced at the gateway, with every part a real process on the real broker:
plans and an org's plan from billing (outbox → `tollgate.billing.plans.v1`), keys and
APIs from accounts, decisions at a two-worker gateway counting quota in Redis.

A new prepaid org's first call is a 402 (billing opened it exhausted; the gateway
refuses orgs billing has not published). An org on a plan with N included requests
gets exactly N answers 200, then 402 `quota-exceeded`; an upgrade lifts the stop; a
suspended org gets 402 `plan-suspended` and a reinstated one 200; a Stripe
subscription's failed invoice (fake Stripe, official SDK, signed webhooks) leaves the
org served through the grace period, then 402, and the paid invoice serves it again. Prints the time
from the upgrade (billing's answer) to the first 200, p50/p99/max over 20 trials, and
suspension/reinstatement.
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

from tollgate.kit.testing.fake_stripe import FakeStripe
from tollgate.kit.testing.polling import eventually

from .services import platform

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 20
PER_TRIAL = 3  # each plan includes 3 more requests than the one before
STRIPE_KEY = "sk_test_" + "s" * 24
STRIPE_WEBHOOK_SECRET = "whsec_" + "w" * 32
GRACE_S = 1.0


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


async def first_status(
    gw: httpx.AsyncClient, headers: dict[str, str], wanted: int, limit_s: float = 5.0
) -> float:
    """Seconds until the gateway answers `wanted` (polling every ~5 ms)."""
    started = time.monotonic()
    while (await gw.get("/metered/hello", headers=headers)).status_code != wanted:
        assert time.monotonic() - started < limit_s, f"no {wanted} within {limit_s} s"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_quota_upgrade_and_suspension_at_the_gateway(
    tmp_path: Path,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_factory: Callable[[str], str],
    redis_url: str,
) -> None:
    stripe_api = await FakeStripe(STRIPE_KEY, STRIPE_WEBHOOK_SECRET).start()
    stack = platform(
        tmp_path,
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_factory=database_factory,
        name="plans",
        billing={
            "STRIPE_SECRET_KEY": STRIPE_KEY,
            "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
            "STRIPE_API_BASE": stripe_api.url,
            "SUBSCRIPTION_GRACE_SECONDS": str(GRACE_S),
            "PLAN_PERIOD_CHECK_SECONDS": "0.1",
        },
        gateway={
            # Two workers share one exact count per org and period in Redis.
            "WORKERS": "2",
            "RATE_LIMIT_POLICY": "redis",
            "REDIS_URL": redis_url,
            "REDIS_TIMEOUT_MS": "1000",
            "REFUSE_UNKNOWN_ORGS": "true",  # as `make up`: a new org starts exhausted
        },
    )
    try:
        async with stack.running() as clients:
            acc, bil, gw = clients.accounts, clients.billing, clients.gateway
            org = (await acc.post("/v1/orgs", json={"name": "Metered"})).json()
            api = await acc.post(
                "/v1/apis",
                json={
                    "slug": "metered",
                    "name": "Metered API",
                    "upstream_url": f"{stack.upstream_url}",
                    "price": 1,
                },
            )
            assert api.status_code == 201, api.text
            # A new prepaid org has nothing to spend: its first call is a 402, never free.
            # (Billing opened it from the users topic; the gateway refuses it until then.)
            issued = await acc.post(f"/v1/orgs/{org['id']}/keys", json={"name": "metered"})
            assert issued.status_code == 201, issued.text
            headers = {"X-API-Key": issued.json()["key"]}
            started = time.monotonic()
            # Key and API replay from two topics: 401/404 until both are in.
            while (first := await gw.get("/metered/hello", headers=headers)).status_code in (
                401,
                404,
            ):
                assert time.monotonic() - started < 20, "key or API never replayed"
                await asyncio.sleep(0.02)
            assert first.status_code == 402, first.text
            assert first.json()["type"].endswith("/credits-exhausted")
            # Billing opens the org from the users topic on its own time (the gateway
            # refused it meanwhile): its first published state follows.
            opened = await eventually(
                lambda: bil.get(f"/v1/orgs/{org['id']}/balance"),
                lambda r: r.status_code == 200 and r.json()["version"] >= 1,
                within=15,
            )
            assert opened.json()["status"] == "exhausted"
            assert opened.json()["version"] >= 1, "billing published no first state"
            topped = await bil.post(
                f"/v1/orgs/{org['id']}/credits",
                json={"amount": 100_000, "reason": "plenty: only the plan stops this org"},
                headers={"idempotency-key": uuid.uuid4().hex},
            )
            assert topped.status_code == 201, topped.text
            plans = []
            for n in range(TRIALS + 1):
                created = await bil.post(
                    "/v1/plans",
                    json={
                        "name": f"Tier {n}",
                        "monthly_price": 1000 * (n + 1),
                        "included_requests": PER_TRIAL * (n + 1),
                        "past_quota": "reject_402",
                    },
                )
                assert created.status_code == 201, created.text
                plans.append(created.json())
            on = await bil.put(f"/v1/orgs/{org['id']}/plan", json={"plan_id": plans[0]["id"]})
            assert on.status_code == 200, on.text
            # Funded and on a plan: served (the 402 lifts with the top-up's state); the
            # plan is in force once answers carry its quota (calls before it count none).
            started = time.monotonic()
            while True:
                answer = await gw.get("/metered/hello", headers=headers)
                if answer.status_code == 200 and "plan-quota" in answer.headers.get(
                    "ratelimit-policy", ""
                ):
                    break
                assert answer.status_code in (200, 402), answer.text
                assert time.monotonic() - started < 5, "plan not in force"
                await asyncio.sleep(0.005)
            served = PER_TRIAL - int(answer.headers["ratelimit-remaining"])
            assert served == 1

            to_lifted: list[float] = []
            for trial in range(TRIALS + 1):
                # Spend the rest of this plan's quota (exactly PER_TRIAL per plan), then 402.
                while True:
                    answer = await gw.get("/metered/hello", headers=headers)
                    if answer.status_code != 200:
                        break
                    served += 1
                    assert served <= PER_TRIAL * (trial + 1), "served past the quota"
                assert served == PER_TRIAL * (trial + 1), f"trial {trial}: {served} served"
                assert answer.status_code == 402, answer.text
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.json()["type"].endswith("/quota-exceeded")
                assert int(answer.headers["retry-after"]) > 0
                if trial == TRIALS:
                    break
                upgraded = await bil.put(
                    f"/v1/orgs/{org['id']}/plan", json={"plan_id": plans[trial + 1]["id"]}
                )
                assert upgraded.status_code == 200, upgraded.text
                to_lifted.append(await first_status(gw, headers, 200))
                served += 1

            # An unlimited plan serves the org again; a suspension stops it with 402.
            top = await bil.post(
                "/v1/plans",
                json={"name": "Unlimited", "monthly_price": 10**6, "past_quota": "reject_402"},
            )
            assert (
                await bil.put(f"/v1/orgs/{org['id']}/plan", json={"plan_id": top.json()["id"]})
            ).status_code == 200
            await first_status(gw, headers, 200)
            suspended = await bil.patch(f"/v1/orgs/{org['id']}/plan", json={"status": "suspended"})
            assert suspended.status_code == 200, suspended.text
            to_suspended = await first_status(gw, headers, 402)
            refusal = await gw.get("/metered/hello", headers=headers)
            assert refusal.status_code == 402
            assert refusal.json()["type"].endswith("/plan-suspended")
            reinstated = await bil.patch(f"/v1/orgs/{org['id']}/plan", json={"status": "active"})
            assert reinstated.status_code == 200, reinstated.text
            to_reinstated = await first_status(gw, headers, 200)

            # A paid plan through a Stripe subscription: a failed invoice leaves the org
            # served during the grace period, then suspended (402); paid → 200 again.
            sub_plan = await bil.post(
                "/v1/plans", json={"name": "Business", "monthly_price": 2 * 10**6}
            )
            started_checkout = await bil.post(
                f"/v1/orgs/{org['id']}/subscription-checkout",
                json={"plan_id": sub_plan.json()["id"]},
            )
            assert started_checkout.status_code == 201, started_checkout.text
            (session_id,) = stripe_api.sessions
            subscribed = await stripe_api.deliver(bil, stripe_api.subscribe(session_id))
            assert subscribed.json()["outcome"] == "subscribed", subscribed.text
            subscription = stripe_api.sessions[session_id]["subscription"]
            failed = await stripe_api.deliver(bil, stripe_api.invoice(subscription, paid=False))
            assert failed.json()["outcome"] == "past-due", failed.text
            failed_at = time.monotonic()
            in_grace = await gw.get("/metered/hello", headers=headers)
            assert in_grace.status_code == 200, "refused during the grace period"
            await first_status(gw, headers, 402)
            grace_to_402 = time.monotonic() - failed_at
            refusal = await gw.get("/metered/hello", headers=headers)
            assert refusal.json()["type"].endswith("/plan-suspended")
            paid = await stripe_api.deliver(bil, stripe_api.invoice(subscription, paid=True))
            assert paid.json()["outcome"] == "reinstated", paid.text
            paid_to_200 = await first_status(gw, headers, 200)

        print(
            f"\nplan upgrade -> first 200 over {len(to_lifted)} trials: "
            f"p50 {statistics.median(to_lifted) * 1000:.0f} ms, "
            f"p99 {p99(to_lifted) * 1000:.0f} ms, max {max(to_lifted) * 1000:.0f} ms; "
            f"quota {PER_TRIAL}..{PER_TRIAL * (TRIALS + 1)} served exactly each time "
            f"(2 workers, redis counts); suspend -> 402 {to_suspended * 1000:.0f} ms; "
            f"reinstate -> 200 {to_reinstated * 1000:.0f} ms; invoice failed -> 402 after "
            f"{grace_to_402 * 1000:.0f} ms (grace {GRACE_S * 1000:.0f} ms); "
            f"invoice paid -> 200 {paid_to_200 * 1000:.0f} ms"
        )
        assert p99(to_lifted) < 1.0
        assert to_suspended < 1.0
        assert to_reinstated < 1.0
        assert GRACE_S <= grace_to_402 < GRACE_S + 1.0
        assert paid_to_200 < 1.0
    finally:
        await stripe_api.stop()
