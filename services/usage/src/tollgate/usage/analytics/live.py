"""The live stream: per-second request, error and rejection counts of an org (SSE).

Every second the stream sends one `counts` event with the last `live_window_seconds`
whole seconds, every second present (zeros included), read from the request log, so
it shows what every replica ingested and late events simply update a second on the
next tick. Each tick uses a short transaction of its own; no connection is held
between ticks. Streams end after `live_max_stream_seconds` (clients reconnect, as
EventSource does) and are capped per replica.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from tollgate.kit.db import SessionMaker
from tollgate.usage.requestlog.repository import counts_per_second


@dataclass
class LiveStreams:
    """Open streams of this replica, against a cap."""

    limit: int
    open: int = 0

    def try_open(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def close(self) -> None:
        self.open -= 1


async def second_counts(
    sessions: SessionMaker, org_id: uuid.UUID | None, window: int, now: datetime
) -> list[dict[str, object]]:
    """The last `window` whole seconds before `now`, oldest first, zeros filled."""
    end = now.replace(microsecond=0)
    start = end - timedelta(seconds=window)
    async with sessions() as session, session.begin():
        counted = {c.second: c for c in await counts_per_second(session, org_id, start, end)}
    seconds = []
    for n in range(window):
        second = start + timedelta(seconds=n)
        found = counted.get(second)
        seconds.append(
            {
                "second": second.isoformat(),
                "requests": found.requests if found else 0,
                "errors": found.errors if found else 0,
                "rejected": found.rejected if found else 0,
            }
        )
    return seconds


async def stream_counts(
    sessions: SessionMaker,
    streams: LiveStreams,
    org_id: uuid.UUID | None,
    *,
    window: int,
    duration: float,
) -> AsyncIterator[bytes]:
    """SSE frames until `duration` seconds have passed; releases its slot at the end."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration
    try:
        yield b"retry: 1000\n\n"
        while True:
            now = datetime.now(UTC)
            seconds = await second_counts(sessions, org_id, window, now)
            payload = orjson.dumps({"org_id": str(org_id) if org_id else None, "seconds": seconds})
            yield (
                b"event: counts\nid: " + now.isoformat().encode() + b"\ndata: " + payload + b"\n\n"
            )
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.sleep(min(remaining, 1.0 - now.microsecond / 1_000_000))
    finally:
        streams.close()
