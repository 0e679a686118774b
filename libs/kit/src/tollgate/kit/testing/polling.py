"""Polling for tests that watch another process (a database row, an HTTP answer)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    *,
    within: float,
    interval: float = 0.1,
) -> T:
    """Call `probe` until `done(result)` holds or `within` seconds pass; return the last
    result either way, so the caller's assertion says what was seen."""
    deadline = time.monotonic() + within
    result = await probe()
    while not done(result) and time.monotonic() < deadline:
        await anyio.sleep(interval)
        result = await probe()
    return result
