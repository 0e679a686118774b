"""The `every` loop: rounds at the interval, at once while work is waiting, back-off
after failures, woken early, and a stop that lets the round in flight finish."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging

import pytest

from tollgate.kit.jobs import every


async def run_for(seconds: float, loop: asyncio.Task[None]) -> None:
    await asyncio.sleep(seconds)
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop


async def test_rounds_wait_the_interval_unless_work_is_waiting() -> None:
    rounds = 0

    async def step() -> bool:
        nonlocal rounds
        rounds += 1
        return rounds <= 5  # five full batches, then idle

    await run_for(0.25, asyncio.create_task(every(0.1, step, name="t")))
    assert 7 <= rounds <= 9  # 6 back to back, then one per 0.1 s


async def test_failures_are_logged_and_backed_off_then_recovered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[float] = []

    async def step() -> None:
        calls.append(asyncio.get_running_loop().time())
        if len(calls) <= 3:
            raise RuntimeError("database down")

    with caplog.at_level(logging.WARNING, logger="tollgate.kit.jobs"):
        await run_for(1.2, asyncio.create_task(every(0.1, step, name="flaky job")))
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    # Lower bounds allow for the clock resolution; upper bounds leave room for a
    # busy machine.
    assert 0.09 <= gaps[0] < 0.19
    assert 0.19 <= gaps[1] < 0.39
    assert 0.39 <= gaps[2] < 0.79  # doubled each time
    assert gaps[3] < 0.19  # recovered: back to the interval
    failures = [r for r in caplog.records if "flaky job failed" in r.getMessage()]
    assert len(failures) == 3
    assert all(r.exc_info for r in failures)


async def test_wake_cuts_the_wait_short() -> None:
    wake = asyncio.Event()
    rounds = 0

    async def step() -> None:
        nonlocal rounds
        rounds += 1

    loop = asyncio.create_task(every(60, step, name="t", wake=wake))
    await asyncio.sleep(0.05)
    assert rounds == 1
    wake.set()
    await asyncio.sleep(0.05)
    assert rounds == 2
    await run_for(0, loop)


async def test_stop_lets_the_round_in_flight_finish() -> None:
    started = asyncio.Event()
    finished = False

    async def step() -> None:
        nonlocal finished
        started.set()
        await asyncio.sleep(0.1)  # e.g. a batch being recorded
        finished = True

    loop = asyncio.create_task(every(60, step, name="t", grace=5))
    await started.wait()
    await run_for(0, loop)
    assert finished
    assert loop.cancelled()


async def test_stop_cancels_a_round_that_outlasts_the_grace() -> None:
    started = asyncio.Event()

    async def step() -> None:
        started.set()
        await asyncio.sleep(60)

    loop = asyncio.create_task(every(60, step, name="t", grace=0.05))
    await started.wait()
    await asyncio.wait_for(run_for(0, loop), timeout=1)
    assert loop.cancelled()


async def test_stop_is_not_lost_when_a_wake_comes_at_the_same_moment() -> None:
    """A relay woken by a commit in the very iteration it is stopped still stops (on
    Python 3.11, `wait_for` returned the woken wait's result and dropped the cancellation,
    so a service's shutdown waited forever for its outbox relay)."""
    for _ in range(50):
        wake = asyncio.Event()
        task = asyncio.create_task(every(10, _idle, name="raced", wake=wake))
        await asyncio.sleep(0.01)  # waiting on `wake` between rounds
        wake.set()
        await asyncio.sleep(0)  # the woken wait is done, its waiter not yet resumed
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        assert done == {task}, "the loop went on after it was cancelled"
        assert task.cancelled()


async def _idle() -> bool:
    return False
