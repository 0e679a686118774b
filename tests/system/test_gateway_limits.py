"""Rate-limit accuracy: a burst across a window boundary passes at most 1.1x the limit;
with the `redis` policy two gateway processes under 64 concurrent clients let through
exactly the limit; a frozen Redis (SIGSTOP 10 s) is ridden out on local limits (one
request pays the Redis timeout, the rest none), and the gateway returns to Redis by itself."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis

from tollgate.kit import apikeys, localdeps
from tollgate.kit.testing import unique_name

from .gateway_support import StatePublisher, api_event, gateway, key_event, start_upstream

pytestmark = pytest.mark.system


async def test_burst_across_a_window_boundary_stays_within_limit(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    prefix = unique_name("t", sep="") + "."
    upstream = start_upstream(tmp_path)
    raw = apikeys.generate().raw
    limit = 20
    async with StatePublisher(kafka_bootstrap, prefix) as state:
        await state.publish(
            api_event("api", upstream.url),
            key_event(uuid.uuid4(), raw, limits={"per_second": limit}),
        )
    service = gateway(tmp_path, kafka_bootstrap, prefix)
    service.start()
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:

            async def burst() -> int:
                answers = await asyncio.gather(
                    *(client.get("/api/hello", headers={"X-API-Key": raw}) for _ in range(limit))
                )
                return sum(a.status_code == 200 for a in answers)

            # Fire the limit just before a second boundary and again just after it; the
            # two bursts must land within one second of each other for the measurement
            # to mean anything, so a run slowed down by a busy machine is measured again
            # (each attempt waits out the window, so attempts do not share counts).
            for _attempt in range(3):
                await asyncio.sleep(1 - time.time() % 1 + 1.80)
                started = time.monotonic()
                passed = await burst()
                await asyncio.sleep(max(0.0, 0.25 - (time.monotonic() - started)))
                passed += await burst()
                elapsed = time.monotonic() - started
                if elapsed < 1.0:
                    break
    finally:
        service.stop()
        upstream.stop()
    print(f"boundary burst: {passed} passed of {2 * limit} in {elapsed:.2f} s (limit {limit}/s)")
    assert elapsed < 1.0
    assert passed <= 1.1 * limit


async def test_redis_policy_is_exact_across_two_gateways_and_survives_redis_freezing(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    prefix = unique_name("t", sep="") + "."
    upstream = start_upstream(tmp_path)
    redis_server = localdeps.start_redis(tmp_path / "redis")
    raw = apikeys.generate().raw
    limit = 100
    async with StatePublisher(kafka_bootstrap, prefix) as state:
        await state.publish(
            api_event("api", upstream.url),
            key_event(uuid.uuid4(), raw, limits={"per_hour": limit}),
        )
    # Generous, so a busy CI box never trips the fallback while exactness is measured;
    # the frozen phase shows that only one request ever waits for it.
    timeout_s = 1.0
    settings = {
        "RATE_LIMIT_POLICY": "redis",
        "REDIS_URL": redis_server.url,
        "REDIS_TIMEOUT_MS": str(int(timeout_s * 1000)),
        "REDIS_RETRY_MS": "500",
    }
    gateways = [gateway(tmp_path, kafka_bootstrap, prefix, settings) for _ in range(2)]
    for service in gateways:
        service.start()
    try:
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=64)) as client:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for index in range(3 * limit):
                queue.put_nowait(index)
            statuses: list[int] = []

            async def worker() -> None:
                while not queue.empty():
                    index = queue.get_nowait()
                    url = gateways[index % 2].url + "/api/hello"
                    response = await client.get(url, headers={"X-API-Key": raw})
                    statuses.append(response.status_code)

            await asyncio.gather(*(worker() for _ in range(64)))
            assert statuses.count(200) == limit
            assert statuses.count(429) == 2 * limit

            # Redis frozen: requests keep being served on local limits, quickly.
            other = apikeys.generate().raw  # a fresh key, so local counters have room
            async with StatePublisher(kafka_bootstrap, prefix) as state:
                await state.publish(key_event(uuid.uuid4(), other, limits={"per_hour": 10_000}))
            await asyncio.sleep(1.0)
            redis_server.pause()
            latencies: list[float] = []
            frozen_statuses: list[int] = []
            deadline = time.monotonic() + 10
            try:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    response = await client.get(
                        gateways[0].url + "/api/hello", headers={"X-API-Key": other}
                    )
                    latencies.append(time.perf_counter() - started)
                    frozen_statuses.append(response.status_code)
                    await asyncio.sleep(0.01)
            finally:
                redis_server.resume()
            latencies.sort()
            p99 = latencies[int(len(latencies) * 0.99)]
            print(
                f"redis frozen 10 s: {len(latencies)} requests, statuses "
                f"{set(frozen_statuses)}, p50={latencies[len(latencies) // 2] * 1000:.1f} ms "
                f"p99={p99 * 1000:.1f} ms max={latencies[-1] * 1000:.0f} ms"
            )
            assert set(frozen_statuses) == {200}
            assert latencies[-1] < timeout_s + 0.5  # the first request: bounded by the timeout
            assert p99 < timeout_s / 4  # everyone after it: no wait for Redis at all

            # Recovery: after the retry interval the gateway counts in Redis again.
            await asyncio.sleep(1.0)
            for _ in range(3):
                await client.get(gateways[0].url + "/api/hello", headers={"X-API-Key": other})
            metrics = (await client.get(gateways[0].url + "/_tollgate/metrics")).text
            assert "tollgate_gateway_ratelimit_redis_healthy 1.0" in metrics
            assert "tollgate_gateway_ratelimit_redis_failures_total" in metrics
        db = redis.Redis.from_url(redis_server.url)
        try:
            assert any(b"k:" in name for name in db.keys("tg:rl:*"))
        finally:
            db.close()
    finally:
        for service in gateways:
            service.stop()
        redis_server.stop()
        upstream.stop()
