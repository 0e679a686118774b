"""State changes published on Kafka reach the gateway's request path within a second:
a disabled key is refused, a revoked key is refused, an exhausted prepaid balance
answers 402. Each is measured over several trials; p50/p99 are printed."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tollgate.contracts.events.billing import BalanceStatus
from tollgate.kit import apikeys
from tollgate.kit.testing import unique_name

from .gateway_support import (
    StatePublisher,
    api_event,
    balance_event,
    gateway,
    key_event,
    start_upstream,
)

pytestmark = pytest.mark.system
TRIALS = 20


async def until_status(client: httpx.AsyncClient, key: str, status: int) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < 5:
        response = await client.get("/api/hello", headers={"X-API-Key": key})
        if response.status_code == status:
            return time.perf_counter() - started
        await asyncio.sleep(0.005)
    raise AssertionError(f"status {status} not seen within 5 s")


async def test_revocation_and_exhaustion_reach_the_gateway_within_a_second(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    prefix = unique_name("t", sep="") + "."
    upstream = start_upstream(tmp_path)
    org = uuid.uuid4()
    raw = apikeys.generate().raw
    key_id = uuid.uuid4()
    # Revocation is final, so each of its trials revokes a key of its own.
    doomed = [apikeys.generate().raw for _ in range(TRIALS)]
    doomed_ids = [uuid.uuid4() for _ in doomed]
    async with StatePublisher(kafka_bootstrap, prefix) as state:
        await state.publish(
            api_event("api", upstream.url),
            key_event(org, raw, key_id=key_id),
            *(key_event(org, k, key_id=i) for k, i in zip(doomed, doomed_ids, strict=True)),
        )
        service = gateway(tmp_path, kafka_bootstrap, prefix)
        service.start()
        delays: dict[str, list[float]] = {"disabled": [], "revoked": [], "exhausted": []}
        version = 1
        try:
            async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
                assert (
                    await client.get("/api/hello", headers={"X-API-Key": raw})
                ).status_code == 200
                for trial in range(TRIALS):
                    version += 1
                    started = time.perf_counter()
                    await state.publish(
                        key_event(org, raw, key_id=key_id, version=version, enabled=False)
                    )
                    await until_status(client, raw, 403)
                    delays["disabled"].append(time.perf_counter() - started)
                    version += 1
                    await state.publish(key_event(org, raw, key_id=key_id, version=version))
                    await until_status(client, raw, 200)

                    started = time.perf_counter()
                    await state.publish(
                        balance_event(org, BalanceStatus.EXHAUSTED, version=2 * trial + 1)
                    )
                    await until_status(client, raw, 402)
                    delays["exhausted"].append(time.perf_counter() - started)
                    await state.publish(balance_event(org, BalanceStatus.OK, version=2 * trial + 2))
                    await until_status(client, raw, 200)
                for doomed_raw, doomed_id in zip(doomed, doomed_ids, strict=True):
                    assert (
                        await client.get("/api/hello", headers={"X-API-Key": doomed_raw})
                    ).status_code == 200
                    started = time.perf_counter()
                    await state.publish(
                        key_event(org, doomed_raw, key_id=doomed_id, version=2, revoked=True)
                    )
                    await until_status(client, doomed_raw, 401)
                    delays["revoked"].append(time.perf_counter() - started)
                # A stale record (older version) must not resurrect a revoked key.
                await state.publish(key_event(org, doomed[0], key_id=doomed_ids[0], version=1))
                await asyncio.sleep(0.5)
                assert (
                    await client.get("/api/hello", headers={"X-API-Key": doomed[0]})
                ).status_code == 401
        finally:
            service.stop()
            upstream.stop()
    for name, values in delays.items():
        ordered = sorted(values)
        p50 = statistics.median(ordered)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(
            f"propagation {name}: n={len(values)} p50={p50 * 1000:.0f} ms p99={p99 * 1000:.0f} ms"
        )
        assert p99 < 1.0, (name, values)
