"""The live stream: per-second request, error and rejection counts of an org (SSE).

Every second the stream sends one `counts` event with the last `live_window_seconds`
whole seconds, every second present (zeros included), read from the request log, so
it shows what every replica ingested and late events simply update a second on the
next tick. Each tick uses a short transaction of its own; no connection is held
between ticks. Each tick checks the caller again (a member removed, a user
deactivated or signed out since sees nothing more: the stream ends). Streams end
after `live_max_stream_seconds` (clients reconnect, as EventSource does). Slots are
counted per replica three ways, so one tenant cannot take them all: in all
(`live_max_streams`, 503 above: the replica is full), per org
(`live_max_streams_per_org`) and per user (`live_max_streams_per_user`), both 429
above (the caller holds too many). An admin's every-org stream counts as one org.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from tollgate.kit.db import SessionMaker
from tollgate.usage.requestlog.repository import counts_per_second

FullCap = Literal["replica", "org", "user"]


@dataclass
class LiveSlot:
    """One open stream's share of the caps; released exactly once."""

    streams: LiveStreams
    org_id: uuid.UUID | None
    user_id: uuid.UUID
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.streams.release(self)


@dataclass
class LiveStreams:
    """Open streams of this replica, against a cap in all, per org and per user."""

    limit: int
    per_org: int
    per_user: int
    open: int = 0
    by_org: Counter[uuid.UUID | None] = field(default_factory=Counter)
    by_user: Counter[uuid.UUID] = field(default_factory=Counter)

    def try_open(self, org_id: uuid.UUID | None, user_id: uuid.UUID) -> LiveSlot | FullCap:
        """A slot for a stream of `org_id` (None: every org) watched by `user_id`, or
        the cap that is full."""
        if self.open >= self.limit:
            return "replica"
        if self.by_org[org_id] >= self.per_org:
            return "org"
        if self.by_user[user_id] >= self.per_user:
            return "user"
        self.open += 1
        self.by_org[org_id] += 1
        self.by_user[user_id] += 1
        return LiveSlot(self, org_id, user_id)

    def release(self, slot: LiveSlot) -> None:
        self.open -= 1
        self.by_org[slot.org_id] -= 1
        self.by_user[slot.user_id] -= 1
        if not self.by_org[slot.org_id]:
            del self.by_org[slot.org_id]
        if not self.by_user[slot.user_id]:
            del self.by_user[slot.user_id]


class LiveResponse(StreamingResponse):
    """The SSE response of one slot: the slot is given back when the response ends
    however it ends (finished, client gone, cancelled), even if the stream never
    started."""

    def __init__(self, content: AsyncIterator[bytes], slot: LiveSlot) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


async def second_counts(
    sessions: SessionMaker, org_id: uuid.UUID | None, mode: str, window: int, now: datetime
) -> list[dict[str, object]]:
    """The last `window` whole seconds before `now`, oldest first, zeros filled."""
    end = now.replace(microsecond=0)
    start = end - timedelta(seconds=window)
    async with sessions() as session, session.begin():
        rows = await counts_per_second(session, org_id, mode, start, end)
    counted = {c.second: c for c in rows}
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
    org_id: uuid.UUID | None,
    mode: str,
    *,
    window: int,
    duration: float,
    allowed: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    """SSE frames until `duration` seconds have passed, or until `allowed()` (asked
    before each frame) says the caller may no longer see them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration
    yield b"retry: 1000\n\n"
    while await allowed():
        now = datetime.now(UTC)
        seconds = await second_counts(sessions, org_id, mode, window, now)
        payload = orjson.dumps({"org_id": str(org_id) if org_id else None, "seconds": seconds})
        yield b"event: counts\nid: " + now.isoformat().encode() + b"\ndata: " + payload + b"\n\n"
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await asyncio.sleep(min(remaining, 1.0 - now.microsecond / 1_000_000))
