"""Periodic background jobs: one loop for every maintenance task, worker and relay.

`every(interval, step, name=...)` runs `step()` until cancelled. After a step that
returns True (more work is waiting: a full batch, a claimed delivery) it runs again at
once; otherwise it waits `interval` seconds, or less when `wake` is set. A step that
raises is logged with its traceback and retried after a back-off that doubles from
`interval` (at least 0.1 s) up to `max_backoff`, reset by the next success, so a
database or broker outage is neither hammered nor fatal. Cancelling the loop (the
runtime's shutdown) lets a running step finish for up to `grace` seconds before it is
cancelled too, so a batch in flight is recorded rather than left to its lease.

A step owns its transactions; nothing here touches the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[bool | None]]
"""One round of a job; True when more work is waiting and the next round should not wait."""

MIN_BACKOFF = 0.1


async def every(
    interval: float,
    step: Step,
    *,
    name: str,
    wake: asyncio.Event | None = None,
    max_backoff: float = 30.0,
    grace: float = 5.0,
) -> None:
    """Run `step` every `interval` seconds until cancelled (see the module docstring)."""
    failures = 0
    log.debug("job started", extra={"job": name, "interval": interval})
    while True:
        try:
            more = await _finish_on_cancel(step(), grace)
        except asyncio.CancelledError:
            log.debug("job stopped", extra={"job": name})
            raise
        except Exception:
            failures += 1
            delay = min(
                max(interval, MIN_BACKOFF) * 2 ** (failures - 1), max(interval, max_backoff)
            )
            log.warning(
                "%s failed; retrying in %.1f s",
                name,
                delay,
                exc_info=True,
                extra={"job": name, "failures": failures},
            )
            await asyncio.sleep(delay)
            continue
        failures = 0
        if more:
            await asyncio.sleep(0)  # let other tasks in between rounds
        else:
            await _wait(interval, wake)


async def _finish_on_cancel(round_: Awaitable[bool | None], grace: float) -> bool | None:
    task = asyncio.ensure_future(round_)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        # Shutting down: give the round in flight a moment to commit what it did.
        with contextlib.suppress(Exception):
            await asyncio.wait({task}, timeout=grace)
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise


async def _wait(interval: float, wake: asyncio.Event | None) -> None:
    if wake is None:
        await asyncio.sleep(interval)
        return
    # Not `wait_for`: on Python 3.11 it returns a wait that finished in the same loop
    # iteration as a cancellation and drops the cancellation, and the loop never stops.
    woken = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({woken}, timeout=interval)
    finally:
        woken.cancel()
    wake.clear()
