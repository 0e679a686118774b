"""Included requests per plan period: counted per org and period, exactly.

`LocalQuota` counts in this process (the `local` policy, and the fallback of the
`redis` policy); `RedisQuota` counts in Redis with one Lua script that admits and
increments only while the count is below the quota (a refused request counts
nothing), so every worker and replica shares one exact count and a gateway restart
keeps it. Counter keys are `tg:quota:<org>:<period start>`; they expire a day after
the period ends. With the `local` policy each worker process counts alone and a
restart starts the period's count again at zero: use `redis` where a quota must be
exact across workers, replicas and restarts.
"""

from __future__ import annotations

import time

from redis.asyncio import Redis

from tollgate.gateway.registry.plans import PlanRecord

_EXPIRE_AFTER_PERIOD_S = 86400

LUA = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
local quota = tonumber(ARGV[1])
if ARGV[3] == '1' or n < quota then
  n = redis.call('INCR', KEYS[1])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
  return {1, n}
end
return {0, n}
"""


class QuotaCount:
    """The outcome of taking one request from a quota."""

    __slots__ = ("taken", "used")

    def __init__(self, taken: bool, used: int) -> None:
        self.taken = taken
        self.used = used
        """Requests counted in the period, this one included when taken."""


class LocalQuota:
    """Per-org, per-period request counts in this process's memory."""

    def __init__(self) -> None:
        self._counts: dict[str, list[float]] = {}  # quota_key -> [count, period end]

    def take(self, plan: PlanRecord, quota: int) -> QuotaCount:
        """Count one request if the period has room (or always, with overage)."""
        entry = self._counts.get(plan.quota_key)
        if entry is None:
            entry = self._counts[plan.quota_key] = [0, plan.period_end]
        used = int(entry[0])
        if used < quota or not plan.hard_quota:
            entry[0] = used + 1
            return QuotaCount(True, used + 1)
        return QuotaCount(False, used)

    def sweep(self, now: float | None = None) -> int:
        """Forget counts of periods that ended a day ago; returns how many."""
        cutoff = (time.time() if now is None else now) - _EXPIRE_AFTER_PERIOD_S
        stale = [key for key, (_n, end) in self._counts.items() if end < cutoff]
        for key in stale:
            del self._counts[key]
        return len(stale)


class RedisQuota:
    """Runs the quota script; raises whatever redis-py raises when Redis fails."""

    def __init__(self, client: Redis) -> None:
        self._script = client.register_script(LUA)

    async def take(self, plan: PlanRecord, quota: int) -> QuotaCount:
        expire_ms = int((plan.period_end + _EXPIRE_AFTER_PERIOD_S) * 1000)
        overage = "0" if plan.hard_quota else "1"
        reply = await self._script(
            keys=[f"tg:quota:{plan.quota_key}"], args=[quota, expire_ms, overage]
        )
        return QuotaCount(int(reply[0]) == 1, int(reply[1]))
