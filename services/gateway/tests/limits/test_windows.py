"""The sliding-window limiter, on a controlled clock."""

from __future__ import annotations

import random

from tollgate.gateway.limits.windows import SLOTS, LocalCounters, _frees_after


def admitted(
    counters: LocalCounters, buckets: list[tuple[str, int, int]], at: float, n: int
) -> int:
    return sum(counters.check(buckets, at).allowed for _ in range(n))


def test_burst_across_a_boundary_never_exceeds_the_limit_in_any_window() -> None:
    counters = LocalCounters()
    buckets = [("k:a:60", 100, 60)]
    times: list[float] = []
    # Hammer from 50 s into one minute to 50 s into the next, every 0.25 s.
    t = 1_000_020.0
    while t < 1_000_020.0 + 120:
        for _ in range(20):
            if counters.check(buckets, t).allowed:
                times.append(t)
        t += 0.25
    worst = max(sum(1 for x in times if start <= x < start + 60) for start in times)
    assert worst <= 100


def test_rejected_requests_consume_nothing() -> None:
    counters = LocalCounters()
    small, large = ("k:a:1", 2, 1), ("a:b:60", 1000, 60)
    now = 5_000.0
    assert admitted(counters, [small, large], now, 50) == 2
    # The API window saw only the two admitted requests.
    verdict = counters.check([large], now)
    assert verdict.allowed
    assert verdict.remaining == 1000 - 3


def test_retry_after_is_enough_and_headers_describe_the_tightest_window() -> None:
    counters = LocalCounters()
    buckets = [("k:a:1", 5, 1), ("k:a:60", 100, 60)]
    now = 7_000.3
    assert admitted(counters, buckets, now, 5) == 5
    refused = counters.check(buckets, now)
    assert not refused.allowed
    assert refused.limit == 5
    assert refused.remaining == 0
    assert refused.policy == '"key-second";q=5;w=1, "key-minute";q=100;w=60'
    assert counters.check(buckets, now + refused.retry_after_s).allowed
    headers = dict(refused.headers())
    assert headers["RateLimit-Limit"] == headers["X-RateLimit-Limit"] == "5"


def test_finished_windows_are_swept() -> None:
    counters = LocalCounters()
    counters.check([("k:a:1", 5, 1)], 100.0)
    assert counters.sweep(105.0) == 1
    assert len(counters) == 0


def test_reset_and_retry_after_match_the_slot_by_slot_count() -> None:
    """`_frees_after` finds the slot by its running count; walked slot by slot (oldest
    first) the answer is the same, for sparse, full and over-full windows."""
    rng = random.Random(7)
    for _ in range(5_000):
        window = rng.choice([1, 60, 3600, 86400])
        slots = [rng.choice([0, 0, 0, 1, 5, 30]) for _ in range(SLOTS + 1)]
        needed = rng.randint(-3, sum(slots) + 3)
        now = rng.uniform(1e9, 2e9)
        width = window / SLOTS
        current = int(now // width)
        expected = float(window)
        freed = 0
        for offset, count in enumerate(slots):
            freed += count
            if freed >= max(needed, 1):
                expected = max(
                    0.0, (current - SLOTS + offset + SLOTS + 1) * width - now + width / 1000
                )
                break
        assert _frees_after(slots, needed, window, now) == expected
