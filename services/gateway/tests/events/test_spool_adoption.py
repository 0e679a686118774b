"""A running gateway process takes over the spools no process holds (an older
generation's workers after a reload while the broker was away, a killed worker's
slot no longer used), so their events reach the topic without waiting for the next
reload; a spool a running process holds is left alone."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from pathlib import Path

import orjson
import pytest

from tollgate.contracts import topics
from tollgate.gateway.config import Settings
from tollgate.gateway.events import publisher as publisher_module
from tollgate.gateway.events.journal import Journal
from tollgate.gateway.events.publisher import REJECTED, EventPublisher
from tollgate.gateway.events.spool import Spool
from tollgate.kit.kafka import ensure_topics, topic_name

from .topic import produce, wait_event_ids


def worker(root: Path, slot: int | None, bootstrap: str, prefix: str) -> EventPublisher:
    return EventPublisher(
        Settings(
            spool_dir=root,
            worker_slot=slot,
            kafka_bootstrap_servers=bootstrap,
            kafka_topic_prefix=prefix,
            kafka_enable_idempotence=False,  # Tansu
            events_linger_ms=5,
        )
    )


def publish(publisher: EventPublisher, ids: list[str]) -> None:
    for request_id in ids:
        publisher.publish("org-1", REJECTED, {"request_id": request_id, "time": time.time()}, "")


async def test_spools_left_by_stopped_workers_are_drained_by_a_running_one(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: each worker drained only its own slot's spool. After a reload the new
    # generation runs in other slots, so an old worker's spool waited for the reload
    # after next (or for ever, after `workers` was lowered): requests never billed.
    monkeypatch.setattr(publisher_module, "_SETTLE_S", 0.1)
    root = tmp_path / "spool"
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=topic_prefix)
    await ensure_topics(settings, [topics.GATEWAY_REQUESTS])
    topic = topic_name(topics.GATEWAY_REQUESTS, settings)

    # Worker 0 of the old generation stopped while the broker was away: its queue
    # went to its spool.
    stopped = worker(root, 0, kafka_bootstrap, topic_prefix)
    publish(stopped, [f"stopped-{n}" for n in range(50)])
    await stopped.close(grace_s=0.1)  # never connected: everything spooled

    # Worker 1 was killed (-9) with events journaled, part of them on the topic already
    # (their batch was written, its answer never came).
    killed = worker(root, 1, kafka_bootstrap, topic_prefix)
    publish(killed, [f"killed-{n}" for n in range(20)])
    landed = [record[1] for _seq, record in list(killed._queue)[:8]]
    await produce(kafka_bootstrap, topic, landed)
    killed._spool.close()  # the kernel drops a dead process's lock; its journal stays

    # A gateway that ran without workers on this spool directory, stopped the same way.
    single = worker(root, None, kafka_bootstrap, topic_prefix)
    publish(single, [f"single-{n}" for n in range(5)])
    await single.close(grace_s=0.1)

    # Worker 3 is running: its spool is its own.
    running = worker(root, 3, kafka_bootstrap, topic_prefix)
    publish(running, [f"running-{n}" for n in range(7)])
    running._spill_queue()

    new = worker(root, 2, kafka_bootstrap, topic_prefix)
    await new.start()
    try:
        ids = await wait_event_ids(kafka_bootstrap, topic, 75, within=20)
    finally:
        await new.close(grace_s=2)
        await running.close(grace_s=0.1)

    on_topic = collections.Counter(ids)
    assert set(on_topic) == {
        *(f"stopped-{n}" for n in range(50)),
        *(f"killed-{n}" for n in range(20)),
        *(f"single-{n}" for n in range(5)),
    }
    assert max(on_topic.values()) == 1, [i for i, c in on_topic.items() if c > 1]
    for gone in (root / "worker-0", root / "worker-1", root):
        assert not list(gone.glob("*.seg")), gone
        assert not list(gone.glob("*.wal")), gone
    kept = Spool(root / "worker-3", 1 << 30)
    assert sorted(
        orjson.loads(v)["id"] for p in kept.segments() for _k, v, _t in Spool.read(p)
    ) == sorted(f"running-{n}" for n in range(7))
    kept.close()
    assert Journal.recover(root / "worker-3")[1] == []


async def test_taking_spools_over_leaves_room_for_our_own_events(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: every orphan was moved in at once, past `spool_max_bytes`; the adopter's
    # own events, spilled while it drained them, were refused by the full spool and
    # dropped.
    monkeypatch.setattr(publisher_module, "_ADOPT_EVERY_S", 0.1)
    root = tmp_path / "spool"
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=topic_prefix)
    await ensure_topics(settings, [topics.GATEWAY_REQUESTS])
    topic = topic_name(topics.GATEWAY_REQUESTS, settings)
    padding = "x" * 500  # events of about 800 bytes: 750 of them fill 600 KB
    for slot in (0, 1):
        stopped = worker(root, slot, kafka_bootstrap, topic_prefix)
        for n in range(750):
            stopped.publish(
                "org-1",
                REJECTED,
                {"request_id": f"w{slot}-{n}", "time": time.time(), "path": padding},
                "",
            )
        await stopped.close(grace_s=0.1)
    dropped = publisher_module.DROPPED._value.get()

    new = EventPublisher(
        Settings(
            spool_dir=root,
            worker_slot=2,
            spool_max_bytes=1 << 20,
            kafka_bootstrap_servers=kafka_bootstrap,
            kafka_topic_prefix=topic_prefix,
            kafka_enable_idempotence=False,  # Tansu
            events_linger_ms=5,
            events_memory_max=100,  # live events spill while it drains
        )
    )
    await new.start()
    try:
        for n in range(600):
            publish(new, [f"live-{n}"])
            if n % 50 == 0:
                await asyncio.sleep(0.01)
        ids = await wait_event_ids(kafka_bootstrap, topic, 2_100, within=30)
    finally:
        await new.close(grace_s=2)
    assert publisher_module.DROPPED._value.get() == dropped
    assert collections.Counter(ids) == collections.Counter(
        [f"w{slot}-{n}" for slot in (0, 1) for n in range(750)] + [f"live-{n}" for n in range(600)]
    )


async def test_a_shutdown_waits_for_a_spool_being_taken_over(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: a shutdown past its grace cancelled the sender but not the thread moving
    # the segments, which went on changing the spool while close() wrote to it.
    root = tmp_path / "spool"
    stopped = worker(root, 0, kafka_bootstrap, topic_prefix)
    publish(stopped, [f"stopped-{n}" for n in range(5)])
    await stopped.close(grace_s=0.1)
    new = worker(root, 1, kafka_bootstrap, topic_prefix)
    real = new._adopt
    moving = threading.Event()

    def slow_adopt(orphans: list[Spool]) -> None:
        moving.set()
        time.sleep(0.5)
        real(orphans)

    monkeypatch.setattr(new, "_adopt", slow_adopt)
    await new.start()
    await asyncio.to_thread(moving.wait, 5)
    await new.close(grace_s=0.01)
    assert not list((root / "worker-0").glob("*.seg"))  # moved before close() returned
    kept = Spool(root / "worker-1", 1 << 30)
    records = [record for path in kept.segments() for record in Spool.read(path)]
    kept.close()
    assert sorted(orjson.loads(v)["id"] for _k, v, _t in records) == sorted(
        f"stopped-{n}" for n in range(5)
    )
