"""The publisher keeps each event's traceparent, also on the way through the spool."""

from __future__ import annotations

from pathlib import Path

import orjson

from tollgate.gateway.config import Settings
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
