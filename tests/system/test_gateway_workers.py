"""Several gateway workers on one port (`workers`): they all serve, a killed worker
costs no request of the others and is started again, and a broker outage with two
workers loses and duplicates no event."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tollgate.kit import apikeys
from tollgate.kit.testing import unique_name
from tollgate.kit.testing.plugin import BrokerControl

from .gateway_support import (
    StatePublisher,
    api_event,
    gateway,
    key_event,
    start_upstream,
    wait_events,
)

pytestmark = pytest.mark.system

# Two workers without Redis: local limits per worker, accepted explicitly.
TWO_WORKERS = {"WORKERS": "2", "LOCAL_LIMITS_PER_WORKER": "true"}


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


async def wait_children(pid: int, count: int, within: float) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = children(pid)
        if len(found) == count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"supervisor has {children(pid)} workers, expected {count}")


async def fresh_connection_get(url: str, key: str) -> httpx.Response:
    # A new connection each time, so the kernel spreads them over the workers.
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        return await client.get("/api/hello", headers={"X-API-Key": key})


async def test_two_workers_serve_and_one_killed_costs_nothing(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    prefix = unique_name("t", sep="") + "."
    upstream = start_upstream(tmp_path)
    raw = apikeys.generate().raw
    async with StatePublisher(kafka_bootstrap, prefix) as state:
        await state.publish(api_event("api", upstream.url), key_event(uuid.uuid4(), raw))
    service = gateway(tmp_path, kafka_bootstrap, prefix, TWO_WORKERS)
    service.start()
    try:
        assert service.proc is not None
        supervisor = service.proc.pid
        workers = await wait_children(supervisor, 2, within=10)
        # Both workers replay and answer: events name two gateway instances.
        first = [await fresh_connection_get(service.url, raw) for _ in range(40)]
        assert [r.status_code for r in first] == [200] * 40
        os.kill(workers[0], signal.SIGKILL)
        await asyncio.sleep(0.3)  # the kernel drops the dead worker's listening socket
        during = [await fresh_connection_get(service.url, raw) for _ in range(40)]
        assert [r.status_code for r in during] == [200] * 40
        replaced = await wait_children(supervisor, 2, within=20)
        assert workers[1] in replaced
        assert workers[0] not in replaced
        ids = [r.headers["x-request-id"] for r in [*first, *during]]
        events = await wait_events(kafka_bootstrap, prefix, len(ids), within=30)
        assert {e["id"] for e in events} == set(ids)
        assert len({e["source"] for e in events}) >= 2  # both workers served
    finally:
        service.stop()
        upstream.stop()


async def steady_load(
    url: str,
    key: str,
    seconds: float,
    ids: list[str],
    statuses: collections.Counter[int],
    resets: list[int] | None = None,
) -> None:
    """Fresh-connection GETs until `seconds` pass. With `resets`, a connection closed
    before any answer (one Linux reset from a closing listener's accept queue: the request
    never reached a worker) is counted there and retried, as clients retry it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            response = await fresh_connection_get(url, key)
        except httpx.RemoteProtocolError:
            if resets is None:
                raise
            resets.append(1)
            continue
        statuses[response.status_code] += 1
        ids.append(response.headers["x-request-id"])
        await asyncio.sleep(0.02)


def acknowledged(tmp_path: Path) -> list[str]:
    """Each worker's `acked.json`: the next offsets the broker acknowledged to it."""
    return [path.read_text() for path in sorted(tmp_path.glob("spool-*/worker-*/acked.json"))]


async def test_broker_pause_with_two_workers_loses_and_duplicates_nothing(
    tmp_path: Path, kafka_broker: BrokerControl
) -> None:
    bootstrap = kafka_broker.bootstrap
    prefix = unique_name("t", sep="") + "."
    upstream = start_upstream(tmp_path)
    raw = apikeys.generate().raw
    async with StatePublisher(bootstrap, prefix) as state:
        await state.publish(api_event("api", upstream.url), key_event(uuid.uuid4(), raw))
    service = gateway(tmp_path, bootstrap, prefix, TWO_WORKERS)
    service.start()
    ids: list[str] = []
    statuses: collections.Counter[int] = collections.Counter()
    pause_s = 6.0
    try:
        assert service.proc is not None
        await wait_children(service.proc.pid, 2, within=10)
        load = [
            asyncio.create_task(steady_load(service.url, raw, pause_s + 4, ids, statuses))
            for _ in range(3)
        ]
        await asyncio.sleep(2)
        kafka_broker.pause()
        await asyncio.sleep(pause_s)
        kafka_broker.resume()
        await asyncio.gather(*load)
        events = await wait_events(bootstrap, prefix, len(ids), within=60)
    finally:
        kafka_broker.resume()
        service.stop()
        upstream.stop()
    assert statuses == {200: len(ids)}
    on_topic = collections.Counter(e["id"] for e in events)
    print(
        f"two workers, broker pause {pause_s:.0f} s: requests={len(ids)} "
        f"events={len(events)} distinct={len(on_topic)} "
        f"sources={len({e['source'] for e in events})}"
    )
    # Each worker's acknowledged next offsets beside the events read: a broker that
    # acknowledged more records than it serves shows as offsets beyond the count.
    assert set(on_topic) == set(ids), (sorted(set(ids) - set(on_topic)), acknowledged(tmp_path))
    assert max(on_topic.values()) == 1
    assert len({e["source"] for e in events}) == 2


async def test_sighup_replaces_the_workers_without_a_lost_or_failed_request(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    prefix = unique_name("t", sep="") + "."
    upstream = start_upstream(tmp_path)
    raw = apikeys.generate().raw
    async with StatePublisher(kafka_bootstrap, prefix) as state:
        await state.publish(api_event("api", upstream.url), key_event(uuid.uuid4(), raw))
    service = gateway(tmp_path, kafka_bootstrap, prefix, TWO_WORKERS)
    service.start()
    ids: list[str] = []
    statuses: collections.Counter[int] = collections.Counter()
    resets: list[int] = []
    try:
        assert service.proc is not None
        supervisor = service.proc.pid
        old = await wait_children(supervisor, 2, within=10)
        load = [
            asyncio.create_task(steady_load(service.url, raw, 8, ids, statuses, resets))
            for _ in range(2)
        ]
        await asyncio.sleep(1)
        os.kill(supervisor, signal.SIGHUP)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = children(supervisor)
            if len(now) == 2 and not set(now) & set(old):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"workers after reload: {children(supervisor)}, old {old}")
        await asyncio.gather(*load)
        events = await wait_events(kafka_bootstrap, prefix, len(ids), within=30)
    finally:
        service.stop()
        upstream.stop()
    print(
        f"\nSIGHUP under load: {len(ids)} answered, {len(resets)} connections reset "
        "before reaching a worker (retried)"
    )
    assert len(resets) <= 5  # only what sat in the old listeners' queues at their close
    assert statuses == {200: len(ids)}
    on_topic = collections.Counter(e["id"] for e in events)
    assert set(on_topic) == set(ids)
    assert max(on_topic.values()) == 1
