"""kill -9 under load loses no event of a request whose answer was fully sent (issue
#10): every event is journaled to disk before its answer goes out, and the next
start replays the journal (checked against the topic, so nothing is doubled)."""

from __future__ import annotations

import asyncio
import collections
import uuid
from pathlib import Path

import httpx
import pytest

from tollgate.kit import apikeys
from tollgate.kit.testing import unique_name

from .gateway_support import (
    StatePublisher,
    api_event,
    gateway,
    key_event,
    start_upstream,
    wait_events,
)

pytestmark = pytest.mark.system
WORKERS = 16


async def worker(
    url: str, key: str, stop: asyncio.Event, answered: list[str], warm: asyncio.Event
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while not stop.is_set():
            try:
                response = await client.get("/api/hello", headers={"X-API-Key": key})
                response.read()
            except httpx.HTTPError:
                return  # the gateway died under this request: not answered
            if response.status_code == 200:
                answered.append(response.headers["x-request-id"])
                if len(answered) >= 100:  # under way (the machine may be slow)
                    warm.set()


@pytest.mark.parametrize("trial", range(3))
async def test_kill9_under_load_loses_no_answered_request(
    tmp_path: Path, kafka_bootstrap: str, trial: int
) -> None:
    prefix = unique_name("t", sep="") + "."
    upstream = start_upstream(tmp_path)
    raw = apikeys.generate().raw
    async with StatePublisher(kafka_bootstrap, prefix) as state:
        await state.publish(api_event("api", upstream.url), key_event(uuid.uuid4(), raw))
    service = gateway(tmp_path, kafka_bootstrap, prefix)
    service.start()
    answered: list[str] = []
    stop, warm = asyncio.Event(), asyncio.Event()
    try:
        load = [
            asyncio.create_task(worker(service.url, raw, stop, answered, warm))
            for _ in range(WORKERS)
        ]
        await asyncio.wait_for(warm.wait(), 60)
        await asyncio.sleep(0.5 + trial * 0.37)
        service.kill9()
        killed_at = len(answered)
        stop.set()
        await asyncio.gather(*load)
        service.start()  # same spool directory: replays what the dead one journaled
        events = await wait_events(kafka_bootstrap, prefix, len(answered), within=30)
    finally:
        service.stop()
        upstream.stop()
    on_topic = collections.Counter(e["id"] for e in events)
    lost = set(answered) - set(on_topic)
    print(
        f"\nkill -9 under load (trial {trial}): answered={len(answered)} "
        f"(at the kill {killed_at}) events={len(events)} lost={len(lost)} "
        f"duplicated={sum(1 for c in on_topic.values() if c > 1)}"
    )
    assert not lost
    assert max(on_topic.values()) == 1
