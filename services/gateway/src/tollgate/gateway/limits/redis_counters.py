"""The `redis` policy: every window of a request checked and counted in one Lua script.

The script reads the slot counters of every bucket (see `windows`) at Redis's own
clock (`TIME`, so replicas with skewed clocks agree), admits the request only if
every window has room, and only then increments the current slot of every bucket
and sets its expiry (one window plus two slots), all atomically. It returns the
verdict, the clock it used and the slot counts so the gateway builds the same
headers as the local policy. Slot keys are `tg:rl:<bucket>:<slot index>`; all
buckets of one request are touched by one script, so this needs a single Redis
(or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from tollgate.gateway.limits.windows import SLOTS, Bucket, Verdict, verdict

LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slots = tonumber(ARGV[1])
local ok = 1
local out = {0, now}
local current = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[2 * i])
  local width = tonumber(ARGV[2 * i + 1]) / slots
  local idx = math.floor(now / width)
  local names = {}
  for s = 0, slots do names[s + 1] = KEYS[i] .. ':' .. (idx - slots + s) end
  local values = redis.call('MGET', unpack(names))
  local total = 0
  for s = 1, slots + 1 do
    local v = tonumber(values[s] or '0')
    total = total + v
    out[#out + 1] = v
  end
  if total + 1 > limit then ok = 0 end
  current[i] = names[slots + 1]
end
if ok == 1 then
  for i = 1, #KEYS do
    redis.call('INCR', current[i])
    redis.call('PEXPIRE', current[i], math.ceil(tonumber(ARGV[2 * i + 1]) * (slots + 2) / slots))
  end
end
out[1] = ok
return out
"""


class RedisCounters:
    """Runs the limit script; raises whatever redis-py raises when Redis fails."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._script = client.register_script(LUA)

    async def check(self, buckets: Sequence[Bucket]) -> Verdict:
        keys = ["tg:rl:" + name for name, _limit, _window in buckets]
        args: list[int] = [SLOTS]
        for _name, limit, window in buckets:
            args.extend((limit, window * 1000))
        reply = await self._script(keys=keys, args=args)
        allowed = int(reply[0]) == 1
        now = int(reply[1]) / 1000
        width = SLOTS + 1
        counts = [
            [int(v) for v in reply[2 + i * width : 2 + (i + 1) * width]]
            for i in range(len(buckets))
        ]
        return verdict(buckets, counts, now, consumed=allowed)
