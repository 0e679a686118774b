"""Which limits apply to a request, and where they are counted.

Levels: the key's own limits, the API's, the matched route's, the org's plan-wide
limits and the optional gateway-wide limits; a request must pass all of them. Then
the org's plan: a suspended org is refused (402), and a request past the plan's
included requests for the period is refused (402 or 429, as the plan says) or served
as overage (`quota`); `tg_test_` keys use no quota (test traffic is never charged).
The windows are checked first, so a request a window refuses never uses up quota.

With the `redis` policy every check has a deadline (`redis_timeout_ms`); a slow or
failing Redis switches this replica to its fallback (`local` counters by default, or
`closed`/`open`) for `redis_retry_ms`; then a background probe (never a request)
checks Redis, so recovery needs no operator and a frozen Redis costs at most one
timeout per in-flight request when it first stops answering.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from tollgate.contracts.events.billing import PastQuota
from tollgate.contracts.events.gateway import RejectionReason
from tollgate.gateway.config import Settings
from tollgate.gateway.limits.quota import LocalQuota, QuotaCount, RedisQuota
from tollgate.gateway.limits.redis_counters import RedisCounters
from tollgate.gateway.limits.windows import (
    Bucket,
    LocalCounters,
    Verdict,
    policy_header,
    policy_name,
)
from tollgate.gateway.registry.plans import PlanRecord
from tollgate.gateway.registry.records import ApiRecord, KeyRecord, RouteRecord

log = logging.getLogger(__name__)

REDIS_FAILURES = Counter(
    "tollgate_gateway_ratelimit_redis_failures_total",
    "Redis limit checks that failed or timed out (the fallback answered)",
)
REDIS_HEALTHY = Gauge(
    "tollgate_gateway_ratelimit_redis_healthy", "1 while the redis policy reaches Redis"
)


class _Checks(Collector):
    """`tollgate_gateway_ratelimit_checks_total{backend}`, counted in plain Python and
    read at scrape: `Counter.inc` takes a mutex, and a local check is counted on every
    request (the event loop thread only counts)."""

    def __init__(self) -> None:
        self.by_backend: dict[str, int] = {}

    def inc(self, backend: str) -> None:
        self.by_backend[backend] = self.by_backend.get(backend, 0) + 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "tollgate_gateway_ratelimit_checks", "Limit checks by backend", labels=["backend"]
        )
        for backend, value in sorted(self.by_backend.items()):
            family.add_metric([backend], value)
        yield family


CHECKS = _Checks()
REGISTRY.register(CHECKS)


_PLANS_MAX = 100_000


class RedisUnavailable(Exception):
    """The `closed` fallback refuses requests while Redis is unreachable."""


def buckets_for(
    key: KeyRecord, api: ApiRecord, route: RouteRecord | None, plan: PlanRecord | None = None
) -> list[Bucket]:
    """Every window that applies to this key/API/route and the org's plan (global
    limits added later). A test key's calls count in test windows of their own: test
    traffic never uses up what live traffic is allowed, the org's or other orgs'."""
    mode = ":test" if key.test else ""
    buckets: list[Bucket] = [(f"k:{key.key_id}:{w}", n, w) for n, w in key.windows]
    buckets.extend((f"a:{api.api_id}{mode}:{w}", n, w) for n, w in api.windows)
    if route is not None:
        buckets.extend((f"r:{route.route_id}{mode}:{w}", n, w) for n, w in route.windows)
    if plan is not None:
        buckets.extend(plan.test_buckets if key.test else plan.buckets)
    return buckets


def suspended_verdict() -> Verdict:
    """The refusal of every call of a suspended org."""
    return Verdict(
        False,
        0,
        0,
        0,
        60,
        "",
        status=402,
        reason=RejectionReason.CREDITS_EXHAUSTED,
        detail="The organisation's plan is suspended until its invoice is paid.",
        slug="plan-suspended",
    )


def quota_verdict(plan: PlanRecord, quota: int, count: QuotaCount, now: float) -> Verdict:
    """The verdict of the plan's quota: remaining requests in the period, and for a
    refusal the plan's status (402 or 429) with `Retry-After` at the period's end."""
    reset = max(1, int(plan.period_end - now + 0.999))
    period = max(1, int(plan.period_end - plan.period_start))
    remaining = max(0, quota - count.used)
    policy = f'"plan-quota";q={quota};w={period}'
    state = f'"plan-quota";r={remaining};t={reset}'
    if count.taken:
        return Verdict(True, quota, remaining, reset, 0, policy, state)
    status = 429 if plan.past_quota is PastQuota.REJECT_429 else 402
    return Verdict(
        False,
        quota,
        0,
        reset,
        reset,
        policy,
        state,
        status=status,
        reason=RejectionReason.RATE_LIMITED if status == 429 else RejectionReason.CREDITS_EXHAUSTED,
        detail=f"The plan's {quota} included requests for this period are used up.",
        slug="quota-exceeded",
    )


class RateLimiter:
    """Evaluates limits with the configured policy and its fallback."""

    def __init__(self, settings: Settings) -> None:
        self._policy = settings.rate_limit_policy
        self._fallback = settings.redis_fallback
        self._timeout = settings.redis_timeout_ms / 1000
        self._retry = settings.redis_retry_ms / 1000
        self._local = LocalCounters()
        self._local_quota = LocalQuota()
        self._redis_quota: RedisQuota | None = None
        self._global: list[Bucket] = []
        if settings.global_per_second:
            self._global.append(("g:1", settings.global_per_second, 1))
        if settings.global_per_minute:
            self._global.append(("g:60", settings.global_per_minute, 60))
        self._redis_client: Redis | None = None
        self._redis: RedisCounters | None = None
        self._redis_down_until = 0.0
        self._probe: asyncio.Task[None] | None = None
        # (key, API, route, plan) records -> their buckets and `RateLimit-Policy` text. A
        # replayed change replaces the record object, so a changed limit is a new entry;
        # entries of replaced records are dropped when the cache is cleared at its cap.
        self._plans: dict[
            tuple[KeyRecord, ApiRecord, RouteRecord | None, PlanRecord | None],
            tuple[list[Bucket], str],
        ] = {}
        if self._policy == "redis":
            self._redis_client = Redis.from_url(
                settings.redis_url,
                socket_timeout=max(self._timeout * 4, 0.5),
                socket_connect_timeout=max(self._timeout * 4, 0.5),
                max_connections=256,
            )
            self._redis = RedisCounters(self._redis_client)
            self._redis_quota = RedisQuota(self._redis_client)
            REDIS_HEALTHY.set(1)

    @property
    def uses_redis(self) -> bool:
        return self._redis is not None

    @property
    def redis_healthy(self) -> bool:
        return self._redis is not None and self._redis_down_until == 0.0

    async def check(
        self,
        key: KeyRecord,
        api: ApiRecord,
        route: RouteRecord | None,
        org_plan: PlanRecord | None = None,
    ) -> Verdict | None:
        """The verdict for one request, or None when no limit applies (`org_plan`: the
        key's org's plan, if it has one)."""
        if org_plan is not None and org_plan.suspended:
            return suspended_verdict()
        plan = self._plans.get((key, api, route, org_plan))
        if plan is None:
            if len(self._plans) >= _PLANS_MAX:
                self._plans.clear()
            buckets = buckets_for(key, api, route, org_plan)
            buckets.extend(self._global)
            plan = self._plans[(key, api, route, org_plan)] = (buckets, policy_header(buckets))
        buckets, policy = plan
        verdict: Verdict | None = None
        if buckets:
            if self._redis is None:
                CHECKS.inc("local")
                verdict = self._local.check(buckets, time.time(), policy)
            else:
                verdict = await self._check_redis(self._redis, buckets)
            if not verdict.allowed:
                return verdict
        if org_plan is None or org_plan.quota is None or key.test:
            return verdict  # test keys never use up what the org paid for
        quota = await self._take_quota(org_plan, org_plan.quota)
        if quota.allowed and verdict is not None and not org_plan.hard_quota:
            return verdict  # overage: the windows' headers say more
        return quota

    async def _take_quota(self, plan: PlanRecord, quota: int) -> Verdict:
        now = time.time()
        if self._redis_quota is not None and self._redis_down_until == 0.0:
            try:
                count = await asyncio.wait_for(self._redis_quota.take(plan, quota), self._timeout)
            except Exception as exc:
                self._mark_down(exc)
            else:
                return quota_verdict(plan, quota, count, now)
        if self._redis_quota is not None and self._fallback == "closed":
            raise RedisUnavailable
        return quota_verdict(plan, quota, self._local_quota.take(plan, quota), now)

    async def _check_redis(self, redis: RedisCounters, buckets: list[Bucket]) -> Verdict:
        if self._redis_down_until > 0.0:
            # Down: answer from the fallback at once; a background probe (one at a
            # time, every `redis_retry_ms`) finds out when Redis is back.
            if self._probe is None and time.monotonic() >= self._redis_down_until:
                self._probe = asyncio.create_task(self._probe_redis())
            return self._fallback_check(buckets)
        try:
            result = await asyncio.wait_for(redis.check(buckets), self._timeout)
        except Exception as exc:
            self._mark_down(exc)
            return self._fallback_check(buckets)
        CHECKS.inc("redis")
        return result

    async def _probe_redis(self) -> None:
        assert self._redis_client is not None
        try:
            await asyncio.wait_for(self._redis_client.ping(), self._timeout * 4)
        except Exception as exc:
            self._mark_down(exc)
        else:
            log.info("redis limits reachable again")
            self._redis_down_until = 0.0
            REDIS_HEALTHY.set(1)
        finally:
            self._probe = None

    def _mark_down(self, exc: BaseException) -> None:
        REDIS_FAILURES.inc()
        if self._redis_down_until == 0.0:
            log.warning(
                "redis limits unavailable; using fallback",
                extra={"fallback": self._fallback, "error": type(exc).__name__},
            )
        self._redis_down_until = time.monotonic() + self._retry
        REDIS_HEALTHY.set(0)

    def _fallback_check(self, buckets: list[Bucket]) -> Verdict:
        CHECKS.inc(f"fallback-{self._fallback}")
        if self._fallback == "closed":
            raise RedisUnavailable
        if self._fallback == "open":
            limit, window = buckets[0][1], buckets[0][2]
            state = ", ".join(f'"{policy_name(b)}";r={b[1]};t={b[2]}' for b in buckets)
            return Verdict(True, limit, limit, window, 0, policy_header(buckets), state)
        return self._local.check(buckets, time.time())

    def sweep(self) -> None:
        """Drop finished local windows (called periodically)."""
        self._local.sweep(time.time())
        self._local_quota.sweep()

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        if self._redis_client is not None:
            await self._redis_client.aclose()
