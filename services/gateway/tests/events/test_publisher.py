"""The publisher keeps each event's traceparent, also on the way through the spool, and
keeps every event through a disk that refuses a write."""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import orjson
import pytest

from tollgate.gateway.config import Settings
from tollgate.gateway.events import journal
from tollgate.gateway.events import publisher as publisher_module
from tollgate.gateway.events.journal import Journal
from tollgate.gateway.events.publisher import REJECTED, EventPublisher
from tollgate.gateway.events.spool import Spool

TRACE = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"


async def test_events_spooled_at_shutdown_keep_their_traceparent(tmp_path: Path) -> None:
    publisher = EventPublisher(Settings(spool_dir=tmp_path))
    publisher.publish(
        "org-1",
        REJECTED,
        {"request_id": "req-1", "time": 1_700_000_000.0, "status": 401},
        TRACE,
    )
    await publisher.close()  # never started: no broker, so the queue goes to disk
    spool = Spool(tmp_path, max_bytes=1 << 20)
    records = [record for path in spool.segments() for record in Spool.read(path)]
    spool.close()
    assert len(records) == 1
    key, value, traceparent = records[0]
    assert key == b"org-1"
    assert orjson.loads(value)["id"] == "req-1"
    assert traceparent == TRACE.encode()


def event(publisher: EventPublisher, n: int) -> None:
    publisher.publish("org-1", REJECTED, {"request_id": f"req-{n}", "time": 1.7e9}, "")


def fail_once(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[int]:
    """`owner.name` raises ENOSPC on its first call, then works; returns the failure count."""
    real = getattr(owner, name)
    failures: list[int] = []

    def flaky(*args: object) -> object:
        if not failures:
            failures.append(1)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    monkeypatch.setattr(owner, name, flaky)
    return failures


async def test_a_disk_error_while_spooling_stops_nothing_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the sender task died of the OSError and the batch being spilled was
    # dropped from the queue: nothing was produced again, and close() raised.
    publisher = EventPublisher(
        Settings(spool_dir=tmp_path, events_spill_after_ms=50, events_linger_ms=5)
    )
    produced: list[bytes] = []
    broker_up = False

    async def produce(records: list[tuple[bytes | None, bytes, bytes | None]]) -> None:
        if not broker_up:
            raise ConnectionError("broker down")
        produced.extend(value for _key, value, _trace in records)

    async def answers() -> bool:
        return broker_up

    async def not_on_topic(
        records: list[tuple[bytes | None, bytes, bytes | None]], _acked: dict
    ) -> list:
        on_topic = {orjson.loads(value)["id"] for value in produced}
        return [r for r in records if orjson.loads(r[1])["id"] not in on_topic]

    monkeypatch.setattr(publisher, "_produce", produce)
    monkeypatch.setattr(publisher, "_broker_answers", answers)
    monkeypatch.setattr(publisher, "_not_yet_on_topic", not_on_topic)
    monkeypatch.setattr(publisher_module, "_SETTLE_S", 0.01)
    failures = fail_once(monkeypatch, Spool, "append")
    publisher._producer = object()  # type: ignore[assignment]
    publisher._task = asyncio.create_task(publisher._run())
    for n in range(10):
        event(publisher, n)
    await asyncio.sleep(0.3)  # the broker fails the batch: degraded, spooling
    for n in range(10, 20):
        event(publisher, n)  # spilled to a disk that refuses once
    await asyncio.sleep(1.0)
    broker_up = True
    for n in range(20, 1020):
        event(publisher, n)
    for _ in range(100):
        if len({orjson.loads(v)["id"] for v in produced}) == 1020:
            break
        await asyncio.sleep(0.05)
    assert failures == [1]
    assert not publisher._task.done()
    assert {orjson.loads(v)["id"] for v in produced} == {f"req-{n}" for n in range(1020)}
    await publisher.close(grace_s=1)


async def test_a_journal_that_cannot_rotate_still_takes_and_keeps_every_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: one failed rotation left the journal without a map: that event and every
    # later one raised in publish() and never reached the queue.
    monkeypatch.setattr(journal, "ROTATE_BYTES", 4096)
    publisher = EventPublisher(Settings(spool_dir=tmp_path))
    for n in range(5):
        event(publisher, n)
    failures = fail_once(monkeypatch, journal.os, "posix_fallocate")
    for n in range(5, 200):
        event(publisher, n)  # 4 KB rotations: the first one fails
    assert failures == [1]
    assert publisher.pending == 200
    # As after a kill -9: the journal files hold every event.
    _paths, records = Journal.recover(tmp_path)
    assert [orjson.loads(value)["id"] for _k, value, _t in records] == [
        f"req-{n}" for n in range(200)
    ]
    await publisher.close()  # never started: the queue goes to the spool


async def test_a_drain_cut_short_by_shutdown_leaves_its_segment_to_be_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: the segment stayed plain, so the next start resent all of it, those
    # events the broker had taken before the shutdown included (duplicates).
    publisher = EventPublisher(Settings(spool_dir=tmp_path))
    for n in range(10):
        event(publisher, n)
    publisher._spill_queue()
    publisher._spool.close_segment()
    sent = asyncio.Event()

    async def produce_then_hang(records: list[tuple[bytes | None, bytes, bytes | None]]) -> None:
        sent.set()  # part of the segment may be on the broker from here on
        await asyncio.sleep(3600)

    monkeypatch.setattr(publisher, "_produce", produce_then_hang)
    [segment] = publisher._spool.segments()
    draining = asyncio.create_task(publisher._drain_segment(segment))
    await sent.wait()
    draining.cancel()
    with pytest.raises(asyncio.CancelledError):
        await draining
    assert [path.name.split(".", 1)[1] for path in publisher._spool.segments()] == ["doubt.seg"]
    await publisher.close()
