"""An org's plan at the limiter: quota per period (402, 429 or overage), plan-wide
limits over every key of the org, suspension, upgrades within a period, new periods,
and one exact count across workers with the `redis` policy."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tollgate.contracts.events.accounts import KeyUpserted
from tollgate.contracts.events.billing import PastQuota, PlanState, PlanStatus
from tollgate.gateway.config import Settings
from tollgate.gateway.limits.limiter import RateLimiter
from tollgate.gateway.registry.plans import PlanRecord
from tollgate.gateway.registry.records import KeyRecord
from tollgate.gateway.registry.store import Registry

from .test_limiter import records

PERIOD_START = datetime(2026, 11, 1, tzinfo=UTC)


def plan_state(org_id: str, version: int, **fields: Any) -> PlanState:
    values: dict[str, Any] = {
        "org_id": org_id,
        "plan_id": uuid.uuid4(),
        "plan_name": "Starter",
        "status": PlanStatus.ACTIVE,
        "included_requests": 5,
        "past_quota": PastQuota.REJECT_402,
        "period_start": PERIOD_START,
        "period_end": PERIOD_START + timedelta(days=30),
        "version": version,
        "as_of": datetime.now(UTC),
        **fields,
    }
    return PlanState.model_validate(values)


def plan(org_id: str, version: int = 1, **fields: Any) -> PlanRecord:
    return PlanRecord(plan_state(org_id, version, **fields))


def second_key(org_id: str) -> KeyRecord:
    event = KeyUpserted.model_validate(
        {
            "key_id": uuid.uuid4(),
            "org_id": org_id,
            "key_hash": "b" * 64,
            "prefix": "tg_live_efgh",
            "last4": "efgh",
            "name": "k2",
            "environment": "live",
            "enabled": True,
            "version": 1,
            "updated_at": datetime.now(UTC),
        }
    )
    return KeyRecord.from_event(event, {}, {})


async def test_a_hard_quota_serves_exactly_n_then_402_until_an_upgrade(tmp_path: Path) -> None:
    key, api = records({"per_hour": 1000})
    limiter = RateLimiter(Settings(spool_dir=tmp_path))
    starter = plan(key.org_id, included_requests=5)
    verdicts = [await limiter.check(key, api, None, starter) for _ in range(8)]
    assert [v.allowed for v in verdicts if v is not None] == [True] * 5 + [False] * 3
    refused = verdicts[-1]
    assert refused is not None
    assert (refused.status, refused.slug, refused.reason.value) == (
        402,
        "quota-exceeded",
        "credits_exhausted",
    )
    assert '"plan-quota";q=5' in refused.policy
    assert refused.retry_after_s > 0
    assert verdicts[4] is not None
    assert verdicts[4].remaining == 0
    # An upgrade within the period keeps the count: 7 more of the new 12.
    pro = plan(key.org_id, version=2, included_requests=12)
    again = [await limiter.check(key, api, None, pro) for _ in range(9)]
    assert [v.allowed for v in again if v is not None] == [True] * 7 + [False] * 2


async def test_a_429_plan_refuses_with_429_and_overage_serves_on(tmp_path: Path) -> None:
    key, api = records({"per_hour": 1000})
    limiter = RateLimiter(Settings(spool_dir=tmp_path))
    strict = plan(key.org_id, included_requests=2, past_quota=PastQuota.REJECT_429)
    verdicts = [await limiter.check(key, api, None, strict) for _ in range(3)]
    assert verdicts[2] is not None
    assert (verdicts[2].allowed, verdicts[2].status, verdicts[2].slug) == (
        False,
        429,
        "quota-exceeded",
    )
    soft = plan(
        key.org_id, version=2, included_requests=2, past_quota=PastQuota.OVERAGE, overage_price=3
    )
    served = [await limiter.check(key, api, None, soft) for _ in range(5)]
    assert all(v is not None and v.allowed for v in served)


async def test_a_suspended_org_is_refused_with_402(tmp_path: Path) -> None:
    key, api = records()
    limiter = RateLimiter(Settings(spool_dir=tmp_path))
    verdict = await limiter.check(key, api, None, plan(key.org_id, status=PlanStatus.SUSPENDED))
    assert verdict is not None
    assert (verdict.allowed, verdict.status, verdict.slug) == (False, 402, "plan-suspended")
    assert verdict.headers() == []
    # Reinstated (a newer state): served again.
    back = await limiter.check(key, api, None, plan(key.org_id, version=2))
    assert back is not None
    assert back.allowed


async def test_plan_limits_count_every_key_of_the_org_together(tmp_path: Path) -> None:
    key, api = records({"per_hour": 1000})
    other = second_key(key.org_id)
    limiter = RateLimiter(Settings(spool_dir=tmp_path))
    capped = plan(key.org_id, included_requests=None, rate_limits={"per_minute": 3})
    answers = []
    for k in (key, other, key, other):
        verdict = await limiter.check(k, api, None, capped)
        assert verdict is not None
        answers.append((verdict.allowed, verdict.status))
    assert answers == [(True, 429), (True, 429), (True, 429), (False, 429)]
    # A refused window used no quota of a plan that has one.
    counted = plan(key.org_id, version=2, included_requests=1)
    fresh_key, fresh_api = records({"per_hour": 1000})
    assert (await limiter.check(fresh_key, fresh_api, None, counted)) is not None


async def test_a_test_keys_calls_count_in_plan_windows_of_their_own(tmp_path: Path) -> None:
    key, api = records({"per_hour": 1000})
    tester = second_key(key.org_id)
    tester.test = True
    limiter = RateLimiter(Settings(spool_dir=tmp_path))
    capped = plan(key.org_id, included_requests=None, rate_limits={"per_minute": 2})
    tested = [(await limiter.check(tester, api, None, capped)).allowed for _ in range(3)]  # type: ignore[union-attr]
    assert tested == [True, True, False]
    live = [(await limiter.check(key, api, None, capped)).allowed for _ in range(3)]  # type: ignore[union-attr]
    assert live == [True, True, False]  # the test calls used none of the live windows
    limiter.sweep()  # test windows are swept like the others (it raised on their names)


async def test_a_new_period_starts_from_zero(tmp_path: Path) -> None:
    key, api = records({"per_hour": 1000})
    limiter = RateLimiter(Settings(spool_dir=tmp_path))
    first = plan(key.org_id, included_requests=1)
    assert [(await limiter.check(key, api, None, first)).allowed for _ in range(2)] == [  # type: ignore[union-attr]
        True,
        False,
    ]
    start = PERIOD_START + timedelta(days=30)
    second = plan(
        key.org_id,
        version=2,
        included_requests=1,
        period_start=start,
        period_end=start + timedelta(days=30),
    )
    verdict = await limiter.check(key, api, None, second)
    assert verdict is not None
    assert verdict.allowed


async def test_with_redis_two_workers_share_one_exact_quota(tmp_path: Path, redis_url: str) -> None:
    key, api = records({"per_hour": 100_000})
    settings = Settings(
        spool_dir=tmp_path, rate_limit_policy="redis", redis_url=redis_url, redis_timeout_ms=2000
    )
    workers = [RateLimiter(settings), RateLimiter(settings)]
    org_plan = plan(key.org_id, included_requests=37, period_start=datetime.now(UTC))
    try:
        verdicts = await asyncio.gather(
            # 48 calls: below the API's own 50 a minute, so only the quota refuses.
            *(workers[i % 2].check(key, api, None, org_plan) for i in range(48))
        )
        assert sum(1 for v in verdicts if v is not None and v.allowed) == 37
        # A restarted worker (a new limiter) finds the period's count in Redis.
        restarted = RateLimiter(settings)
        workers.append(restarted)
        verdict = await restarted.check(key, api, None, org_plan)
        assert verdict is not None
        assert (verdict.allowed, verdict.status) == (False, 402)
    finally:
        for limiter in workers:
            await limiter.close()


def test_the_registry_keeps_the_newest_plan_and_forgets_on_tombstone() -> None:
    registry = Registry()
    org = str(uuid.uuid4())
    registry.apply_plan(org, plan_state(org, 2, included_requests=9))
    registry.apply_plan(org, plan_state(org, 1, included_requests=1))
    current = registry.plan_of(org)
    assert current is not None
    assert current.quota == 9
    registry.apply_plan(org, None)
    assert registry.plan_of(org) is None


async def test_test_keys_use_no_quota(tmp_path: Path) -> None:
    key, api = records({"per_hour": 1000})
    key.test = True
    limiter = RateLimiter(Settings(spool_dir=tmp_path))
    one = plan(key.org_id, included_requests=1)
    verdicts = [await limiter.check(key, api, None, one) for _ in range(3)]
    assert all(v is not None and v.allowed for v in verdicts)
